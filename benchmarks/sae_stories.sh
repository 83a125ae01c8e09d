#!/usr/bin/env bash
# The SAE acceptance run (issue 7): a TopK SAE on stories260K's blocks.2.hook_resid_post (d_in 64, 512
# latents, k = 8) trained on >= 200k sampled tokens, evaluated on the held-out split.
#   bash benchmarks/sae_stories.sh OUTDIR [MODEL]            # here (slow on lavapipe: sampling ~70 tok/s)
#   TAPIR="bash scripts/gpu-machine.sh tapir" bash benchmarks/sae_stories.sh OUTDIR .gpu/models/stories260K.gguf
#                                                            # on the GPU machine (see scripts/gpu-machine.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:?an output folder}")
model=$(realpath -m "${2:-../shared/models/stories260K.gguf}")
tapir=${TAPIR:-node --no-concurrent-recompilation bin/tapir.js}
store=${STORE:-$out/store}
mkdir -p "$out"
$tapir sae collect -m "$model" --hook blocks.2.hook_resid_post --tokens 200000 --out "$store" --seq-len 256 --seed 1 --json
$tapir sae train --store "$store" --out "$out/sae" --arch topk --k 8 --latents 512 --steps "${STEPS:-4000}" --batch 1024 --lr "${LR:-1e-3}" --seed 1 --json > "$out/train.json"
$tapir sae eval -m "$model" --sae "$out/sae" --store "$store" --sequences "${SEQUENCES:-200}" --json > "$out/eval.json"
python3 - "$out/eval.json" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))
print(f"held-out tokens {e['tokens']}: FVU {e['fvu']:.4f} (goal <= 0.1), L0 {e['l0']:.2f}, dead {100 * e['deadFraction']:.1f}% (goal <= 10%)")
c = e.get('ce')
if c: print(f"CE clean {c['clean']:.4f}, with the SAE {c['sae']:.4f} (delta {c['sae'] - c['clean']:.4f}, goal <= 0.25), zero-ablated {c['zero']:.4f}: recovered {c['recovered']:.4f} (goal >= 0.93)")
PY
