#!/usr/bin/env bash
# Everything `npm run demo` and `npm test` need on a fresh Debian/Ubuntu machine:
# Node >= 20, redis-server, the npm packages, the Redis module (and with --tests, Chromium). Safe to run again:
# each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'peerless setup: %s\n' "$*" >&2; }

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  say "Node.js >= 20 is required (found: $(node --version 2>/dev/null || echo none))"
  exit 1
fi

if ! command -v redis-server >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    say "installing redis-server with apt-get"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
    # Debian starts a system service on install; peerless runs its own servers.
    $sudo systemctl disable --now redis-server >/dev/null 2>&1 || true
  else
    say "redis-server is missing and apt-get is not available: install Redis >= 7 with your package manager, then run this again"
    exit 1
  fi
fi

if ! command -v gcc >/dev/null 2>&1 || ! command -v make >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    say "installing gcc and make with apt-get"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq gcc make >/dev/null
  else
    say "gcc and make are needed to build the Redis module"
    exit 1
  fi
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
fi

make -s -C native

# The native compute backend (optional): Debian's oneDNN and a Node-API addon over it, built
# against the installed Node headers (node-gyp's download of headers cannot reach its host
# here). Without them Peerless computes on wasm, as before.
addon=native/addon/build/Release/peerless_native.node
if [ ! -f /usr/include/oneapi/dnnl/dnnl.hpp ] && command -v apt-get >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  say "installing libdnnl-dev (oneDNN) and g++ with apt-get, for the native backend"
  { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libdnnl-dev g++ >/dev/null; } \
    || say "libdnnl-dev could not be installed: the native backend is off, Peerless computes on wasm"
fi
# Rebuilt when any of its sources is newer than the built addon.
addon_stale() {
  [ ! -f "$addon" ] || [ -n "$(find native/addon -maxdepth 1 \( -name '*.cc' -o -name '*.h' -o -name binding.gyp \) -newer "$addon")" ]
}
if [ -f /usr/include/oneapi/dnnl/dnnl.hpp ] && addon_stale; then
  nodedir=$(dirname "$(dirname "$(command -v node)")")
  [ -d "$nodedir/include/node" ] || nodedir=/usr
  if ! (cd native/addon && node ../../node_modules/node-gyp/bin/node-gyp.js rebuild --nodedir="$nodedir" >/tmp/peerless-addon-build.log 2>&1); then
    say "the native addon did not build (see /tmp/peerless-addon-build.log): the native backend is off, Peerless computes on wasm"
  fi
fi

# For the tests only (npm test passes --tests): Debian's Chromium, which the dashboard's
# browser test drives (playwright-core with the system browser). Without it that test says
# why and skips.
if [ "${1:-}" = "--tests" ] && ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  say "installing chromium with apt-get, for the dashboard's browser test"
  { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null; } \
    || say "chromium could not be installed: the dashboard's browser test will skip"
fi
