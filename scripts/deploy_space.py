"""Deploy the Gradio app to a Hugging Face Space (created if needed).

    python scripts/deploy_space.py --repo-id OWNER/NAME [--dry-run] [--private]
                                   [--hardware a10g-large] [--model allenai/Molmo2-4B]

The Space repo layout: the app at the root (``app.py``, ``README.md`` = the Space card with its
front matter, ``requirements.txt``), the library beside it (``turboquant/**.py``, so
``import turboquant`` works from app.py), ``scripts/make_sample_clip.py`` (the example clips)
and ``pyproject.toml``. ``--dry-run`` prints exactly that list with sizes and touches no
network. Otherwise the token comes from ``HF_TOKEN`` (never printed); the upload replaces
stale files under ``turboquant/`` and ``scripts/``. ``--model`` sets the Space variable
``TURBOQUANT_MODEL`` (the app's default model), ``--hardware`` requests a GPU.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def space_files(root: Path = REPO) -> dict[str, Path]:
    """``{path in the Space repo: local file}``, sorted by Space path."""
    files = {
        "app.py": root / "space" / "app.py",
        "README.md": root / "space" / "README.md",
        "requirements.txt": root / "space" / "requirements.txt",
        "pyproject.toml": root / "pyproject.toml",
        "scripts/make_sample_clip.py": root / "scripts" / "make_sample_clip.py",
    }
    for path in (root / "turboquant").rglob("*.py"):
        if "__pycache__" not in path.parts:
            files[path.relative_to(root).as_posix()] = path
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"files to upload are missing: {missing}")
    return dict(sorted(files.items()))


def _stage(files: dict[str, Path], folder: Path) -> None:
    for name, src in files.items():
        dst = folder / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)


def deploy(
    repo_id: str,
    files: dict[str, Path],
    token: str,
    *,
    private: bool,
    hardware: str | None,
    model: str | None,
) -> str:
    """Create the Space if needed, upload ``files`` in one commit; returns the Space URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    url = api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
    if model:
        api.add_space_variable(repo_id, "TURBOQUANT_MODEL", model)
    with tempfile.TemporaryDirectory() as tmp:
        _stage(files, Path(tmp))
        api.upload_folder(
            repo_id=repo_id,
            repo_type="space",
            folder_path=tmp,
            commit_message="Deploy turboquant Space",
            delete_patterns=["turboquant/**", "scripts/**"],  # modules removed locally go too
        )
    if hardware:
        api.request_space_hardware(repo_id, hardware)
    return str(url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo-id", required=True, help="OWNER/NAME of the Space")
    parser.add_argument("--dry-run", action="store_true", help="list what would be uploaded; no network")
    parser.add_argument("--private", action="store_true", help="create the Space private")
    parser.add_argument("--hardware", help="request this hardware, e.g. a10g-large, l4x1, zero-a10g")
    parser.add_argument("--model", help="set the Space variable TURBOQUANT_MODEL, e.g. allenai/Molmo2-4B")
    args = parser.parse_args(argv)
    if not REPO_ID.match(args.repo_id):
        parser.error(f"--repo-id: expected OWNER/NAME, got {args.repo_id!r}")

    files = space_files()
    if args.dry_run:
        for name, path in files.items():
            print(f"{path.stat().st_size:>9}  {name}")
        total = sum(p.stat().st_size for p in files.values())
        print(
            f"{len(files)} files, {total} bytes would be uploaded to https://huggingface.co/spaces/{args.repo_id}"
        )
        return 0
    token = os.environ.get("HF_TOKEN")
    if not token:
        print("deploy_space: set HF_TOKEN to a Hugging Face token with write access", file=sys.stderr)
        return 1
    url = deploy(args.repo_id, files, token, private=args.private, hardware=args.hardware, model=args.model)
    print(f"uploaded {len(files)} files to {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
