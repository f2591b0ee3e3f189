#!/usr/bin/env bash
# Sets Distillery up on a fresh Debian machine: system packages (libtorch, the
# Fashion-MNIST dataset package, chromium for the report's browser tests), npm dependencies, the
# native addon, TypeScript.
#   LIBTORCH=/path/to/libtorch bash install.sh   builds against another LibTorch (e.g. CUDA)
set -euo pipefail
cd "$(dirname "$0")"

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "Distillery needs Node.js >= 20 (found: $(node --version 2>/dev/null || echo none))." >&2
  exit 1
fi

missing=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
if [ -z "${LIBTORCH:-}" ]; then
  have_pkg libtorch-dev || missing+=(libtorch-dev)
fi
have_pkg dataset-fashion-mnist || missing+=(dataset-fashion-mnist)
# libtorch's distributed engine (c10d) builds its Gloo backend against these headers.
[ -n "${LIBTORCH:-}" ] || have_pkg libgloo-dev || missing+=(libgloo-dev)
# The tests render `distillery report` pages in headless chromium (puppeteer-core drives it).
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
for tool in g++ make python3; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$([ "$tool" = g++ ] && echo g++ || echo "$tool")")
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "Installing system packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "Missing system packages: ${missing[*]}" >&2
    echo "Install them first, then run this script again:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

echo "Installing npm dependencies"
npm ci --no-audit --no-fund --loglevel=error
echo "Building the native addon (about a minute)"
npm run --silent build:native -- --loglevel=warn -j 2 >/dev/null
echo "Compiling TypeScript"
npm run --silent build
echo "Distillery is ready."
