"""scripts/deploy_space.py: the dry run lists exactly the Space's files and touches no network;
a real run creates the Space, uploads those files and never prints the token."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "deploy_space.py"


@pytest.fixture(scope="module")
def deploy():
    spec = importlib.util.spec_from_file_location("deploy_space", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def expected_files() -> dict[str, Path]:
    """The Space layout, spelled out independently of the script."""
    files = {
        "app.py": REPO / "space/app.py",
        "README.md": REPO / "space/README.md",
        "requirements.txt": REPO / "space/requirements.txt",
        "pyproject.toml": REPO / "pyproject.toml",
        "scripts/make_sample_clip.py": REPO / "scripts/make_sample_clip.py",
    }
    for path in sorted((REPO / "turboquant").glob("**/*.py")):
        if "__pycache__" not in path.parts:
            files["turboquant/" + path.relative_to(REPO / "turboquant").as_posix()] = path
    return files


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the dry run opened a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_dry_run_lists_exactly_the_space_files(deploy, capsys, monkeypatch, no_network):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_dry_run_token")
    assert deploy.main(["--repo-id", "someone/turboquant-demo", "--dry-run"]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    rows = [line.split() for line in lines[:-1]]  # "SIZE  PATH", sorted by path
    listed = {name: int(size) for size, name in rows}
    expected = expected_files()
    assert [name for _, name in rows] == sorted(expected)
    assert listed == {n: p.stat().st_size for n, p in expected.items()}
    assert lines[-1].startswith(
        f"{len(expected)} files, {sum(p.stat().st_size for p in expected.values())} bytes"
    )
    # The library's core modules and the app are there; tests, the venv and caches are not.
    for name in (
        "turboquant/__init__.py",
        "turboquant/storage.py",
        "turboquant/video.py",
        "turboquant/benchmark.py",
    ):
        assert name in listed
    assert not any(n.startswith(("tests/", ".venv/", "space/")) or "__pycache__" in n for n in listed)
    assert "hf_secret" not in out


def test_dry_run_as_a_script():
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--repo-id", "someone/demo", "--dry-run"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
    ).stdout
    assert out.splitlines()[-1].startswith(f"{len(expected_files())} files")


def test_space_card_front_matter():
    card = (REPO / "space/README.md").read_text()
    front = card.split("---\n")[1]
    fields = dict(line.split(": ", 1) for line in front.strip().splitlines())
    assert fields["sdk"] == "gradio" and fields["app_file"] == "app.py"
    gradio_version = importlib.metadata.version("gradio")  # what the tests run the app with
    assert fields["sdk_version"] == gradio_version
    assert fields["suggested_hardware"] in {"a10g-large", "l4x1", "a10g-small", "l40sx1", "a100-large"}
    assert len(fields["short_description"]) <= 60
    requirements = (REPO / "space/requirements.txt").read_text()
    for dep in (
        "torch",
        "triton",
        "transformers",
        "scipy",
        "gradio==" + gradio_version,
        "av",
        "molmo-utils",
    ):
        assert dep in requirements


@pytest.mark.parametrize("repo_id", ["noslash", "a/b/c", "/name", "owner/"])
def test_bad_repo_id(deploy, repo_id):
    with pytest.raises(SystemExit) as e:
        deploy.main(["--repo-id", repo_id, "--dry-run"])
    assert e.value.code == 2


def test_missing_token(deploy, monkeypatch, capsys, no_network):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert deploy.main(["--repo-id", "someone/demo"]) == 1
    assert "HF_TOKEN" in capsys.readouterr().err


class FakeHfApi:
    """Records what the script asks of the Hub; keeps a copy of the uploaded folder."""

    calls: list = []

    def __init__(self, token):
        self.calls.append(("init", token))

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))
        return f"https://huggingface.co/spaces/{repo_id}"

    def add_space_variable(self, repo_id, key, value):
        self.calls.append(("add_space_variable", repo_id, key, value))

    def upload_folder(self, *, repo_id, repo_type, folder_path, **kwargs):
        root = Path(folder_path)
        uploaded = {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
        self.calls.append(("upload_folder", repo_id, repo_type, uploaded, kwargs))

    def request_space_hardware(self, repo_id, hardware):
        self.calls.append(("request_space_hardware", repo_id, hardware))


def test_upload_with_a_fake_hub(deploy, monkeypatch, capsys):
    import huggingface_hub

    token = "hf_secret_token_never_printed"
    monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    FakeHfApi.calls = []
    argv = ["--repo-id", "me/tq", "--private", "--hardware", "l4x1", "--model", "allenai/Molmo2-4B"]
    assert deploy.main(argv) == 0
    out = capsys.readouterr()
    assert token not in out.out + out.err

    calls = {c[0]: c for c in FakeHfApi.calls}
    assert calls["init"] == ("init", token)
    assert calls["create_repo"] == (
        "create_repo",
        "me/tq",
        {"repo_type": "space", "space_sdk": "gradio", "private": True, "exist_ok": True},
    )
    assert calls["add_space_variable"] == (
        "add_space_variable",
        "me/tq",
        "TURBOQUANT_MODEL",
        "allenai/Molmo2-4B",
    )
    _, repo_id, repo_type, uploaded, kwargs = calls["upload_folder"]
    assert (repo_id, repo_type) == ("me/tq", "space")
    assert uploaded == {name: path.read_bytes() for name, path in expected_files().items()}
    assert set(kwargs["delete_patterns"]) == {"turboquant/**", "scripts/**"}
    assert calls["request_space_hardware"] == ("request_space_hardware", "me/tq", "l4x1")
