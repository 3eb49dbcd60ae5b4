#!/usr/bin/env bash
# Fuzzing campaign: every target in fuzz/ for N seconds, each with its corpus.
#   scripts/fuzz.sh                 60 s per target
#   scripts/fuzz.sh --seconds 600   10 min per target
#   scripts/fuzz.sh --target schedule --seconds 30 [--cmin]
# Installs cargo-fuzz when missing; uses `cargo +nightly`, else stable with
# RUSTC_BOOTSTRAP=1 (and says which). New coverage inputs land in fuzz/corpus/<target>/
# (libFuzzer writes them there); --cmin minimises each corpus afterwards (by edge
# coverage). A crash or a
# failed property exits 1 and leaves its reproducer in fuzz/artifacts/<target>/
# (replay: cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>, from fuzz/).
# Figures per target (execs, coverage, corpus) are printed and appended to
# fuzz/campaigns.log (not with CONCH_FUZZ_NO_LOG=1). CONCH_FUZZ_STEP_MAX=S bounds each
# target's step, build included, at S seconds; a step cut by that bound is reported as
# not finished, not as a failure (CI's sample). Runs under `nice -n 10`.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=60
targets=()
cmin=0
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --target) targets+=("$2"); shift 2 ;;
    --cmin) cmin=1; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "fuzz.sh: unknown option $1" >&2; exit 64 ;;
  esac
done
case "$seconds" in ''|*[!0-9]*) echo "fuzz.sh: --seconds needs a whole number" >&2; exit 64 ;; esac

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz"
  nice -n 10 cargo install cargo-fuzz --locked
fi
if cargo +nightly --version >/dev/null 2>&1; then
  toolchain=(+nightly)
  echo "fuzz.sh: toolchain: nightly ($(cargo +nightly --version))"
else
  toolchain=()
  export RUSTC_BOOTSTRAP=1
  echo "fuzz.sh: toolchain: stable with RUSTC_BOOTSTRAP=1 ($(cargo --version)); no nightly found"
fi

if [ ${#targets[@]} -eq 0 ]; then
  for f in fuzz_targets/*.rs; do targets+=("$(basename "$f" .rs)"); done
fi

failed=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  before=$(ls "corpus/$t" | wc -l)
  log=$(mktemp)
  echo "fuzz.sh: $t for ${seconds}s (corpus: $before inputs)"
  rc=0
  # -a: the core's debug assertions and overflow checks are on in the fuzzed build.
  # -timeout: one input may take at most 30 s (a fault_plan run is a whole simulation).
  # The bound on the whole step leaves room for the first build.
  nice -n 10 timeout --kill-after=30 "${CONCH_FUZZ_STEP_MAX:-$((seconds + 300))}" \
    cargo "${toolchain[@]}" fuzz run -a "$t" "corpus/$t" -- \
      -max_total_time="$seconds" -timeout=30 -print_final_stats=1 \
      -artifact_prefix="artifacts/$t/" >"$log" 2>&1 || rc=$?
  after=$(ls "corpus/$t" | wc -l)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  line="$(date -u +%FT%TZ) $t seconds=$seconds execs=${execs:-?} cov=${cov:-?} ft=${ft:-?} corpus=$before->$after rc=$rc"
  echo "fuzz.sh: $line"
  [ "${CONCH_FUZZ_NO_LOG:-0}" = 1 ] || echo "$line" >>campaigns.log
  if [ "$rc" -eq 124 ] && [ -n "${CONCH_FUZZ_STEP_MAX:-}" ]; then
    echo "fuzz.sh: $t not finished within CONCH_FUZZ_STEP_MAX=${CONCH_FUZZ_STEP_MAX}s (build included); not a failure"
  elif [ "$rc" -ne 0 ]; then
    failed+=("$t")
    grep -E 'panicked at|SUMMARY|Test unit written|ERROR' "$log" | head -20 || true
    cp "$log" "artifacts/$t/last-run.log"
    echo "fuzz.sh: $t FAILED; reproducer and log in fuzz/artifacts/$t/"
  fi
  rm -f "$log"
  if [ "$cmin" -eq 1 ] && [ "$rc" -eq 0 ]; then
    # Edges only (-use_counters=0): a corpus small enough to check in.
    nice -n 10 cargo "${toolchain[@]}" fuzz cmin -a "$t" "corpus/$t" -- -timeout=30 -use_counters=0 >/dev/null 2>&1 ||
      echo "fuzz.sh: cmin $t failed"
    echo "fuzz.sh: $t corpus after cmin: $(ls "corpus/$t" | wc -l)"
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: FAIL: ${failed[*]}"
  exit 1
fi
echo "fuzz.sh: ok: ${targets[*]}"
