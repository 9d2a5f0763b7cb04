#!/usr/bin/env bash
# Benchmark: the first page of every list at fleet size. Builds release binaries, starts
# `ajar serve` on a temporary SQLite database, loads 100,000 machines (100 resource groups, one
# policy each) and then network requests in steps (0, 100,000, 1,000,000 by default), timing the
# first page of each list after each step and reporting the server's peak memory.
# Usage: bench/scale.sh [machines] [steps]   e.g. bench/scale.sh 10000 0,10000,100000
# The server holds a connection per worker; raise the open-file limit if you raise --concurrency.
set -euo pipefail
cd "$(dirname "$0")/.."
machines=${1:-100000}
steps=${2:-0,100000,1000000}
ulimit -n 65536 2>/dev/null || true
. bench/server.sh
target/release/ajar-bench scale --url "$url" --token "$token" --machines "$machines" \
  --steps "$steps" --server-pid "$server"
