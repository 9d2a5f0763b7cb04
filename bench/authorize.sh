#!/usr/bin/env bash
# Benchmark: `authorize` decisions in-process and over HTTP against `ajar serve` on SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/server.sh
target/release/ajar-bench authorize
target/release/ajar-bench authorize --application-roles
target/release/ajar-bench authorize-http --url "$url" --token "$token"
