#!/usr/bin/env bash
# Benchmark: initiates on PostgreSQL (a throwaway cluster from the Debian binaries, durable
# settings: fsync and synchronous commit on) with one replica, then with two replicas sharing
# the database (two load generators, one per replica, at the same time).
# Usage: bench/postgres.sh [requests]   (default 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-20000}
cargo build --release -p ajar -p ajar-bench
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
dir=$(mktemp -d)
chmod 755 "$dir"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$dir"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pgport=$(free_port)
as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust >/dev/null
as_pg "$bin/pg_ctl" -D "$dir/data" -w -l "$dir/pg.log" -o "-p $pgport -k $dir -h 127.0.0.1 -c max_connections=200" start >/dev/null
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  as_pg "$bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
"$bin/createdb" -h 127.0.0.1 -p "$pgport" -U postgres ajar
db="postgres://postgres@127.0.0.1:$pgport/ajar"
serve() { # $1: name
  local port; port=$(free_port)
  target/release/ajar serve --database-url "$db" --listen "127.0.0.1:$port" --log warn --max-live-grants 0 --accept-unenforced >"$dir/$1.out" 2>"$dir/$1.err" &
  pids+=($!)
  for _ in $(seq 100); do grep -q 'listening on' "$dir/$1.err" 2>/dev/null && break; sleep 0.1; done
  echo "http://127.0.0.1:$port"
}
a=$(serve a)
token=$(sed -n 's/^ajar bootstrap token: //p' "$dir/a.out")
echo "# $(nproc) cores, $(uname -r), ajar $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $("$bin/postgres" --version)"
echo "## one replica"
target/release/ajar-bench initiate --url "$a" --token "$token" --requests "$requests" --concurrency 32
target/release/ajar-bench initiate --url "$a" --token "$token" --requests "$requests" --rate 1000
echo "## two replicas, one load generator each (16 workers), at the same time"
b=$(serve b)
target/release/ajar-bench initiate --url "$a" --token "$token" --requests $((requests / 2)) --concurrency 16 &
first=$!
target/release/ajar-bench initiate --url "$b" --token "$token" --requests $((requests / 2)) --concurrency 16
wait "$first"
