"""Hugging Face integration: attention backends (:mod:`turboquant.hf.attention`), the Molmo2
runner (:mod:`turboquant.hf.molmo2`) and tiny offline models (:mod:`turboquant.hf.tiny`,
:mod:`turboquant.hf.tiny_molmo2`). The compressed caches live in :mod:`turboquant.cache`."""

from __future__ import annotations

import transformers
from packaging.version import Version


def cache_kwarg_for(version: str) -> str:
    """``"cache"`` for transformers ``version`` >= 5.24 (dev builds included), else ``"past_key_values"``."""
    return "cache" if Version(version).release >= (5, 24) else "past_key_values"


# The keyword that hands a cache to ``generate`` and to a model's ``forward``: transformers 5.24
# renamed ``past_key_values`` to ``cache`` (the old name warns; removed from ``forward`` in
# 5.40 and from ``generate`` in 6.0). turboquant supports transformers >= 5.17.
CACHE_KWARG = cache_kwarg_for(transformers.__version__)


def cache_kwargs(cache: object) -> dict[str, object]:
    """``{CACHE_KWARG: cache}``: ``model.generate(**inputs, **cache_kwargs(cache))`` on any
    supported transformers version."""
    return {CACHE_KWARG: cache}
