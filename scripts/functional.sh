#!/usr/bin/env bash
# The functional tester: a 3-member etcd cluster on loopback, real conch stressers, a
# round loop of failure cases (etcd's names plus conch's own), checkers after each round.
#   scripts/functional.sh                               every case once, a fresh seed (printed)
#   scripts/functional.sh --seed 7 --cases SIGKILL_LEADER,MOVE_LEADER --rounds 2
#   scripts/functional.sh --ci                          the fixed-seed CI subset (about 3 min)
#   CONCH_ETCD_BIN_DIR=/path/to/etcd-3.5 scripts/functional.sh --ci    against another etcd
# Exit 0 when every checker held, 1 with the seed and the replay command otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
nice cargo build -q --bins
exec target/debug/functional "$@"
