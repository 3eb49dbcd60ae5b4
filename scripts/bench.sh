#!/usr/bin/env bash
# The benchmark program (07-performance B1–B8): conch side by side with etcdctl lock against
# one throwaway etcd on tmpfs; prints a Markdown table, writes JSON.
# Usage: scripts/bench.sh [--quick] [--json FILE] [--compare FILE] [--only B1,B3]
#   --quick   ≤ 1 minute on 2 cores (fewer trials, K ≤ 100, 50 cron jobs, 5 s holds); CI runs it
# Default JSON: target/bench.json (the previous one is kept as target/bench.prev.json and
# compared with when no --compare is given).
set -euo pipefail
cd "$(dirname "$0")/.."
# Separately, so conch is the binary `cargo build --release -p conch` makes (no feature
# unification with the test crate).
cargo build --release -q -p conch
cargo build --release -q -p conch-tests --bin conch-bench
json=target/bench.json
args=()
compare=0
while [ $# -gt 0 ]; do
  case "$1" in
    --json) json=$2; shift 2 ;;
    --compare) compare=1; args+=("$1" "$2"); shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
if [ "$compare" = 0 ] && [ -f "$json" ]; then
  cp "$json" target/bench.prev.json
  args+=(--compare target/bench.prev.json)
fi
exec ./target/release/conch-bench --json "$json" "${args[@]}"
