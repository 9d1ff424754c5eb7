#!/usr/bin/env bash
# Session 36, device runs 2 and 3 (same warm H100 as run 1; ab_old/ as in run1.sh).
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PYTHONPATH=.; unset TRITON_INTERPRET
# run 2: the GPU tests of the pool, the vLLM-shaped batches, compress and decode
timeout 480 python3 -m pytest -q -p no:cacheprovider tests/test_paged.py tests/test_paged_batch.py \
  tests/test_triton_compress.py tests/test_triton_decode.py >$OUT/hm_tests.txt 2>&1
# run 3: compress at 256K tokens x 8 heads, both trees one after the other
A="--suite compress --bits 4,3 --compress-tokens 256k"
timeout 150 python3 scripts/bench_kernels.py $A >$OUT/hm_compress.jsonl 2>$OUT/hm_compress.err
cd ab_old
timeout 150 python3 scripts/bench_kernels.py $A >$OUT/compress.jsonl 2>$OUT/compress.err
