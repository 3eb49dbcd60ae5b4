#!/usr/bin/env bash
# The whole test suite: setup, format check, clippy, then every test (unit + real etcd).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The invariant suite shows its checkers catch a conch whose shim ignores its deadlines:
# build that one first and keep it aside, then the real binaries the suites run.
cargo build -p conch --features break-shim-deadline
cp target/debug/conch target/broken-conch
cargo build --workspace --bins
cargo test --workspace -- --test-threads 4
# The simulator over a fixed seed set of every scenario plus a batch of fresh mixed seeds.
# One verdict line per seed goes to target/sim/; the summary and any failure (with the
# command that replays it) are printed here.
mkdir -p target/sim
fresh=$(( $(od -An -N4 -tu4 /dev/urandom) + 1000000 ))
status=0
for run in "mixed 1..1000" "elect 1..200" "sema 1..200" "cron 1..200" "mixed $fresh..$((fresh + 199))"; do
    set -- $run
    out="target/sim/$1-${2/../-}.txt"
    echo "conch sim --scenario $1 --seeds $2"
    if ! ./target/debug/conch sim --scenario "$1" --seeds "$2" > "$out"; then
        grep -A12 '^FAIL' "$out" | head -60
        status=1
    fi
    tail -n 1 "$out"
done
exit $status
