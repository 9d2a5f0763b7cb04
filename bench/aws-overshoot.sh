#!/usr/bin/env bash
# Benchmark: how long a security-group rule outlives its grant's end with `ajar agent --mode aws`,
# against moto (an EC2 API emulator from the Python package index; `.ci/run` installs it in
# /opt/ajar-moto). Builds release binaries unless AJAR_OVERSHOOT_PROFILE=debug.
# Usage: bench/aws-overshoot.sh [--window SECONDS] [--down 5,30]
set -euo pipefail
cd "$(dirname "$0")/.."
export AJAR_MOTO_VENV=${AJAR_MOTO_VENV:-/opt/ajar-moto}
profile=${AJAR_OVERSHOOT_PROFILE:-release}
if [ "$profile" = release ]; then
  cargo build --release -p ajar -p ajar-bench
else
  cargo build -p ajar -p ajar-bench
fi
echo "# $(nproc) cores, $(uname -r), ajar $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
"target/$profile/ajar-bench" aws-overshoot --ajar "target/$profile/ajar" "$@"
