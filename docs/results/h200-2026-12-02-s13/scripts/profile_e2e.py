"""Scratch: per-step times and a torch.profiler view of decode steps, bf16 vs fused (graphs)."""
import sys, time, json
import torch
sys.path.insert(0, "."); sys.path.insert(0, "scripts")
from transformers import DynamicCache, LogitsProcessor, LogitsProcessorList
from turboquant.cache import CompressedDynamicCache
from turboquant.hf.attention import install_fused_tq4_kv, uninstall_fused_tq4_kv
from turboquant.hf.tiny import build_tiny_llama
from bench_e2e_decode import MODEL

B, N, T = int(sys.argv[1]), int(sys.argv[2]), 24
model, tok = build_tiny_llama(max_position_embeddings=N + 64, **MODEL)
model = model.to("cuda", torch.bfloat16)
ids = torch.randint(3, len(tok), (B, N), generator=torch.Generator().manual_seed(0)).to("cuda")

class Clock(LogitsProcessor):
    def __init__(self, prof=None):
        self.t, self.prof = [], prof
    def __call__(self, input_ids, scores):
        torch.cuda.synchronize(); self.t.append(time.perf_counter())
        if self.prof is not None and len(self.t) == 4: self.prof.start()
        if self.prof is not None and len(self.t) == T: self.prof.stop()
        return scores

def run(name, make, prof=None):
    cache = make()
    if name != "bf16": install_fused_tq4_kv(model, cache)
    c = Clock(prof)
    try:
        model.generate(ids, attention_mask=torch.ones_like(ids), past_key_values=cache, max_new_tokens=T,
                       min_new_tokens=T, do_sample=False, logits_processor=LogitsProcessorList([c]))
    finally:
        uninstall_fused_tq4_kv(model)
    steps = [round((b - a) * 1e3, 2) for a, b in zip(c.t, c.t[1:])]
    extra = {}
    if name == "fused":
        g = [l.decode_graphs for l in cache.layers]
        extra = {"captures": [x.captures for x in g], "replays": [x.replays for x in g]}
    print(json.dumps({"B": B, "N": N, "path": name, "step_ms": steps, **extra}), flush=True)

paths = {"bf16": DynamicCache,
         "fused": lambda: CompressedDynamicCache(config=model.config, k_bits=4, v_bits=4),
         "fused_nographs": lambda: CompressedDynamicCache(config=model.config, k_bits=4, v_bits=4, cuda_graphs=False)}
print("sdp flags: flash", torch.backends.cuda.flash_sdp_enabled(), "cudnn", torch.backends.cuda.cudnn_sdp_enabled(),
      "mem_efficient", torch.backends.cuda.mem_efficient_sdp_enabled(), "math", torch.backends.cuda.math_sdp_enabled())
prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA])
run("bf16", paths["bf16"], prof)
print("==== bf16 cold (first generate) B=%d N=%d" % (B, N))
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=70))
print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=12, max_name_column_width=70))
for rep in range(2):
    for name, make in paths.items():
        run(name, make)
for name in ("bf16", "fused"):
    prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA])
    run(name, paths[name], prof)
    print(f"==== {name} B={B} N={N}: 20 steps (warm)")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=22, max_name_column_width=60))
    print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=12, max_name_column_width=60))
