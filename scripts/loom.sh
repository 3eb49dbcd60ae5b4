#!/usr/bin/env bash
# loom models of the drivers' cross-thread protocols (the tests named loom_*):
#   the status API's snapshot and metrics (driver-etcd/src/status.rs), the pid gate between
#   a blocking wait() and kills by pid (driver-etcd/src/reap.rs, used by shim_link.rs and
#   hooks.rs), the shim's signal flag and SIGCHLD self-pipe (driver-etcd/src/loom_shim.rs).
#   scripts/loom.sh                                  every model, LOOM_MAX_PREEMPTIONS=3
#   LOOM_MAX_PREEMPTIONS=4 scripts/loom.sh loom_status
# `--cfg loom` goes to conch-driver-etcd alone (cargo rustc): a global RUSTFLAGS would put
# tokio in its own loom mode, which drops tokio::net and breaks hyper-util.
set -euo pipefail
cd "$(dirname "$0")/.."
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}"
filter="${1:-loom_}"
echo "loom.sh: building the models (conch-driver-etcd --features loom, --cfg loom)"
exe=$(nice -n 10 cargo rustc -q -p conch-driver-etcd --features loom --profile test --lib \
        --message-format=json-render-diagnostics -- --cfg loom |
      sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
[ -n "$exe" ] || { echo "loom.sh: no test binary built" >&2; exit 1; }
echo "loom.sh: LOOM_MAX_PREEMPTIONS=$LOOM_MAX_PREEMPTIONS, filter $filter"
exec nice -n 10 timeout 1800 "$exe" "$filter" --test-threads=1
