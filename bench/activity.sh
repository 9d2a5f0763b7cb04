#!/usr/bin/env bash
# Benchmark: the activity log's export and verification on a large log. Fills the log with
# initiates (one record each, plus the setup's), then times the streamed CSV download and
# `GET /api/v1/activity/verify`, and reports the server's peak resident memory before and after
# the export (it must not grow with the log).
# Usage: bench/activity.sh [initiates]   (default 200000)
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-200000}
. bench/server.sh
target/release/ajar-bench initiate --url "$url" --token "$token" --requests "$requests" --concurrency 32
hwm() { awk '/VmHWM/ {print $2 " kB"}' "/proc/$server/status"; }
echo "peak RSS after filling: $(hwm)"
curl -sS -o "$dir/export.csv" -H "Authorization: Bearer $token" \
  -w 'CSV export: %{size_download} bytes in %{time_total} s\n' "$url/api/v1/activity?format=csv"
echo "rows (without the header): $(( $(python3 -c 'import csv,sys; print(sum(1 for _ in csv.reader(open(sys.argv[1], newline=""))))' "$dir/export.csv") - 1 ))"
echo "peak RSS after the export: $(hwm)"
curl -sS -H "Authorization: Bearer $token" -w '\nverify: %{time_total} s\n' "$url/api/v1/activity/verify"
echo "peak RSS after verify: $(hwm)"
