"""Side-by-side table of one GPU-machine call: tapir bench JSONs (each dtype; base-*.json: the base build)
against benchmarks/hf_baseline.py's JSON from the same call. Usage: compare.py HF.json TAPIR.json..."""
import json, os, sys

def load(f):
    try:
        return json.load(open(f))
    except (OSError, ValueError):
        return None


hf = load(sys.argv[1])
if hf is None:  # the baseline failed: tapir's numbers alone, no ratios
    hf = {'device': '?', 'torch': '?', 'prompt_tokens': '?', 'eager_decode_tokens_per_s': float('nan'),
          'prefill': {'tokens': '?', 'tokens_per_s': float('nan')}, 'matmul': {'prefill_gemm_tflops': float('nan')}}
print(f"card: {hf['device']} (torch {hf['torch']})")
print(f"HF transformers f16 eager: decode {hf['eager_decode_tokens_per_s']:.1f} tok/s after {hf['prompt_tokens']} tokens; "
      f"prefill {hf['prefill']['tokens']} tokens {hf['prefill']['tokens_per_s']:.0f} tok/s; torch.matmul at the prefill's shapes "
      f"{hf['matmul']['prefill_gemm_tflops']:.0f} TFLOP/s")
for f in sys.argv[2:]:
    t = load(f)
    if t is None:
        continue
    d, p, tap, chk = t['decode'], t['prefill'], t.get('tapped'), t.get('check')
    name = os.path.basename(f)[:-5] + ' ' + '/'.join(t['model']['weightDtype'])
    print(f"{name}: decode {d['tokensPerSecond']} tok/s (runs {d['runsTokensPerSecond']}), {d['gpuMsPerToken']} ms GPU/token, "
          f"{d['dispatchesPerToken']} dispatches, {d['achievedGBps']} GB/s; ratio to HF eager {d['tokensPerSecond'] / hf['eager_decode_tokens_per_s']:.2f}")
    if tap:
        print(f"    tapped ({tap['hooks']} hooks): {tap['tokensPerSecond']} tok/s = {100 * tap['ratio']:.1f}% of untapped, same tokens: {tap['sameTokens']}")
    if chk:
        print(f"    check: {chk['positions']} positions vs the float64 reference, max rel err {chk['maxRelErr']:.2e}")
    mm = p.get('matmulTflops')
    print(f"    prefill {p['tokens']} tokens: {p['tokensPerSecond']} tok/s (ratio to HF {p['tokensPerSecond'] / hf['prefill']['tokens_per_s']:.3f})"
          + (f"; matrix products {mm} TFLOP/s (ratio to torch.matmul {mm / hf['matmul']['prefill_gemm_tflops']:.4f})" if mm else ''))
    if t.get('kernelsByTime'):
        print('    kernels: ' + ', '.join(f"{k['kernel']}x{k['count']} {k['us']}us" for k in t['kernelsByTime'][:9]))
