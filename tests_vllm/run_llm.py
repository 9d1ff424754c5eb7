"""Run one greedy generation of a local model with vLLM and print the results as JSON.

    python tests_vllm/run_llm.py MODEL_DIR (default|tq)

``tq`` selects the TQ4 backend (``attention_backend="CUSTOM"``; on the CPU platform, whose
selector ignores that flag, ``TURBOQUANT_VLLM_OVERRIDE=CPU_ATTN`` routes its backend to TQ4 as
well) and wraps the backend's attention call so that every call is also computed by the
plain-torch reference on a copy of the pages: the JSON then holds, per call, the batch shape
and the largest difference. Run in its own process: vLLM's backend registry is global.
"""

from __future__ import annotations

import json
import sys

PROMPTS = [
    "The quick brown fox jumps over the lazy dog.",
    "What is happening in this video?",
    # long enough to be prefilled in chunks next to the others' decodes (mixed batches)
    "A person walks into the room, picks up a cup of coffee and sits down by the window. "
    "The weather today is sunny with a light breeze; tomorrow it may rain in the afternoon. "
    "The blue square moves from the top left corner to the bottom right corner of the frame. "
    "In the beginning the screen is black, then a green triangle appears and slowly grows.",
]
MAX_TOKENS = 10
LOGPROBS = 5  # top log-probabilities per generated token: where runs differ, how close was it


def _record_calls(calls: list) -> None:
    """Wrap the backend's paged_attention_forward: also run the reference, record the difference."""
    import torch

    import turboquant.vllm.backend as backend
    from turboquant.paged_batch import paged_attention_reference

    forward = backend.paged_attention_forward
    ref_args = (
        "slot_mapping",
        "block_table",
        "seq_lens",
        "query_start_loc",
        "k_quantizer",
        "v_quantizer",
        "sm_scale",
    )

    def checked(query, key, value, pool, layout, **kw):
        # The reference runs on a copy of just the pages this batch uses (the real pool is
        # vLLM's whole allocation), with block ids and slots renumbered accordingly.
        table, slots, bs = kw["block_table"].long(), kw["slot_mapping"].long(), pool.shape[1]
        used = torch.unique(table)
        new_id = torch.full((pool.shape[0],), -1, dtype=torch.long, device=pool.device)
        new_id[used] = torch.arange(used.numel(), device=pool.device)
        ref_pool = pool[used]
        ref_kw = {k: kw[k] for k in ref_args}
        ref_kw["block_table"] = new_id[table].to(torch.int32)
        ref_kw["slot_mapping"] = torch.where(
            slots >= 0, new_id[slots.clamp_min(0) // bs] * bs + slots % bs, -1
        )
        ref = paged_attention_reference(query, key, value, ref_pool, layout, **ref_kw)
        out = forward(query, key, value, pool, layout, **kw)
        qsl = kw["query_start_loc"].tolist()
        calls.append(
            {
                "q_lens": [b - a for a, b in zip(qsl[:-1], qsl[1:], strict=True)],
                "seq_lens": kw["seq_lens"].tolist(),
                "max_abs_diff": (out.float() - ref.float()).abs().max().item(),
                "ref_max": ref.float().abs().max().item(),
                "pool_bytes_differing": (pool[used] != ref_pool).float().mean().item(),
            }
        )
        return out

    backend.paged_attention_forward = checked


def main() -> None:
    model_dir, which = sys.argv[1], sys.argv[2]
    calls: list = []
    if which == "tq":
        _record_calls(calls)
    from vllm import LLM, SamplingParams

    llm = LLM(
        model=model_dir,
        dtype="bfloat16",
        enforce_eager=True,
        max_model_len=256,
        max_num_seqs=4,
        max_num_batched_tokens=32,
        seed=0,
        **({"attention_backend": "CUSTOM"} if which == "tq" else {}),
    )
    outs = llm.generate(
        PROMPTS, SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS, ignore_eos=True, logprobs=LOGPROBS)
    )
    cache = llm.llm_engine.vllm_config.cache_config
    print(
        "RESULT "
        + json.dumps(
            {
                "tokens": [list(o.outputs[0].token_ids) for o in outs],
                "logprobs": [
                    [{str(t): lp.logprob for t, lp in step.items()} for step in o.outputs[0].logprobs]
                    for o in outs
                ],
                "prompt_lens": [len(o.prompt_token_ids) for o in outs],
                "num_blocks": cache.num_gpu_blocks,
                "block_size": cache.block_size,
                "calls": calls,
            }
        )
    )


if __name__ == "__main__":
    main()
