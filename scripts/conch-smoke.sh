#!/usr/bin/env bash
# Smoke test of conch against a real deployment (spec 06-testing layer 7):
#   CONCH_ENDPOINTS=http://etcd1:2379,... scripts/conch-smoke.sh
# Every step prints one line, "ok ..." or "FAIL ..." (details indented below a FAIL); exit 0
# only if every step passed. The steps: a vacant `elect --who` and `sema --who` exit 1; an
# `elect` acquires on the quorum, its child sees CONCH_REV/CONCH_NAME/CONCH_LEADER and
# `--who` names it, and the clean exit leaves the office vacant; a `sema --max 2` child is
# listed by `sema --who`; a cron job is added, after one tick (run by a `conch conchd` this
# script starts, or by the deployment's own) is listed exactly once by `cron ls` with exit
# 0, then removed; and nothing is left behind: no key under the smoke's names, no lease it
# made, no process of it (keys and leases are checked with etcdctl when there is one).
#
# Names are unique per run (host, pid, random), so runs never collide. The cron steps run
# while holding the office `conch-smoke.cron` (vacant again afterwards): a conchd serves
# every job, so two runs' conchds at once would run each other's ticks on their leases.
# Every wait is bounded (CONCH_SMOKE_TIMEOUT seconds per step, default 30).
# Environment: the CONCH_* flags every tool shares (CONCH_ENDPOINTS, CONCH_DIAL_TIMEOUT,
# CONCH_TTL, CONCH_USER, CONCH_CACERT, CONCH_CERT, CONCH_KEY_FILE, CONCH_QUIET, CONCH_LOG_FORMAT);
# every other CONCH_* variable is dropped so it cannot change a tool's behaviour.
#   CONCH=path                 the conch binary (default: conch on $PATH)
#   CONCH_ETCD_BIN_DIR=dir     take etcdctl from there (default: etcdctl on $PATH, if any)
#   CONCH_SMOKE_CONCHD=auto    start a conchd for the cron step: auto (only when no job but
#                              smoke runs' exists, so it never runs a real job), yes, or no
#                              (rely on the deployment's conchd)
set -uo pipefail

# `scripts/conch-smoke.sh __cron-step <base> <dir>` is the cron part, run by the main part
# as the child of `conch elect conch-smoke.cron`; it writes its failure count to <dir>.
step=main
if [ "${1:-}" = __cron-step ]; then
  step=cron
  base=$2
  main_work=$3
  echo "${CONCH_LEASE:-}" > "$main_work/lock.lease"
fi
for var in $(compgen -e | grep '^CONCH_'); do
  case "$var" in
    CONCH_ENDPOINTS|CONCH_DIAL_TIMEOUT|CONCH_TTL|CONCH_USER|CONCH_CACERT|CONCH_CERT|CONCH_KEY_FILE) ;;
    CONCH_QUIET|CONCH_LOG_FORMAT|CONCH_ETCD_BIN_DIR|CONCH_SMOKE_TIMEOUT|CONCH_SMOKE_CONCHD) ;;
    *) unset "$var" ;;
  esac
done
limit=${CONCH_SMOKE_TIMEOUT:-30}
conchd_mode=${CONCH_SMOKE_CONCHD:-auto}
eps=${CONCH_ENDPOINTS:-http://127.0.0.1:2379}
conch=$(command -v "${CONCH:-conch}") || { echo "FAIL no conch binary (set CONCH=path)"; exit 1; }
etcdctl=""
if [ -n "${CONCH_ETCD_BIN_DIR:-}" ] && [ -x "$CONCH_ETCD_BIN_DIR/etcdctl" ]; then
  etcdctl="$CONCH_ETCD_BIN_DIR/etcdctl"
else
  etcdctl=$(command -v etcdctl 2>/dev/null) || etcdctl=""
fi
host=$(uname -n)
[ "$step" = cron ] ||
  base="smoke.$(printf %s "$host" | tr -c 'A-Za-z0-9.-' '-' | cut -c1-40).$$.$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
office="$base-elect"
sema="$base-sema"
job="$base-cron"
lock=conch-smoke.cron
work=$(mktemp -d "${TMPDIR:-/tmp}/conch-smoke.XXXXXX")
failures=0
conchd_pid=""
forgotten=no
leases=()    # hex ids of the leases this run made, each must be gone at the end

pass() { echo "ok $*"; }
fail() {
  echo "FAIL $1"
  failures=$((failures + 1))
  local f
  for f in "${@:2}"; do
    [ -s "$f" ] && tail -n 8 "$f" | sed 's/^/    | /'
  done
  return 0
}
# conch with a bounded run time: stdout to $work/out, stderr to $work/err; sets $rc.
run() {
  timeout -k 5 "$limit" "$conch" "$@" > "$work/out" 2> "$work/err"
  rc=$?
}
ectl() {
  local auth=()
  [ -z "${CONCH_CACERT:-}" ] || auth+=("--cacert=$CONCH_CACERT")
  [ -z "${CONCH_CERT:-}" ] || auth+=("--cert=$CONCH_CERT" "--key=$CONCH_KEY_FILE")
  [ -z "${CONCH_USER:-}" ] || auth+=("--user=$CONCH_USER")
  ETCDCTL_API=3 timeout -k 2 10 "$etcdctl" --endpoints "$eps" --dial-timeout 3s \
    --command-timeout 5s "${auth[@]}" "$@"
}
# Waits (at most $limit s) until the command "$@" succeeds.
wait_for() {
  local deadline=$(( $(date +%s) + limit ))
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}
# The `cron ls --json` objects of our job, one per line (flat objects: no nesting).
job_rows() { grep -o "{[^{}]*\"name\":\"$job\"[^{}]*}" "$work/ls.json"; }
# Whether a run of our job has ended (a tick listed with an exit code: its result is in).
job_ran() {
  timeout -k 2 10 "$conch" cron ls --json > "$work/ls.json" 2> "$work/err" || return 1
  job_rows | grep -q '"exit":[0-9]'
}
stop_conchd() {
  [ -n "$conchd_pid" ] || return 0
  kill -TERM "$conchd_pid" 2>/dev/null
  local i
  for i in $(seq $(( limit * 10 ))); do
    kill -0 "$conchd_pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$conchd_pid" 2>/dev/null; then
    kill -KILL "$conchd_pid" 2>/dev/null
    wait "$conchd_pid" 2>/dev/null
    conchd_pid=""
    return 1
  fi
  wait "$conchd_pid" 2>/dev/null
  conchd_rc=$?
  conchd_pid=""
}
# Deletes the job and its history (claims, results, running key) in one transaction.
forget_job() {
  [ "$step" = cron ] && [ "$forgotten" = no ] && [ -n "$etcdctl" ] || return 0
  forgotten=yes
  printf '\ndel %s\ndel --prefix %s\ndel --prefix %s\ndel %s\n\n\n' "/conch/v1/cron/job/$job" \
    "/conch/v1/cron/fire/$job/" "/conch/v1/cron/result/$job/" "/conch/v1/cron/running/$job" |
    ectl txn > /dev/null 2>&1
}
# Whether lease $1 is settled (always, once asked): state "gone" when etcd no longer has it
# or it held no key and is revoked now (a claim or result lease of the conchd started
# here), "kept" when it still holds keys.
settle_lease() {
  lease_state=kept
  ectl lease timetolive "$1" --keys > "$work/lease" 2> "$work/err" || return 0
  if grep -q 'already expired' "$work/lease"; then lease_state=gone; return 0; fi
  if grep -q 'attached keys(\[\])' "$work/lease" && ectl lease revoke "$1" > /dev/null 2>&1; then
    lease_state=gone
  fi
}
# The "no lease left" step over $leases.
check_leases() {
  local l kept=() gone=0
  for l in $(printf '%s\n' "${leases[@]}" | grep . | sort -u); do
    settle_lease "$l"
    if [ "$lease_state" = gone ]; then gone=$((gone + 1)); else kept+=("$l"); fi
  done
  if [ ${#kept[@]} -eq 0 ]; then pass "no lease of $1 left ($gone checked gone)"
  else fail "leases of $1 left: ${kept[*]}" "$work/lease"; fi
}
# On any exit: nothing of this run stays (conchd, the job, its history, the work dir).
cleanup() {
  stop_conchd
  forget_job
  [ "$step" = main ] || echo "$failures" > "$main_work/cron.failures"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The cron steps, under the lock: add, one tick, listed once, removed; then the job's
# history and the conchd's leases are gone.
cron_steps() {
  # shellcheck disable=SC2016 # expanded by the job's shell
  local jobcmd='case "$CONCH_REV" in ""|*[!0-9]*) exit 3 ;; esac; [ "$CONCH_NAME" = "$0" ] || exit 4'
  run cron add "$job" --schedule '@every 1s' --run-ttl "${limit}s" -- sh -c "$jobcmd" "$job"
  if [ "$rc" -eq 0 ]; then pass "cron add $job (@every 1s)"
  else fail "cron add: exit $rc, want 0" "$work/out" "$work/err"; fi
  run cron ls --json
  # Other jobs, not counting those of (crashed) smoke runs: a conchd here would run them.
  local others start_conchd=no
  others=$(grep -o '"name":"[^"]*"' "$work/out" | grep -cvE "\"name\":\"($job|smoke\.[^\"]*-cron)\"")
  case "$conchd_mode" in
    yes) start_conchd=yes ;;
    auto) [ "$others" -gt 0 ] || start_conchd=yes ;;
  esac
  if [ "$start_conchd" = yes ]; then
    [ -z "$etcdctl" ] || ectl lease list > "$work/leases.before" 2> /dev/null
    "$conch" --log-format json conchd > "$work/conchd.out" 2> "$work/conchd.err" &
    conchd_pid=$!
  fi
  if wait_for job_ran; then
    if [ "$(job_rows | wc -l)" -eq 1 ] && job_rows | grep -q '"exit":0[,}]'; then
      pass "cron ls lists $job once after a tick, exit 0 (conchd started here: $start_conchd)"
    else
      fail "cron ls after a tick: want one row of $job with exit 0" "$work/ls.json"
    fi
  else
    local why="no tick within ${limit}s"
    [ "$start_conchd" = yes ] || why="$why and no conchd started here ($others other jobs): is a conchd of the deployment running?"
    fail "cron: $why" "$work/ls.json" "$work/err" "$work/conchd.err"
  fi
  # The plain listing an operator reads: exactly one row.
  run cron ls
  local rows
  rows=$(awk -v j="$job" '$1 == j' "$work/out" | wc -l)
  if [ "$rc" -eq 0 ] && [ "$rows" -eq 1 ]; then pass "cron ls (text) shows $job exactly once"
  else fail "cron ls (text): exit $rc, $rows rows of $job, want 1" "$work/out" "$work/err"; fi
  run cron rm "$job"
  local rc_rm=$rc
  run cron ls
  if [ "$rc_rm" -eq 0 ] && [ "$rc" -eq 0 ] && ! awk -v j="$job" '$1 == j { found = 1 } END { exit !found }' "$work/out"; then
    pass "cron rm $job: no longer listed"
  else
    fail "cron rm: exit $rc_rm, ls exit $rc, want both 0 and the job gone" "$work/out" "$work/err"
  fi
  [ "$start_conchd" = yes ] || { forget_job; return 0; }
  local mypid=$conchd_pid l
  if stop_conchd && [ "${conchd_rc:-1}" -eq 0 ]; then pass "conchd (pid $mypid) stopped on SIGTERM, exit 0"
  else fail "conchd (pid $mypid): did not exit 0 within ${limit}s of SIGTERM (exit ${conchd_rc:-killed})" "$work/conchd.err"; fi
  [ -n "$etcdctl" ] || return 0
  # Its session lease (logged), and its claim and result leases: granted on demand and named
  # nowhere, so those granted while it ran with the claim (25 h) or result (14 d) TTL.
  for l in $(sed -n 's/.*"event":"session","lease":"\([0-9a-f]*\)".*/\1/p' "$work/conchd.err"); do
    leases+=("$l")
  done
  if [ -f "$work/leases.before" ] && ectl lease list > "$work/leases.after" 2> /dev/null; then
    for l in $(comm -13 <(grep -v '^found' "$work/leases.before" | sort) <(grep -v '^found' "$work/leases.after" | sort)); do
      ectl lease timetolive "$l" -w json 2> /dev/null | grep -qE '"granted-ttl":(90000|1209600)[,}]' && leases+=("$l")
    done
  fi
  forget_job
  check_leases "the conchd started here"
}

if [ "$step" = cron ]; then
  cron_steps
  exit $(( failures > 0 ))
fi

echo "# conch-smoke: endpoints=$eps conch=$conch etcdctl=${etcdctl:-none} names=$base-*"

# 1. Vacant offices and semaphores: --who exits 1 (69 would mean etcd is unreachable).
run elect "$office" --who
if [ "$rc" -eq 1 ]; then pass "elect --who on a vacant office exits 1"
else fail "elect --who on a vacant office: exit $rc, want 1" "$work/out" "$work/err"; fi
run sema "$sema" --max 2 --who
if [ "$rc" -eq 1 ]; then pass "sema --who on a vacant semaphore exits 1"
else fail "sema --who on a vacant semaphore: exit $rc, want 1" "$work/out" "$work/err"; fi

# 2. Acquire on the quorum; the child checks its environment and that --who names it.
# shellcheck disable=SC2016 # expanded by the child's shell
child='set -u
name=$1 dir=$2 bin=$3
shift 3
case "$CONCH_REV" in ""|*[!0-9]*) echo "CONCH_REV=$CONCH_REV"; exit 3 ;; esac
[ "$CONCH_NAME" = "$name" ] || { echo "CONCH_NAME=$CONCH_NAME"; exit 4; }
echo "$CONCH_REV $CONCH_LEASE ${CONCH_LEADER:-}" > "$dir/env"
"$bin" "$@" --who --json > "$dir/who" || exit 5
grep -q "\"rev\":$CONCH_REV[,}]" "$dir/who" || exit 6'
run elect "$office" --wait "${limit}s" -- sh -c "$child" sh "$office" "$work" "$conch" elect "$office"
rev="" lease="" leader=""
read -r rev lease leader 2> /dev/null < "$work/env"
leases+=("$lease")
if [ "$rc" -eq 0 ] && [ "$leader" = 1 ]; then
  pass "elect acquired and exited 0 (child saw CONCH_REV=$rev CONCH_LEADER=1, --who named it)"
else
  fail "elect: exit $rc, want 0 with CONCH_LEADER=1 (child env: $rev $lease $leader)" \
    "$work/who" "$work/out" "$work/err"
fi
run elect "$office" --who
if [ "$rc" -eq 1 ]; then pass "after the clean exit the office is vacant"
else fail "after the clean exit, elect --who: exit $rc, want 1" "$work/out" "$work/err"; fi

# 3. A semaphore slot; sema --who lists the child's hold.
rm -f "$work/env" "$work/who"
run sema "$sema" --max 2 --wait "${limit}s" -- sh -c "$child" sh "$sema" "$work" "$conch" sema "$sema" --max 2
rev="" lease=""
read -r rev lease _ 2> /dev/null < "$work/env"
leases+=("$lease")
if [ "$rc" -eq 0 ] && grep -q '"max":2' "$work/who"; then
  pass "sema --max 2 acquired, sema --who listed the hold (rev $rev), exit 0"
else
  fail "sema: exit $rc, want 0 and the hold in sema --who" "$work/who" "$work/out" "$work/err"
fi

# 4. The cron steps, one smoke run at a time (the lock is waited for at most 4 × limit).
timeout -k 5 $(( limit * 8 )) "$conch" elect "$lock" --wait "$(( limit * 4 ))s" -- \
  bash "$0" __cron-step "$base" "$work" 2> "$work/lock.err"
rc=$?
cron_failures=$(cat "$work/cron.failures" 2> /dev/null) || cron_failures=""
if [ -n "$cron_failures" ] && { [ "$cron_failures" -gt 0 ] || [ "$rc" -eq 0 ]; }; then
  failures=$(( failures + cron_failures ))
else
  fail "cron steps: conch elect $lock (the smoke runs' lock) exit $rc, the steps did not finish" "$work/lock.err"
fi
lock_lease=$(cat "$work/lock.lease" 2> /dev/null)
leases+=("$lock_lease")

# 5. Nothing left behind.
# A pattern that matches the run's names but not its own command line (that of this grep).
pattern="[${base:0:1}]$(printf %s "${base:1}" | sed 's/\./\\./g')"
procs=$(grep -l -- "$pattern" /proc/[0-9]*/cmdline 2>/dev/null | grep -v "^/proc/$$/" | cut -d/ -f3)
if [ -z "$procs" ]; then pass "no process of this run left"
else fail "processes of this run left: $procs"; fi
if [ -z "$etcdctl" ]; then
  pass "keys and leases not checked (no etcdctl; set CONCH_ETCD_BIN_DIR or PATH)"
  exit $(( failures > 0 ))
fi
if ectl get --prefix /conch/v1/ --keys-only > "$work/keys" 2> "$work/err"; then
  if grep -F -e "/$base-" -e "/$lock/${lock_lease:-none}" "$work/keys" > "$work/left"; then
    fail "keys of this run left under /conch/v1/" "$work/left"
  else
    pass "no key under this run's names (the job's history deleted), nor its hold of the lock"
  fi
else
  fail "etcdctl get --prefix /conch/v1/ failed" "$work/err"
fi
check_leases "elect, sema and the lock"
exit $(( failures > 0 ))
