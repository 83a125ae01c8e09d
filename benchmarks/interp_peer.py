"""The PyTorch peer of tapir's interpretability benchmark (benchmarks/interp.ts): the same workloads on the
same shape (Llama-3.2-1B, random f16 weights, HF transformers' LlamaForCausalLM) with PyTorch forward hooks,
as TransformerLens and nnsight run them, activations ending on the host. Prints one JSON object:
{"card", "workloads": {name: {"ms": steady (median), "first_ms": the first call in this process}}}.

  cache128            16 x resid_post of a 128-token prompt, copied to the host
  cache8x128          the same for a batch of 8 prompts of 128 tokens
  lens16              logit lens over a 16-token prompt's 16 layers: final norm + unembedding of every
                      (layer, position), softmax, top-5, the target's rank and probability, KL to the final
                      layer; the reported numbers copied to the host
  patch16x16          resid_pre activation patching, 16 layers x 16 positions, one forward per site
                      (TransformerLens' get_act_patch_resid_pre), the metric read per site
  patch16x16_batched  the same with one forward per layer: a batch of 16 copies of the corrupted prompt,
                      copy p patched at position p
  prefill512          one 512-token forward (logits of the last position), tokens/s; and torch.matmul's
                      TFLOP/s at a prefill block's layer products ("matmul": T = 256 and 512)
Run on the GPU machine: bash scripts/gpu-machine.sh interp (with tapir in the same call).
"""
import argparse, json, time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

p = argparse.ArgumentParser()
p.add_argument('--repeat', type=int, default=5)
p.add_argument('--only', default='', help='space-separated workloads to run (default: all)')
p.add_argument('--rehearse', action='store_true', help='a tiny model on the CPU: checks the script, measures nothing')
a = p.parse_args()
dev = 'cpu' if a.rehearse else 'cuda'

cfg = LlamaConfig(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                  num_key_value_heads=8, vocab_size=128256, max_position_embeddings=131072, rope_theta=500000.0,
                  rms_norm_eps=1e-5, tie_word_embeddings=True,
                  rope_scaling={'rope_type': 'llama3', 'factor': 32.0, 'low_freq_factor': 1.0, 'high_freq_factor': 4.0,
                                'original_max_position_embeddings': 8192})
if a.rehearse:
    cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=16, num_attention_heads=4, num_key_value_heads=2,
                      vocab_size=8192, max_position_embeddings=1024, tie_word_embeddings=True)
torch.manual_seed(0)
with torch.device(dev):
    model = LlamaForCausalLM(cfg).to(torch.float32 if a.rehearse else torch.float16).eval()
sync = (lambda: None) if a.rehearse else torch.cuda.synchronize
layers = model.model.layers
L, V = cfg.num_hidden_layers, cfg.vocab_size
g = torch.Generator(device=dev).manual_seed(1)
tokens = lambda *shape: torch.randint(0, V, shape, device=dev, generator=g)


WARMUP_S = 1.5


def measure(f):
    """first call, then untimed calls for at least WARMUP_S (and three), then the median of `repeat` calls
    (ms): as benchmarks/interp.ts warms tapir's (three peer runs timed right after the first call gave
    7.2, 10.9 and 19.9 ms for prefill512 on one card: the GPU's clocks still rising)"""
    sync(); t0 = time.perf_counter(); f(); sync()
    first = (time.perf_counter() - t0) * 1e3
    n, t0 = 0, time.perf_counter()
    while n < 3 or time.perf_counter() - t0 < WARMUP_S:
        f(); sync(); n += 1
    ts = []
    for _ in range(a.repeat):
        t0 = time.perf_counter(); f(); sync(); ts.append((time.perf_counter() - t0) * 1e3)
    return {'ms': sorted(ts)[len(ts) // 2], 'first_ms': first}


def run_with_cache(ids):
    """resid_post of every layer (each decoder layer's output), copied to the host"""
    cache, hs = {}, []
    for l, layer in enumerate(layers):
        hs.append(layer.register_forward_hook(lambda m, i, o, l=l: cache.__setitem__(l, (o[0] if isinstance(o, tuple) else o).detach())))
    try:
        model(ids, use_cache=False, logits_to_keep=1)
    finally:
        for h in hs: h.remove()
    return {l: v.float().cpu() for l, v in cache.items()}


def lens(ids, target, top=5):
    cache, hs = {}, []
    for l, layer in enumerate(layers):
        hs.append(layer.register_forward_hook(lambda m, i, o, l=l: cache.__setitem__(l, o[0] if isinstance(o, tuple) else o)))
    try:
        model(ids, use_cache=False, logits_to_keep=1)
    finally:
        for h in hs: h.remove()
    resid = torch.stack([cache[l][0] for l in range(L)])          # [layer, pos, dim]
    logits = model.lm_head(model.model.norm(resid)).float()        # [layer, pos, vocab]
    logp = torch.log_softmax(logits, -1)
    probs = logp.exp()
    topp, topi = probs.topk(top, -1)
    tgt = logits[..., target]
    rank = (logits > tgt[..., None]).sum(-1)
    kl = (probs[-1] * (logp[-1] - logp)).sum(-1)
    return [x.cpu() for x in (topp, topi, rank, probs[..., target], kl)]


def resid_pre_cache(ids):
    """hook_resid_pre of every layer: each decoder layer's input"""
    cache, hs = {}, []
    for l, layer in enumerate(layers):
        hs.append(layer.register_forward_pre_hook(lambda m, args, kw, l=l: cache.__setitem__(l, (args[0] if args else kw['hidden_states']).clone()), with_kwargs=True))
    try:
        model(ids, use_cache=False, logits_to_keep=1)
    finally:
        for h in hs: h.remove()
    return cache


def last_logits_with_input(l, edit, ids):
    """the last position's logits with decoder layer l's input x replaced by edit(x)"""
    def hook(m, args, kw):
        x = edit((args[0] if args else kw['hidden_states']).clone())
        if args: return (x, *args[1:]), kw
        kw['hidden_states'] = x; return args, kw
    h = layers[l].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        return model(ids, use_cache=False, logits_to_keep=1).logits[:, -1]
    finally:
        h.remove()


def patch_naive(clean, corrupt, target, distractor):
    """one forward per (layer, position), as TransformerLens' get_act_patch_resid_pre"""
    cache, n = resid_pre_cache(clean), clean.shape[1]
    out = torch.zeros(L, n)
    for l in range(L):
        for pos in range(n):
            def edit(x, l=l, pos=pos):
                x[:, pos] = cache[l][:, pos]; return x
            lg = last_logits_with_input(l, edit, corrupt)[0]
            out[l, pos] = (lg[target] - lg[distractor]).item()
    return out


def patch_batched(clean, corrupt, target, distractor):
    """one forward per layer: a batch of n copies of the corrupted prompt, copy p patched at position p"""
    cache, n = resid_pre_cache(clean), clean.shape[1]
    idx = torch.arange(n, device=dev)
    rows = []
    for l in range(L):
        def edit(x, l=l):
            x[idx, idx] = cache[l][0, idx]; return x
        lg = last_logits_with_input(l, edit, corrupt.expand(n, n))
        rows.append((lg[:, target] - lg[:, distractor]).cpu())
    return torch.stack(rows)


out = {'card': 'cpu (rehearsal)' if a.rehearse else torch.cuda.get_device_name(), 'torch': torch.__version__, 'shape': 'llama-3.2-1b', 'dtype': 'f16', 'workloads': {}}
w = out['workloads']
with torch.inference_mode():
    p128, p8x128, p16, c16, p512 = tokens(1, 128), tokens(8, 128), tokens(1, 16), tokens(1, 16), tokens(1, 512)
    want = lambda name: not a.only or name in a.only.split()
    if want('cache128'): w['cache128'] = measure(lambda: run_with_cache(p128))
    if want('cache8x128'): w['cache8x128'] = measure(lambda: run_with_cache(p8x128))
    if want('lens16'): w['lens16'] = measure(lambda: lens(p16, 1234))
    if want('patch16x16'): w['patch16x16'] = measure(lambda: patch_naive(p16, c16, 1234, 5678))
    if want('patch16x16_batched'): w['patch16x16_batched'] = measure(lambda: patch_batched(p16, c16, 1234, 5678))
    if want('prefill512'):
        r = measure(lambda: model(p512, use_cache=False, logits_to_keep=1))
        w['prefill512'] = {**r, 'tokens_per_s': 512 / r['ms'] * 1e3}
    # torch.matmul f16 at a prefill block's layer products (x [T, in] @ W^T [in, out]; tapir's blocks are 256
    # positions on this shape), TFLOP/s over one layer's products: what tapir's products are compared with
    shapes = {'qkv': (cfg.hidden_size, cfg.hidden_size + 2 * cfg.num_key_value_heads * (cfg.hidden_size // cfg.num_attention_heads)),
              'o': (cfg.hidden_size, cfg.hidden_size), 'gate_up': (cfg.hidden_size, 2 * cfg.intermediate_size), 'down': (cfg.intermediate_size, cfg.hidden_size)}
    out['matmul'] = {}
    for T in (256, 512):
        flops = secs = 0.0
        for k, n in shapes.values():
            x = torch.randn(T, k, device=dev, dtype=model.dtype)
            wt = torch.randn(n, k, device=dev, dtype=model.dtype)
            s = measure(lambda: torch.matmul(x, wt.t()))['ms'] / 1e3
            flops += 2 * T * k * n; secs += s
        out['matmul'][str(T)] = {'tflops': flops / secs / 1e12, 'layer_ms': secs * 1e3}
print(json.dumps(out))
