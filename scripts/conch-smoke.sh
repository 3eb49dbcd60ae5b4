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
# Names are unique per run (host, pid, random), so runs never collide. Every wait is bounded
# (CONCH_SMOKE_TIMEOUT seconds per step, default 30).
# Environment: the CONCH_* flags every tool shares (CONCH_ENDPOINTS, CONCH_DIAL_TIMEOUT,
# CONCH_TTL, CONCH_USER, CONCH_CACERT, CONCH_CERT, CONCH_KEY, CONCH_QUIET, CONCH_LOG_FORMAT);
# every other CONCH_* variable is dropped so it cannot change a tool's behaviour.
#   CONCH=path                 the conch binary (default: conch on $PATH)
#   CONCH_ETCD_BIN_DIR=dir     take etcdctl from there (default: etcdctl on $PATH, if any)
#   CONCH_SMOKE_CONCHD=auto    start a conchd for the cron step: auto (only when no other job
#                              exists, so it never runs a real job), yes, or no (rely on the
#                              deployment's conchd)
set -uo pipefail

for var in $(compgen -e | grep '^CONCH_'); do
  case "$var" in
    CONCH_ENDPOINTS|CONCH_DIAL_TIMEOUT|CONCH_TTL|CONCH_USER|CONCH_CACERT|CONCH_CERT|CONCH_KEY) ;;
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
base="smoke.$(printf %s "$host" | tr -c 'A-Za-z0-9.-' '-' | cut -c1-40).$$.$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
office="$base-elect"
sema="$base-sema"
job="$base-cron"
work=$(mktemp -d "${TMPDIR:-/tmp}/conch-smoke.XXXXXX")
failures=0
conchd_pid=""
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
  [ -z "${CONCH_CERT:-}" ] || auth+=("--cert=$CONCH_CERT" "--key=$CONCH_KEY")
  [ -z "${CONCH_USER:-}" ] || auth+=("--user=$CONCH_USER")
  ETCDCTL_API=3 timeout -k 2 10 "$etcdctl" --endpoints "$eps" --dial-timeout 3s \
    --command-timeout 5s "${auth[@]}" "$@"
}
# Deletes the job and its history (claims, results, running key) in one transaction.
forgotten=no
forget_job() {
  [ "$forgotten" = no ] && [ -n "$etcdctl" ] || return 0
  forgotten=yes
  printf '\ndel %s\ndel --prefix %s\ndel --prefix %s\ndel %s\n\n\n' "/conch/v1/cron/job/$job" \
    "/conch/v1/cron/fire/$job/" "/conch/v1/cron/result/$job/" "/conch/v1/cron/running/$job" |
    ectl txn > /dev/null 2>&1
}
# Waits (at most $limit s) until the command "$@" succeeds.
wait_for() {
  local deadline=$(( $(date +%s) + limit ))
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}
# The `cron ls --json` object of our job, one per line (flat objects: no nesting).
job_rows() { grep -o "{[^{}]*\"name\":\"$job\"[^{}]*}" "$work/ls.json"; }
job_ran() {
  timeout -k 2 10 "$conch" cron ls --json > "$work/ls.json" 2> "$work/err" || return 1
  job_rows | grep -q '"last_tick":"'
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
# On any exit: nothing of this run stays (conchd, the job, its history, the work dir).
cleanup() {
  stop_conchd
  forget_job
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

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
if [ "$rc" -eq 0 ] && [ "${leader:-}" = 1 ]; then
  pass "elect acquired and exited 0 (child saw CONCH_REV=$rev CONCH_LEADER=1, --who named it)"
  leases+=("$lease")
else
  fail "elect: exit $rc, want 0 with CONCH_LEADER=1 (child env: ${rev:-} ${lease:-} ${leader:-})" \
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
if [ "$rc" -eq 0 ] && grep -q '"max":2' "$work/who"; then
  pass "sema --max 2 acquired, sema --who listed the hold (rev $rev), exit 0"
  leases+=("$lease")
else
  fail "sema: exit $rc, want 0 and the hold in sema --who" "$work/who" "$work/out" "$work/err"
fi

# 4. Cron: add, one tick (by a conchd started here or the deployment's), ls once, rm.
# shellcheck disable=SC2016 # expanded by the job's shell
jobcmd='case "$CONCH_REV" in ""|*[!0-9]*) exit 3 ;; esac; [ "$CONCH_NAME" = "$0" ] || exit 4'
run cron add "$job" --schedule '@every 1s' --run-ttl "${limit}s" -- sh -c "$jobcmd" "$job"
if [ "$rc" -eq 0 ]; then pass "cron add $job (@every 1s)"
else fail "cron add: exit $rc, want 0" "$work/out" "$work/err"; fi
run cron ls --json
others=$(grep -o '"name":"[^"]*"' "$work/out" | grep -cv "\"name\":\"$job\"")
start_conchd=no
case "$conchd_mode" in
  yes) start_conchd=yes ;;
  auto) [ "$others" -gt 0 ] || start_conchd=yes ;;
esac
if [ "$start_conchd" = yes ]; then
  "$conch" --log-format json conchd > "$work/conchd.out" 2> "$work/conchd.err" &
  conchd_pid=$!
fi
if wait_for job_ran; then
  row=$(job_rows | head -n 1)
  if [ "$(job_rows | wc -l)" -eq 1 ] && printf %s "$row" | grep -q '"exit":0[,}]'; then
    pass "cron ls lists $job once after a tick, exit 0 (conchd started here: $start_conchd)"
  else
    fail "cron ls after a tick: want one row of $job with exit 0" "$work/ls.json"
  fi
else
  why="no tick within ${limit}s"
  [ "$start_conchd" = yes ] || why="$why and no conchd started here ($others other jobs: no conchd of the deployment ran it?)"
  fail "cron: $why" "$work/ls.json" "$work/err" "$work/conchd.err"
fi
# The plain listing an operator reads: exactly one row.
run cron ls
rows=$(awk -v j="$job" '$1 == j' "$work/out" | wc -l)
if [ "$rc" -eq 0 ] && [ "$rows" -eq 1 ]; then pass "cron ls (text) shows $job exactly once"
else fail "cron ls (text): exit $rc, $rows rows of $job, want 1" "$work/out" "$work/err"; fi
run cron rm "$job"
rc_rm=$rc
run cron ls
if [ "$rc_rm" -eq 0 ] && [ "$rc" -eq 0 ] && ! awk -v j="$job" '$1 == j { found = 1 } END { exit !found }' "$work/out"; then
  pass "cron rm $job: no longer listed"
else
  fail "cron rm: exit $rc_rm, ls exit $rc, want both 0 and the job gone" "$work/out" "$work/err"
fi
if [ "$start_conchd" = yes ]; then
  session=$(sed -n 's/.*"event":"session","lease":"\([0-9a-f]*\)".*/\1/p' "$work/conchd.err" | sort -u)
  mypid=$conchd_pid
  if stop_conchd && [ "${conchd_rc:-1}" -eq 0 ]; then pass "conchd (pid $mypid) stopped on SIGTERM, exit 0"
  else fail "conchd (pid $mypid): did not exit 0 within ${limit}s of SIGTERM (exit ${conchd_rc:-killed})" "$work/conchd.err"; fi
  for l in $session; do leases+=("$l"); done
fi

# 5. Nothing left behind.
# A pattern that matches the run's names but not its own command line (that of this grep).
pattern="[${base:0:1}]$(printf %s "${base:1}" | sed 's/\./\\./g')"
procs=$(grep -l -- "$pattern" /proc/[0-9]*/cmdline 2>/dev/null | grep -v "^/proc/$$/" | cut -d/ -f3)
if [ -z "$procs" ]; then pass "no process of this run left"
else fail "processes of this run left: $procs"; fi
if [ -z "$etcdctl" ]; then
  pass "keys and leases not checked (no etcdctl; set CONCH_ETCD_BIN_DIR or PATH): the job's history expires with its leases"
  exit $(( failures > 0 ))
fi
# The claim and result leases of a conchd started here: on the fire keys of our job that
# name its pid, and the result keys of the same ticks. The deployment's leases are not ours.
if [ -n "${mypid:-}" ]; then
  ticks=()
  while read -r key lease_dec; do
    ticks+=("${key##*/}")
    leases+=("$(printf %x "$lease_dec")")
  done < <(ectl get --prefix "/conch/v1/cron/fire/$job/" -w fields 2>/dev/null | awk -v pid="$mypid" -v host="$host" '
    /^"Key" : / { key = $3; gsub(/"/, "", key) }
    /^"Value" : / { mine = index($0, "\\\"pid\\\":" pid ",") && index($0, "\\\"host\\\":\\\"" host "\\\"") }
    /^"Lease" : / { if (mine) print key, $3 }')
  for t in "${ticks[@]}"; do
    l=$(ectl get "/conch/v1/cron/result/$job/$t" -w fields 2>/dev/null | sed -n 's/^"Lease" : //p')
    [ -z "$l" ] || [ "$l" = 0 ] || leases+=("$(printf %x "$l")")
  done
fi
forget_job
if ectl get --prefix /conch/v1/ --keys-only > "$work/keys" 2> "$work/err"; then
  if grep -F -- "/$base-" "$work/keys" > "$work/left"; then
    fail "keys of this run left under /conch/v1/" "$work/left"
  else
    pass "no key under this run's names (its cron history deleted)"
  fi
else
  fail "etcdctl get --prefix /conch/v1/ failed" "$work/err"
fi
kept=()
gone=0
for l in $(printf '%s\n' "${leases[@]}" | sort -u); do
  ectl lease timetolive "$l" --keys -w json > "$work/lease" 2> "$work/err" || { kept+=("$l?"); continue; }
  if grep -q '"ttl":-1' "$work/lease"; then gone=$((gone + 1)); continue; fi
  # A claim or result lease of the conchd started here: revoke it once it holds no key.
  if grep -q '"keys":null' "$work/lease" && ectl lease revoke "$l" > /dev/null 2>&1; then
    gone=$((gone + 1))
  else
    kept+=("$l")
  fi
done
if [ ${#kept[@]} -eq 0 ]; then pass "no lease of this run left ($gone checked gone)"
else fail "leases of this run left: ${kept[*]}"; fi
exit $(( failures > 0 ))
