#!/usr/bin/env bash
# The fault-injection suite (needs root, nft, ip, python3, the postgresql binaries and the
# faketime package): one fault per scenario during an open grant, then the table of
# fault -> overshoot -> outcome. Extra arguments go to `ajar-bench faults` (e.g. --only disk).
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${AJAR_FAULTS_PROFILE:-release}"
if [ "$profile" = release ]; then
  cargo build --release -p ajar -p ajar-bench
else
  cargo build -p ajar -p ajar-bench
fi
"target/$profile/ajar-bench" faults --ajar "target/$profile/ajar" "$@"
