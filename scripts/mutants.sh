#!/usr/bin/env bash
# Mutation testing of core-sm's safety modules with the SIMULATOR ALONE as the test
# command: cargo-mutants mutates core-sm and runs only driver-sim/tests/mutants_sim.rs
# (`conch sim`'s run_seed over seeds 1..=N of the module's scenarios; no unit test).
#   scripts/mutants.sh --module ranking --seeds 50         every mutant of one module
#   scripts/mutants.sh --module all --sample 10 --seed 7   10 mutants per module (a shard
#                                                          chosen by the seed: CI rotates)
#   options: --timeout S (per mutant's test, default 300), --jobs J (default 1),
#            --rescore (no run: recount mutants.out/<module>/ against the equivalent list)
# Writes mutants.out/<module>/ (cargo-mutants' outcomes) and mutants.out/survivors.txt:
# the missed mutants that core-sm/mutants-equivalent.txt does not list as equivalent.
# Prints the score: caught (timeouts count as caught) / (viable - equivalent).
# core-sm/mutants-survivors.txt lists the known survivors the simulator cannot kill yet
# (each with what would kill it): they count as missed in the score and are printed,
# but only a survivor in neither list makes the exit 1 (so CI's sample catches a loss of
# the simulator's power). CONCH_MUTANTS_TARGET: the cargo target dir (default
# target/mutants; CI passes target to reuse the built dependencies).
# Runs under `nice -n 10`.
set -euo pipefail
cd "$(dirname "$0")/.."

# The safety modules. Not mutated: the views only the CLI and the status API read
# (cron_view.rs: `conch cron ls|results|status`; conchd/stats.rs: `/metrics`, `/healthz`),
# which the simulator does not run; no rule of the daemon reads them (bin's cron tests
# and tests/tests/cron_conchd.rs cover them).
modules=(session ranking hold runner supervision shim_rules service cron conchd schedule endpoints)
module=all seeds=8 sample=0 seed=0 timeout=300 jobs=1 rescore=0
while [ $# -gt 0 ]; do
  case "$1" in
    --module) module="$2"; shift 2 ;;
    --seeds) seeds="$2"; shift 2 ;;
    --sample) sample="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --timeout) timeout="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --rescore) rescore=1; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "mutants.sh: unknown option $1" >&2; exit 64 ;;
  esac
done
for n in "$seeds" "$sample" "$seed" "$timeout" "$jobs"; do
  case "$n" in ''|*[!0-9]*) echo "mutants.sh: numbers only, got '$n'" >&2; exit 64 ;; esac
done
if [ "$module" = all ]; then chosen=("${modules[@]}"); else IFS=, read -r -a chosen <<<"$module"; fi

# The scenarios in which each module's rules are exercised.
scenarios_of() {
  case "$1" in
    cron|conchd|schedule) echo cron,mixed ;;
    endpoints) echo elect,sema,cron,mixed ;;
    session|ranking|hold|runner|supervision|shim_rules|service) echo elect,sema,mixed ;;
    *) echo "mutants.sh: unknown module $1 (one of: ${modules[*]})" >&2; return 1 ;;
  esac
}
files_of() {
  if [ "$1" = conchd ]; then
    # One -f per file (cargo-mutants takes one path each); the *_tests.rs modules are
    # tests, stats.rs the status API's view (see the module list above).
    for f in core-sm/src/conchd.rs core-sm/src/conchd/*.rs; do
      case "$f" in *_tests.rs|*/stats.rs) ;; *) printf -- '-f %s ' "$f" ;; esac
    done
  else
    echo "-f core-sm/src/$1.rs"
  fi
}

if [ "$rescore" -eq 1 ]; then
  :
elif ! cargo mutants --version >/dev/null 2>&1; then
  echo "mutants.sh: installing cargo-mutants"
  nice -n 10 cargo install cargo-mutants --locked
fi

# The unmutated tree must pass the same command (cargo-mutants' baseline is skipped so
# every module does not rebuild it once more).
export CONCH_MUTANTS_SEEDS="$seeds"
# cargo-mutants builds copies of the tree (their files newer than ours) into the same
# target directory: a build of this tree afterwards could take a mutant's artifacts for
# fresh ones (the baseline then failed at seed 1, and so could any later `cargo test`).
# Newer mtimes on our sources make cargo rebuild them: before the baseline and on exit.
fresh() { find core-sm driver-sim -name '*.rs' -exec touch {} +; }
trap fresh EXIT
if [ "$rescore" -eq 0 ]; then
  fresh
  echo "mutants.sh: baseline: $seeds seeds of every scenario"
  CONCH_MUTANTS_SCENARIOS=elect,sema,cron,mixed nice -n 10 cargo test -q -p conch-driver-sim --test mutants_sim >/dev/null
fi

# A mutant's name without its line and column: `core-sm/src/f.rs:12:5: replace …` →
# `core-sm/src/f.rs: replace …` (the lists name mutants so, to stay valid as code moves).
unplaced() { sed -E 's/^([^:]+):[0-9]+:[0-9]+: /\1: /'; }
# The names a list holds (comments and trailing blanks cut; placed names accepted too).
listed() { grep -v '^#' "$1" | cut -d'#' -f1 | sed 's/[[:space:]]*$//' | unplaced; }

mkdir -p mutants.out
equivalent=core-sm/mutants-equivalent.txt
known=core-sm/mutants-survivors.txt
: >mutants.out/survivors.txt
: >mutants.out/known-survivors.txt
total_caught=0 total_missed=0 total_equiv=0 total_timeout=0 total_unviable=0
for m in "${chosen[@]}"; do
  scenarios=$(scenarios_of "$m")
  out="mutants.out/$m"
  if [ "$rescore" -eq 1 ]; then
    [ -d "$out/mutants.out" ] || continue
  else
  # shellcheck disable=SC2046 # the file globs are cargo-mutants' own
  count=$(cargo mutants --list -p conch-core $(files_of "$m") | wc -l)
  shard=()
  if [ "$sample" -gt 0 ] && [ "$count" -gt "$sample" ]; then
    n=$(( (count + sample - 1) / sample ))
    shard=(--shard "$(( seed % n ))/$n" --sharding round-robin)
  fi
  echo "mutants.sh: $m: $count mutants${shard:+, shard ${shard[1]}}; scenarios $scenarios, $seeds seeds each"
  rm -rf "$out"
  rc=0
  # shellcheck disable=SC2046
  CONCH_MUTANTS_SCENARIOS="$scenarios" CARGO_TARGET_DIR="$PWD/${CONCH_MUTANTS_TARGET:-target/mutants}" nice -n 10 \
    cargo mutants -p conch-core $(files_of "$m") "${shard[@]}" \
      --test-package conch-driver-sim --baseline skip --timeout "$timeout" --jobs "$jobs" \
      --output "$out" --no-shuffle -- --test mutants_sim || rc=$?
  # cargo-mutants: 0 all caught, 2 some missed, 3 timeouts; anything else is a failure of its own.
  case "$rc" in 0|2|3) ;; *) echo "mutants.sh: cargo mutants failed ($rc)" >&2; exit 1 ;; esac
  fi
  dir="$out/mutants.out"
  caught=$(wc -l <"$dir/caught.txt"); missed=$(wc -l <"$dir/missed.txt")
  timeouts=$(wc -l <"$dir/timeout.txt"); unviable=$(wc -l <"$dir/unviable.txt")
  equiv=0
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    # Matched by file, replacement and function, not by line and column (they drift).
    name=$(unplaced <<<"$line")
    if grep -qxF -- "$name" <(listed "$equivalent"); then
      equiv=$((equiv + 1))
    else
      if [ -f "$known" ] && grep -qxF -- "$name" <(listed "$known"); then
        echo "$line" >>mutants.out/known-survivors.txt
      else
        echo "$line" >>mutants.out/survivors.txt
      fi
    fi
  done <"$dir/missed.txt"
  viable=$((caught + missed + timeouts - equiv))
  echo "mutants.sh: $m: caught $caught, timeouts $timeouts, missed $missed ($equiv equivalent), unviable $unviable; score $((caught + timeouts))/$viable"
  total_caught=$((total_caught + caught)); total_missed=$((total_missed + missed))
  total_equiv=$((total_equiv + equiv)); total_timeout=$((total_timeout + timeouts)); total_unviable=$((total_unviable + unviable))
done

viable=$((total_caught + total_missed + total_timeout - total_equiv))
killed=$((total_caught + total_timeout))
pct=$([ "$viable" -gt 0 ] && echo $((100 * killed / viable)) || echo 100)
echo "mutants.sh: score $killed/$viable ($pct%) over ${chosen[*]}; $total_equiv equivalent, $total_unviable unviable"
if [ -s mutants.out/known-survivors.txt ]; then
  echo "mutants.sh: known survivors (listed in $known, not yet killed):"
  sed 's/^/  /' mutants.out/known-survivors.txt
fi
if [ -s mutants.out/survivors.txt ]; then
  echo "mutants.sh: survivors (not listed as equivalent in $equivalent):"
  sed 's/^/  /' mutants.out/survivors.txt
  exit 1
fi
echo "mutants.sh: no surviving non-equivalent mutant"
