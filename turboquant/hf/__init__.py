"""Hugging Face integration: attention backends (:mod:`turboquant.hf.attention`), the Molmo2
runner (:mod:`turboquant.hf.molmo2`) and tiny offline models (:mod:`turboquant.hf.tiny`,
:mod:`turboquant.hf.tiny_molmo2`). The compressed caches live in :mod:`turboquant.cache`."""
