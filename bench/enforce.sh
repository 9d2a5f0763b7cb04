#!/usr/bin/env bash
# Benchmark: how fast a grant opens and closes through a real agent. Builds release binaries,
# then runs `ajar-bench enforce` (namespaces, `ajar serve`, `ajar agent`, nftables); needs root.
# With fwknop-server and fwknop-client installed it also opens the same port with fwknop.
# Usage: bench/enforce.sh [opens] [closes] [fwknop-opens]   (defaults 200, 20, 100)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p ajar -p ajar-bench
echo "# $(nproc) cores, $(uname -r), $(nft --version), ajar $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
fw=${3:-100}
command -v fwknopd >/dev/null && command -v fwknop >/dev/null || fw=0
target/release/ajar-bench enforce --ajar target/release/ajar --opens "${1:-200}" --closes "${2:-20}" --fwknop "$fw"
