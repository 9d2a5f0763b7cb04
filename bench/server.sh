# Sourced by the benchmark scripts: builds release binaries, starts `ajar serve` on a temporary
# data directory and a free port, stops it on exit, and sets $url and $token (the bootstrap
# token). Run from the repository root.
cargo build --release -p ajar -p ajar-bench
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# One bench token stands for many users: no per-principal grant limit.
target/release/ajar serve --data-dir "$dir" --listen "127.0.0.1:$port" --log warn --max-live-grants 0 --accept-unenforced >"$dir/out" 2>"$dir/err" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do grep -q 'bootstrap token' "$dir/out" 2>/dev/null && break; sleep 0.1; done
token=$(sed -n 's/^ajar bootstrap token: //p' "$dir/out")
url="http://127.0.0.1:$port"
echo "# $(nproc) cores, $(uname -r), ajar $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
