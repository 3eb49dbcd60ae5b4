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
