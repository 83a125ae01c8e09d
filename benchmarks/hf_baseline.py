"""Hugging Face transformers on tapir's Llama-3.2-1B-shaped benchmark: the side-by-side baseline.

Random weights of the same shape (no download; the machine has no network), f16 on the GPU, batch 1:
decode tokens/s after a prompt (eager, and optionally static cache + torch.compile), prefill tokens/s
of a longer prompt, and torch.matmul's f16 throughput at the prefill's matrix shapes. Prints one JSON
object. Run on the GPU machine: bash scripts/gpu-machine.sh baseline [--compile]
"""
import argparse, json, time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

p = argparse.ArgumentParser()
p.add_argument('--prompt-tokens', type=int, default=128)
p.add_argument('--gen-tokens', type=int, default=256)
p.add_argument('--prefill-tokens', type=int, default=512)
p.add_argument('--compile', action='store_true', help='also static cache + torch.compile (takes minutes)')
a = p.parse_args()

# the shape of tapir's `llama-3.2-1b` synth preset (runtime/synth/synth.ts)
cfg = LlamaConfig(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                  num_key_value_heads=8, vocab_size=128256, max_position_embeddings=131072, rope_theta=500000.0,
                  rms_norm_eps=1e-5, tie_word_embeddings=True,
                  rope_scaling={'rope_type': 'llama3', 'factor': 32.0, 'low_freq_factor': 1.0, 'high_freq_factor': 4.0,
                                'original_max_position_embeddings': 8192})
torch.manual_seed(0)
with torch.device('cuda'):
    model = LlamaForCausalLM(cfg).to(torch.float16).eval()
dev = torch.cuda.get_device_name()
g = torch.Generator(device='cuda').manual_seed(1)
prompt = torch.randint(0, cfg.vocab_size, (1, a.prompt_tokens), device='cuda', generator=g)


def timed(f, repeat=3):
    f(); torch.cuda.synchronize()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter(); f(); torch.cuda.synchronize(); ts.append(time.perf_counter() - t0)
    return sorted(ts)[len(ts) // 2]


def gen(n, **kw):
    return lambda: model.generate(prompt, max_new_tokens=n, min_new_tokens=n, do_sample=False, **kw)


out = {'device': dev, 'torch': torch.__version__, 'shape': 'llama-3.2-1b', 'dtype': 'f16', 'prompt_tokens': a.prompt_tokens, 'gen_tokens': a.gen_tokens}
with torch.inference_mode():
    one, full = timed(gen(1)), timed(gen(a.gen_tokens + 1))
    out['eager_decode_tokens_per_s'] = a.gen_tokens / (full - one)
    long = torch.randint(0, cfg.vocab_size, (1, a.prefill_tokens), device='cuda', generator=g)
    t = timed(lambda: model(long, use_cache=False, logits_to_keep=1), repeat=5)
    out['prefill'] = {'tokens': a.prefill_tokens, 'ms': t * 1e3, 'tokens_per_s': a.prefill_tokens / t}
    if a.compile:
        model.generation_config.cache_implementation = 'static'
        model.forward = torch.compile(model.forward, mode='reduce-overhead', fullgraph=True)
        one, full = timed(gen(1)), timed(gen(a.gen_tokens + 1))
        out['compiled_static_decode_tokens_per_s'] = a.gen_tokens / (full - one)

# torch.matmul f16 at the prefill's shapes (x [T, in] @ W^T [in, out]), TFLOP/s
T = a.prefill_tokens
shapes = {'qkv': (2048, 3072), 'o': (2048, 2048), 'gate_up': (2048, 16384), 'down': (8192, 2048), 'logits': (2048, 128256)}
mm = {}
for name, (k, n) in shapes.items():
    x = torch.randn(T, k, device='cuda', dtype=torch.float16)
    w = torch.randn(n, k, device='cuda', dtype=torch.float16)
    s = timed(lambda: torch.matmul(x, w.t()), repeat=20)
    mm[name] = {'T': T, 'in': k, 'out': n, 'ms': s * 1e3, 'tflops': 2 * T * k * n / s / 1e12}
flops = sum(2 * T * v['in'] * v['out'] * (16 if k != 'logits' else 1) for k, v in mm.items())
secs = sum(v['ms'] / 1e3 * (16 if k != 'logits' else 1) for k, v in mm.items())
out['matmul'] = {'shapes': mm, 'prefill_gemm_tflops': flops / secs / 1e12}
print(json.dumps(out))
