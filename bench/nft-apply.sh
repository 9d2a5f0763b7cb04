#!/usr/bin/env bash
# Benchmark: the agent applying a desired state of many grants to nftables in a network
# namespace (first apply, then one grant added and one removed on top), each step checked against
# the kernel's table. Builds release binaries; needs root.
# Usage: bench/nft-apply.sh [grants] [machines] [repetitions] [mode]   (defaults 10000, 1000, 5, host)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p ajar-bench
echo "# $(nproc) cores, $(uname -r), $(nft --version), ajar $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
target/release/ajar-bench nft-apply --grants "${1:-10000}" --machines "${2:-1000}" \
  --repetitions "${3:-5}" --mode "${4:-host}"
