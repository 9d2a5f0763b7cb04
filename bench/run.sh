#!/usr/bin/env bash
# Benchmark: end-to-end initiate throughput and latency against `ajar serve` on SQLite.
# Builds release binaries, starts a server on a temporary data directory and a free port,
# runs the closed-loop and open-loop (1,000 req/s) measurements, and stops the server.
# Usage: bench/run.sh [requests]   (default 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-20000}
cargo build --release -p ajar -p ajar-bench
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
target/release/ajar serve --data-dir "$dir" --listen "127.0.0.1:$port" --log warn >"$dir/out" 2>"$dir/err" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do grep -q 'bootstrap token' "$dir/out" 2>/dev/null && break; sleep 0.1; done
token=$(sed -n 's/^ajar bootstrap token: //p' "$dir/out")
url="http://127.0.0.1:$port"
echo "# $(nproc) cores, $(uname -r), ajar $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
target/release/ajar-bench initiate --url "$url" --token "$token" --requests "$requests" --concurrency 32
target/release/ajar-bench initiate --url "$url" --token "$token" --requests "$requests" --rate 1000
