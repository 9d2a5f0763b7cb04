#!/usr/bin/env bash
# Benchmark: bearer JWT authentication (verified every request, cached) against an in-process
# release server and a test identity provider on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p ajar-bench
target/release/ajar-bench oidc "$@"
