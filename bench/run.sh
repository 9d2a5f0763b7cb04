#!/usr/bin/env bash
# Benchmark: end-to-end initiate throughput and latency against `ajar serve` on SQLite.
# Builds release binaries, starts a server on a temporary data directory and a free port,
# runs the closed-loop and open-loop (1,000 req/s) measurements, and stops the server.
# Usage: bench/run.sh [requests]   (default 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-20000}
. bench/server.sh
target/release/ajar-bench initiate --url "$url" --token "$token" --requests "$requests" --concurrency 32
target/release/ajar-bench initiate --url "$url" --token "$token" --requests "$requests" --rate 1000
