#!/usr/bin/env bash
# The whole test suite: setup, format check, clippy, then every test (unit + real etcd).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The integration suites run the real binary: build it first.
cargo build --workspace --bins
cargo test --workspace -- --test-threads 4
