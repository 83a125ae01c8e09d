#!/usr/bin/env bash
# The GPU-machine runbook: run tapir's benchmark on a bare CUDA machine that has no network and no
# Node (the workplace's lent H100/H200, or any such box).
#
#   bash scripts/gpu-machine.sh pack          # here: fill .gpu/ (git-ignored, ~40 MB) with what it needs
#   bash scripts/gpu-machine.sh run [ARGS]    # there, in a copy of the repo that holds .gpu/: unpack,
#                                             # then `tapir bench ARGS` (default: the 1B shape, f16)
#   bash scripts/gpu-machine.sh baseline      # there: Hugging Face transformers on the same shape
#   bash scripts/gpu-machine.sh compare [D]   # there: both in one call, and the ratios (D: f16 or q8_0)
#   bash scripts/gpu-machine.sh tapir ARGS    # there: any tapir command (the default model is packed
#                                             # into .gpu/models/ when ../shared/models has it)
#
# .gpu/ holds: the Node binary (xz), the built app with its runtime packages (dist/, bin/, webgpu's
# linux-x64 dawn.node, ohm-js, @viz-js), and the Vulkan loader and libglvnd .debs for amd64, which the
# CUDA image lacks (its NVIDIA driver brings the Vulkan ICD). With the workplace's device tool:
#   run(command: "bash scripts/gpu-machine.sh run --synth llama-3.2-1b --dtype f16", carry: [".gpu"])
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf 'gpu-machine: %s\n' "$*" >&2; }

pack() {
  bash scripts/setup.sh
  rm -rf .gpu && mkdir -p .gpu/debs
  log "node $(node --version) -> .gpu/node.xz"
  xz -T0 -6 -c "$(command -v node)" > .gpu/node.xz
  log "app -> .gpu/app.tar.xz"
  tar -cJf .gpu/app.tar.xz dist bin package.json \
    node_modules/webgpu/package.json node_modules/webgpu/index.js node_modules/webgpu/dist/linux-x64 \
    node_modules/ohm-js node_modules/@viz-js node_modules/@huggingface/jinja
  # the default model (../shared/models, never committed) for runs such as the SAE acceptance run
  if [ -f ../shared/models/stories260K.gguf ]; then mkdir -p .gpu/models && cp ../shared/models/stories260K.gguf .gpu/models/; fi
  log "Vulkan loader and libglvnd (amd64) -> .gpu/debs"
  local o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/tapir-amd64-lists'
  mkdir -p /tmp/tapir-amd64-lists/partial
  # shellcheck disable=SC2086
  apt-get $o update -qq
  # shellcheck disable=SC2086
  (cd .gpu/debs && apt-get $o download libvulkan1 libglvnd0 libegl1 libgl1 libglx0 libopengl0 libgles2 >/dev/null)
  du -sh .gpu
}

unpack() {
  for f in .gpu/debs/*.deb; do dpkg -x "$f" /; done
  ldconfig
  mkdir -p /tmp/tapir
  [ -x /tmp/tapir/node ] || { xz -dc .gpu/node.xz > /tmp/tapir/node; chmod +x /tmp/tapir/node; }
  tar -xJf .gpu/app.tar.xz -C /tmp/tapir
  # the NVIDIA driver's Vulkan ICD, where the loader does not find it by itself
  local icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  if [ -f "$icd" ] && ! ls /usr/share/vulkan/icd.d/ /etc/vulkan/icd.d/ 2>/dev/null | grep -q nvidia; then export VK_DRIVER_FILES=$icd; fi
  export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader >&2 || true
}

run() {
  unpack
  local args=("$@")
  [ ${#args[@]} -gt 0 ] || args=(--synth llama-3.2-1b --dtype f16)
  (cd /tmp/tapir && ./node --no-concurrent-recompilation bin/tapir.js bench "${args[@]}")
}

case "${1:-}" in
  pack) pack ;;
  run) shift; run "$@" ;;
  node) shift; unpack; (cd /tmp/tapir && ./node --no-concurrent-recompilation "$@") ;;
  tapir) shift; unpack; /tmp/tapir/node --no-concurrent-recompilation /tmp/tapir/bin/tapir.js "$@" ;;
  baseline) shift; python3 benchmarks/hf_baseline.py "$@" ;;
  compare)
    shift; dtype=${1:-f16}
    out=${OUT:-/tmp}
    run --synth llama-3.2-1b --dtype "$dtype" --prompt-tokens 512 --gen-tokens 256 --json > "$out/tapir.json"
    python3 benchmarks/hf_baseline.py --prefill-tokens 512 > "$out/hf.json"
    python3 - "$out/tapir.json" "$out/hf.json" <<'PY'
import json, sys
t, h = (json.load(open(f)) for f in sys.argv[1:3])
print(f"card: {h['device']}; tapir weights {'/'.join(t['model']['weightDtype'])}, HF f16")
print(f"decode:  tapir {t['decode']['tokensPerSecond']} tok/s, HF eager {h['eager_decode_tokens_per_s']:.1f} tok/s: ratio {t['decode']['tokensPerSecond'] / h['eager_decode_tokens_per_s']:.2f}")
print(f"prefill: tapir {t['prefill']['tokensPerSecond']} tok/s ({t['prefill']['tokens']} tokens), HF {h['prefill']['tokens_per_s']:.0f} tok/s: ratio {t['prefill']['tokensPerSecond'] / h['prefill']['tokens_per_s']:.3f}")
flops = 2 * 1.236e9 * t['prefill']['tokens'] / (t['prefill']['ms'] / 1e3) / 1e12
print(f"prefill matrix products: tapir ~{flops:.2f} TFLOP/s, torch.matmul f16 at the same shapes {h['matmul']['prefill_gemm_tflops']:.0f}: ratio {flops / h['matmul']['prefill_gemm_tflops']:.4f}")
PY
    ;;
  *) sed -n '2,17p' "$0"; exit 2 ;;
esac
