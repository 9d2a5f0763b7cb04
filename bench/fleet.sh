#!/usr/bin/env bash
# Benchmark: a fleet of agents long-polling one server. Builds release binaries, starts
# `ajar serve` on a fresh SQLite database (or, with --postgres, on a throwaway PostgreSQL cluster
# with pg_stat_statements loaded), registers AGENTS agents guarding ten machines each (in 100
# resource groups, one JIT policy each protecting port 22) through the API, and runs one
# simulated agent per registered agent: a real long poll on its desired state with its own token,
# one connection each. It measures the idle server while every agent waits, then sends initiates
# at each of RATES per second (20 s each, each from its own address) and times each from its answer to its agent's poll
# returning a state that names it.
# Usage: bench/fleet.sh [agents] [rates] [--postgres]   e.g. bench/fleet.sh 10000 100,1000
#
# Every agent holds a connection, so the server and the bench each need one file descriptor per
# agent and more: the open-file limit is raised here for both (to 65,536, or to the hard limit
# when that is lower; 10,000 agents need about 10,100). When the hard limit is too low, raise it
# first (`ulimit -Hn` as root, or LimitNOFILE= in a unit).
set -euo pipefail
cd "$(dirname "$0")/.."
postgres=0
positional=()
for a in "$@"; do
  case "$a" in
    --postgres) postgres=1 ;;
    *) positional+=("$a") ;;
  esac
done
agents=${positional[0]:-1000}
rates=${positional[1]:-100,1000}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt $((agents + 200)) ]; then
  echo "the open-file limit ($(ulimit -n)) is too low for $agents agents" >&2
  exit 1
fi
psql_url=()
if [ "$postgres" = 0 ]; then
  . bench/server.sh
else
  cargo build --release -p ajar -p ajar-bench
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  dir=$(mktemp -d)
  chmod 755 "$dir"
  as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
  pgport=$(free_port)
  as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust >/dev/null
  as_pg "$bin/pg_ctl" -D "$dir/data" -w -l "$dir/pg.log" \
    -o "-p $pgport -k $dir -h 127.0.0.1 -c max_connections=200 -c shared_preload_libraries=pg_stat_statements" \
    start >/dev/null
  server=
  cleanup() {
    [ -n "$server" ] && { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }
    as_pg "$bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$dir"
  }
  trap cleanup EXIT
  "$bin/createdb" -h 127.0.0.1 -p "$pgport" -U postgres ajar
  db="postgres://postgres@127.0.0.1:$pgport/ajar"
  port=$(free_port)
  target/release/ajar serve --database-url "$db" --listen "127.0.0.1:$port" --log warn --max-live-grants 0 --accept-unenforced >"$dir/out" 2>"$dir/err" &
  server=$!
  for _ in $(seq 100); do grep -q 'bootstrap token' "$dir/out" 2>/dev/null && break; sleep 0.1; done
  token=$(sed -n 's/^ajar bootstrap token: //p' "$dir/out")
  url="http://127.0.0.1:$port"
  export PATH="$bin:$PATH"
  psql_url=(--psql "$db")
  echo "# $(nproc) cores, $(uname -r), ajar $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $("$bin/postgres" --version)"
fi
echo "# open-file limit $(ulimit -n)"
target/release/ajar-bench fleet --url "$url" --token "$token" --agents "$agents" \
  --rates "$rates" --server-pid "$server" "${psql_url[@]}"
