#!/usr/bin/env bash
# Simulator speed (07-performance B8): simulated seconds per wall second and seeds per
# second for the mixed scenario with 10 clients, on one core, release build.
# Usage: scripts/bench-sim.sh [SEEDS]   (default 1..500); writes target/bench-sim.json.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-1..500}
cargo build --release -q -p conch
pin=()
if command -v taskset >/dev/null; then pin=(taskset -c 0); fi
"${pin[@]}" ./target/release/conch sim --scenario mixed --clients 10 --seeds "$seeds" --json --timing > target/bench-sim.jsonl
summary=$(tail -n 1 target/bench-sim.jsonl)
echo "$summary" > target/bench-sim.json
python3 - "$summary" <<'PY'
import json, sys
s = json.loads(sys.argv[1])
print(f"B8 mixed, 10 clients, one core: {s['speed']:,}x real time "
      f"({s['simulated_s']:,.0f} simulated s in {s['wall_s']:.2f} s wall), "
      f"{s['seeds_per_s']:.0f} seeds/s; {s['passed']} passed, {s['failed']} failed "
      f"(target >= 10,000x, aim 100,000x)")
PY
