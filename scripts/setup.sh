#!/usr/bin/env bash
# Makes a fresh Debian 12/13 machine ready for tapir: a WebGPU-capable Vulkan driver
# (Mesa lavapipe >= 25 when the machine has no GPU), npm packages, and the build.
# Idempotent: each step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${XDG_RUNTIME_DIR:=/tmp/xdg-runtime-$(id -u)}"; export XDG_RUNTIME_DIR
mkdir -p "$XDG_RUNTIME_DIR"; chmod 700 "$XDG_RUNTIME_DIR" 2>/dev/null || true

log() { printf 'setup: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  log "need root for: $*"; return 1; fi; }

# Dawn needs a Vulkan 1.1+ driver with descriptor-indexing features. Debian 12's Mesa 22.3 lavapipe
# lacks them ("shaderUniform*ArrayDynamicIndexing required"); Mesa 25 (bookworm-backports, or
# Debian 13's main suite) has them. A machine with a real GPU driver needs none of this.
mesa_major() { dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | sed -E 's/^([0-9]+:)?([0-9]+).*/\2/'; }
have_vendor_icd() { ls /usr/share/vulkan/icd.d/ /etc/vulkan/icd.d/ 2>/dev/null | grep -qvi -E 'lvp|intel|radeon|virtio|nouveau|asahi|freedreno|broadcom|panfrost|powervr|gfxstream|dzn' ; }
install_lavapipe() {
  if [ "$(mesa_major || true)" != "" ] && [ "$(mesa_major)" -ge 25 ] && dpkg -s libvulkan1 >/dev/null 2>&1; then return; fi
  if have_vendor_icd; then log "a vendor Vulkan driver is installed; not installing lavapipe"; return; fi
  command -v apt-get >/dev/null || { log "no apt-get: install Mesa >= 25 (lavapipe) and libvulkan1 by hand"; return 1; }
  . /etc/os-release
  local suite=""
  if [ "${VERSION_CODENAME:-}" = bookworm ]; then
    suite=bookworm-backports
    if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
      # same mirror as the main suite
      local uri; uri=$(grep -rhs -E '^(URIs:|deb )' /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list 2>/dev/null \
        | grep -v security | head -1 | sed -E 's/^URIs: *//; s/^deb +(\[[^]]*\] +)?//; s/ .*//' || true)
      [ -n "$uri" ] || uri=http://deb.debian.org/debian
      log "adding $suite from $uri"
      printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" \
        | as_root tee /etc/apt/sources.list.d/tapir-backports.sources >/dev/null
    fi
  fi
  log "installing Mesa lavapipe (Vulkan on the CPU)"
  as_root apt-get update -qq
  if [ -n "$suite" ]; then
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq -t "$suite" mesa-vulkan-drivers libvulkan1 >/dev/null
  else
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
  fi
}

install_lavapipe

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"; npm ci --no-audit --no-fund --loglevel=error
fi
# headless Chromium for the tests that look at pictures (Debian's package; playwright-core drives it)
if [ "${1:-}" = "--tests" ] && ! command -v chromium >/dev/null; then
  log "installing chromium (Debian package) for the rendering tests"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >/dev/null
fi
# the llama.cpp oracle for tests (CPU build of node-llama-cpp only): `setup.sh --tests`
if [ "${1:-}" = "--tests" ] && { [ ! -d test/oracle/node_modules ] || [ test/oracle/package-lock.json -nt test/oracle/node_modules/.package-lock.json ]; }; then
  log "npm ci (test/oracle: llama.cpp via node-llama-cpp, CPU only)"
  (cd test/oracle && npm ci --omit=optional --no-audit --no-fund --loglevel=error)
fi
if [ ! -f dist/.built ] || [ -n "$(find compiler runtime ops models examples cli viewer benchmarks package.json tsconfig.json -newer dist/.built -type f 2>/dev/null | head -1)" ]; then
  log "building"; npm run -s build
fi
