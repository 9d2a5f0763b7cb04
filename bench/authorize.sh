#!/usr/bin/env bash
# Benchmark: `authorize` decisions in-process and over HTTP against `ajar serve` on SQLite.
# Builds release binaries, starts a server on a temporary data directory and a free port, runs
# both measurements and stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p ajar -p ajar-bench
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
target/release/ajar serve --data-dir "$dir" --listen "127.0.0.1:$port" --log warn >"$dir/out" 2>"$dir/err" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do grep -q 'bootstrap token' "$dir/out" 2>/dev/null && break; sleep 0.1; done
token=$(sed -n 's/^ajar bootstrap token: //p' "$dir/out")
echo "# $(nproc) cores, $(uname -r), ajar $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
target/release/ajar-bench authorize
target/release/ajar-bench authorize-http --url "http://127.0.0.1:$port" --token "$token"
