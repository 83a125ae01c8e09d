#!/usr/bin/env bash
# The GPU-machine runbook: run tapir's benchmark on a bare CUDA machine that has no network and no
# Node (the workplace's lent H100/H200, or any such box).
#
#   bash scripts/gpu-machine.sh pack          # here: fill .gpu/ (git-ignored, ~40 MB) with what it needs
#   bash scripts/gpu-machine.sh run [ARGS]    # there, in a copy of the repo that holds .gpu/: unpack,
#                                             # then `tapir bench ARGS` (default: the 1B shape, f16)
#   bash scripts/gpu-machine.sh baseline      # there: Hugging Face transformers on the same shape
#   bash scripts/gpu-machine.sh compare [D..] # there: tapir (each dtype D, default f16 q8_0: decode after
#                                             # 128 tokens, prefill of 512) and HF transformers in one call,
#                                             # and the ratios; with .gpu/base.tar.xz also the base build
#   bash scripts/gpu-machine.sh pack-base REV # here: .gpu/base.tar.xz, the app built at git revision REV,
#                                             # so `compare` measures before and after in the same call
#   bash scripts/gpu-machine.sh interp        # there: the interpretability workloads (benchmarks/interp.ts)
#                                             # beside the PyTorch peer (benchmarks/interp_peer.py) and the
#                                             # decode benches of this build and the base build: $OUT/interp.json
#   bash scripts/gpu-machine.sh profile       # there: benchmarks/interp_profile.ts for this build and the
#                                             # base build, and benchmarks/gpu_check.ts: $OUT/*.json
#   bash scripts/gpu-machine.sh kernels       # there: the kernels CI cannot run (tensor cores) against
#                                             # their float64 references (benchmarks/tensor_check.ts);
#                                             # with TAPIR_TENSOR_CORES=off, the f32 kernels for every dtype
#   bash scripts/gpu-machine.sh session       # there: kernels, GPU checks, this build's profile, interp, then the f32
#                                             # kernels' profile and checks, in one call, all in
#                                             # $OUT/all.tgz (the device tool brings back 8 files at most;
#                                             # the tarball is rewritten after each step, so a call cut
#                                             # short keeps what was done)
#   bash scripts/gpu-machine.sh quick         # there: the GPU checks and chosen pieces of the interp
#                                             # benchmark, each saved as it ends ($OUT/all.tgz): TAPIR_WORKLOADS,
#                                             # TAPIR_QUICK_PEER, _KERNELS, _DECODE, _PROBE, _STUDY (see below)
#   bash scripts/gpu-machine.sh tapir ARGS    # there: any tapir command (the default model is packed
#                                             # into .gpu/models/ when ../shared/models has it)
#
# .gpu/ holds: the Node binary (xz), the built app with its runtime packages (dist/, bin/, webgpu's
# linux-x64 dawn.node, ohm-js, @viz-js), and the Vulkan loader and libglvnd .debs for amd64, which the
# CUDA image lacks (its NVIDIA driver brings the Vulkan ICD). With the workplace's device tool:
#   run(command: "bash scripts/gpu-machine.sh run --synth llama-3.2-1b --dtype f16", carry: [".gpu"])
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf 'gpu-machine: %s %s\n' "$(date +%T)" "$*" >&2; }

pack() {
  bash scripts/setup.sh
  rm -rf .gpu && mkdir -p .gpu/debs
  log "node $(node --version) -> .gpu/node.xz"
  xz -T0 -6 -c "$(command -v node)" > .gpu/node.xz
  log "app -> .gpu/app.tar.xz"
  tar -cJf .gpu/app.tar.xz dist bin package.json \
    node_modules/webgpu/package.json node_modules/webgpu/index.js node_modules/webgpu/dist/linux-x64 \
    node_modules/ohm-js node_modules/@viz-js node_modules/@huggingface/jinja node_modules/zod
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

pack_base() {
  local rev=${1:?pack-base needs a git revision}
  local tmp; tmp=$(mktemp -d)
  git worktree add -q --detach "$tmp/src" "$rev"
  ln -s "$PWD/node_modules" "$tmp/src/node_modules"
  (cd "$tmp/src" && npm run -s build >/dev/null)
  tar -cJhf .gpu/base.tar.xz -C "$tmp/src" dist bin package.json
  git worktree remove --force "$tmp/src"; rm -rf "$tmp"
  log "base build of $rev -> .gpu/base.tar.xz"
}

unpack() {
  for f in .gpu/debs/*.deb; do dpkg -x "$f" /; done
  ldconfig
  mkdir -p /tmp/tapir
  [ -x /tmp/tapir/node ] || { xz -dc .gpu/node.xz > /tmp/tapir/node; chmod +x /tmp/tapir/node; }
  tar -xJf .gpu/app.tar.xz -C /tmp/tapir
  # the base build beside it, sharing its node_modules
  if [ -f .gpu/base.tar.xz ]; then mkdir -p /tmp/tapir-base && tar -xJf .gpu/base.tar.xz -C /tmp/tapir-base && ln -sfn /tmp/tapir/node_modules /tmp/tapir-base/node_modules; fi
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
    shift; dtypes=("$@"); [ ${#dtypes[@]} -gt 0 ] || dtypes=(f16 q8_0)
    out=${OUT:-/tmp}
    unpack
    preset=${TAPIR_PRESET:-llama-3.2-1b}  # (another preset rehearses the call on a small machine)
    common=(--synth "$preset" --prompt-tokens 128 --prefill-tokens 512 --gen-tokens 256 --json)
    # the first dtype is also checked against the float64 reference (2 positions; f16's takes minutes)
    check=(--check 2)
    for d in "${dtypes[@]}"; do
      log "tapir $d"
      (cd /tmp/tapir && ./node --no-concurrent-recompilation bin/tapir.js bench "${common[@]}" --dtype "$d" --taps 'blocks.*.hook_resid_post' "${check[@]}") > "$out/tapir-$d.json" || log "tapir $d failed"
      check=()
    done
    log "Hugging Face transformers"
    python3 benchmarks/hf_baseline.py --prompt-tokens 128 --prefill-tokens 512 > "$out/hf.json" || log "HF baseline failed"
    if [ -d /tmp/tapir-base ]; then
      log "base build, ${dtypes[0]}"
      # only the flags every build knows: decode after 128 tokens, prefill of those 128
      (cd /tmp/tapir-base && ../tapir/node --no-concurrent-recompilation bin/tapir.js bench --synth "$preset" --prompt-tokens 128 --gen-tokens 256 --json --dtype "${dtypes[0]}") > "$out/base-${dtypes[0]}.json" || true
    fi
    python3 benchmarks/compare.py "$out/hf.json" "$out"/tapir-*.json "$out"/base-*.json
    ;;
  interp)
    shift
    out=${OUT:-/tmp}
    unpack
    preset=${TAPIR_PRESET:-llama-3.2-1b}
    export __GL_SHADER_DISK_CACHE=0 # the NVIDIA driver compiles every pipeline anew: first runs are first runs
    log "PyTorch peer"
    # shellcheck disable=SC2086
    python3 benchmarks/interp_peer.py ${TAPIR_PEER_ARGS:-} > "$out/peer.json" || log "peer failed"
    bench=(bench --synth "$preset" --dtype f16 --prompt-tokens 128 --gen-tokens 128 --json)
    log "tapir decode"
    (cd /tmp/tapir && ./node --no-concurrent-recompilation bin/tapir.js "${bench[@]}" --taps 'blocks.*.hook_resid_post') > "$out/decode.json" || log "tapir bench failed"
    if [ -d /tmp/tapir-base ]; then
      log "base build decode"
      (cd /tmp/tapir-base && ../tapir/node --no-concurrent-recompilation bin/tapir.js "${bench[@]}") > "$out/decode-base.json" || log "base bench failed"
    fi
    log "tapir workloads"
    (cd /tmp/tapir && ./node --no-concurrent-recompilation dist/benchmarks/interp.js --out /tmp/interp --preset "$preset" \
      --peer "$out/peer.json" --decode "$out/decode.json" --decode-base "$out/decode-base.json") > /dev/null || log "tapir workloads failed"
    cp /tmp/interp/interp.json /tmp/interp/tapir.json "$out/" 2>/dev/null || true
    cat "$out/interp.json" 2>/dev/null || true
    ;;
  profile)
    # where the workloads' GPU time goes, kernel by kernel, for this build and the base build (same
    # model file, same call), and the GPU checks of the interpretability kernels on stories260K
    shift
    out=${OUT:-/tmp}; repo=$PWD
    unpack
    export __GL_SHADER_DISK_CACHE=0
    n=(--no-concurrent-recompilation)
    (cd /tmp/tapir && ./node "${n[@]}" dist/benchmarks/interp.js --prepare --out /tmp/interp --preset "${TAPIR_PRESET:-llama-3.2-1b}")
    log "profile"
    (cd /tmp/tapir && ./node "${n[@]}" dist/benchmarks/interp_profile.js --out /tmp/interp) > "$out/profile.json" || log "profile failed"
    if [ -d /tmp/tapir-base ]; then
      log "base build profile"
      (cd /tmp/tapir-base && ../tapir/node "${n[@]}" dist/benchmarks/interp_profile.js --out /tmp/interp) > "$out/profile-base.json" || log "base profile failed"
    fi
    if [ -f .gpu/models/stories260K.gguf ]; then
      log "GPU checks"
      (cd /tmp/tapir && ./node "${n[@]}" dist/benchmarks/gpu_check.js "$repo/.gpu/models/stories260K.gguf") > "$out/check.json" || log "GPU checks failed"
    fi
    ;;
  kernels)
    # the kernels only the GPU machine can run (the tensor-core matrix product) against their float64
    # references: $OUT/kernels.json (keep it in benchmarks/runs/)
    out=${OUT:-/tmp}
    unpack
    (cd /tmp/tapir && ./node --no-concurrent-recompilation dist/benchmarks/tensor_check.js) > "$out/kernels.json" || log "kernel checks failed"
    cat "$out/kernels.json"
    ;;
  session)
    # everything a session measures, in the order it matters (checks first: no benchmark of a wrong kernel);
    # TAPIR_SKIP="kernels f32 profile" leaves steps out (the device time left decides)
    out=${OUT:-/tmp}; o=/tmp/session; repo=$PWD; mkdir -p "$o"
    save() { tar -czf "$out/all.tgz" -C "$o" .; }
    want() { [[ " ${TAPIR_SKIP:-} " != *" $1 "* ]]; }
    if want kernels; then OUT=$o timeout 150 bash "$0" kernels > /dev/null 2> "$o/log.txt" || true; save; else unpack 2> "$o/log.txt"; fi
    n=(--no-concurrent-recompilation)
    export __GL_SHADER_DISK_CACHE=0
    if [ -f .gpu/models/stories260K.gguf ]; then
      (cd /tmp/tapir && timeout 90 ./node "${n[@]}" dist/benchmarks/gpu_check.js "$repo/.gpu/models/stories260K.gguf") > "$o/check.json" 2>> "$o/log.txt" || true; save
    fi
    (cd /tmp/tapir && ./node "${n[@]}" dist/benchmarks/interp.js --prepare --out /tmp/interp --preset "${TAPIR_PRESET:-llama-3.2-1b}") 2>> "$o/log.txt"
    if want profile; then (cd /tmp/tapir && timeout 90 ./node "${n[@]}" dist/benchmarks/interp_profile.js --out /tmp/interp) > "$o/profile.json" 2>> "$o/log.txt" || true; save; fi
    if ! grep -qs '"pass": false' "$o/kernels.json"; then OUT=$o timeout 300 bash "$0" interp > /dev/null 2>> "$o/log.txt" || true; fi; save
    if want f32; then
      (cd /tmp/tapir && TAPIR_TENSOR_CORES=off timeout 60 ./node "${n[@]}" dist/benchmarks/interp_profile.js --out /tmp/interp) > "$o/profile-f32.json" 2>> "$o/log.txt" || true; save
      (cd /tmp/tapir && TAPIR_TENSOR_CORES=off timeout 90 ./node "${n[@]}" dist/benchmarks/tensor_check.js) > "$o/kernels-f32.json" 2>> "$o/log.txt" || true; save
    fi
    echo "kernels: $(grep -cs '"pass": true' "$o/kernels.json") pass, $(grep -cs '"pass": false' "$o/kernels.json") fail; f32: $(grep -cs '"pass": true' "$o/kernels-f32.json") pass, $(grep -cs '"pass": false' "$o/kernels-f32.json") fail"
    cat "$o/interp.json" 2>/dev/null || true
    ;;
  quick)
    # when little device time is left: the GPU checks, then some workloads of the interp benchmark
    # (TAPIR_WORKLOADS, default the gradient ones and two short ones), each in its own process, the peer
    # only if asked; JSON lines in quick.jsonl, all saved after each step in $OUT/all.tgz
    out=${OUT:-/tmp}; o=/tmp/quick; repo=$PWD; mkdir -p "$o"
    save() { tar -czf "$out/all.tgz" -C "$o" .; }
    unpack 2> "$o/log.txt"
    n=(--no-concurrent-recompilation)
    export __GL_SHADER_DISK_CACHE=0
    # (TAPIR_QUICK_KERNELS=1: the tensor-core kernels' checks first, kernels.json; TAPIR_TENSOR_CHECK=
    # transposed for the transposed product's alone. TAPIR_QUICK_PEER="prefill512 ..": the PyTorch peer
    # of those workloads last, peer.json: what matters most comes back first when the time runs out)
    if [ -n "${TAPIR_QUICK_KERNELS:-}" ]; then
      log "kernel checks" 2>> "$o/log.txt"; (cd /tmp/tapir && timeout 150 ./node "${n[@]}" dist/benchmarks/tensor_check.js) > "$o/kernels.json" 2>> "$o/log.txt" || true; save
    fi
    if [ -f .gpu/models/stories260K.gguf ]; then
      log "GPU checks" 2>> "$o/log.txt"; (cd /tmp/tapir && timeout 90 ./node "${n[@]}" dist/benchmarks/gpu_check.js "$repo/.gpu/models/stories260K.gguf") > "$o/check.json" 2>> "$o/log.txt" || true; save
    fi
    (cd /tmp/tapir && ./node "${n[@]}" dist/benchmarks/interp.js --prepare --out /tmp/interp --preset "${TAPIR_PRESET:-llama-3.2-1b}") 2>> "$o/log.txt"
    for w in ${TAPIR_WORKLOADS:-grad128 attrib16x16 prefill512 cache128 lens16}; do
      log "$w" 2>> "$o/log.txt"; (cd /tmp/tapir && timeout 120 ./node "${n[@]}" dist/benchmarks/interp.js --workload "$w" --out /tmp/interp) >> "$o/quick.jsonl" 2>> "$o/log.txt" || true; save
    done
    # (TAPIR_QUICK_DECODE=1: the decode bench of this build and, with .gpu/base.tar.xz, the base build's:
    # decode.json, decode-base.json, as the interp runbook runs them)
    if [ -n "${TAPIR_QUICK_DECODE:-}" ]; then
      bench=(bench --synth "${TAPIR_PRESET:-llama-3.2-1b}" --dtype f16 --prompt-tokens 128 --gen-tokens 128 --json)
      log "decode" 2>> "$o/log.txt"; (cd /tmp/tapir && timeout 90 ./node "${n[@]}" bin/tapir.js "${bench[@]}" --taps 'blocks.*.hook_resid_post') > "$o/decode.json" 2>> "$o/log.txt" || true; save
      if [ -d /tmp/tapir-base ]; then
        log "base build decode" 2>> "$o/log.txt"; (cd /tmp/tapir-base && timeout 90 ../tapir/node "${n[@]}" bin/tapir.js "${bench[@]}") > "$o/decode-base.json" 2>> "$o/log.txt" || true; save
      fi
    fi
    # (TAPIR_QUICK_PROBE=1: the tensor-core product with parts taken out, probe.json: benchmarks/tensor_probe.ts)
    if [ -n "${TAPIR_QUICK_PROBE:-}" ]; then
      log "tensor probe" 2>> "$o/log.txt"; (cd /tmp/tapir && timeout 120 ./node "${n[@]}" dist/benchmarks/tensor_probe.js) > "$o/probe.json" 2>> "$o/log.txt" || true; save
    fi
    # (TAPIR_QUICK_STUDY=1: a 512-token prefill by block size and tiling, study.json: benchmarks/prefill_study.ts)
    if [ -n "${TAPIR_QUICK_STUDY:-}" ]; then
      log "prefill study" 2>> "$o/log.txt"; (cd /tmp/tapir && timeout 150 ./node "${n[@]}" dist/benchmarks/prefill_study.js --out /tmp/interp) > "$o/study.json" 2>> "$o/log.txt" || true; save
    fi
    if [ -n "${TAPIR_QUICK_PEER:-}" ]; then
      log "peer" 2>> "$o/log.txt"; timeout 120 python3 benchmarks/interp_peer.py --only "$TAPIR_QUICK_PEER" > "$o/peer.json" 2>> "$o/log.txt" || true; save
    fi
    tail -c 3000 "$o/quick.jsonl"
    ;;
  pack-base) shift; pack_base "$@" ;;
  *) sed -n '2,/^# \.gpu\/ holds/p' "$0" | sed '$d'; exit 2 ;;  # (the header, up to what .gpu/ holds)
esac
