#!/usr/bin/env bash
# The invariant suite against real etcd: K real conch processes under a seeded storm of faults.
#   scripts/invariant.sh --seed 7 --duration 60s            one seed (CONCH_SEED=7 works too)
#   scripts/invariant.sh --soak --duration 10m              random seeds, each printed
#   options: --clients K --max N --faults WrapperKill,Partition,... --conch PATH
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build -q --bins
exec target/debug/invariant "$@"
