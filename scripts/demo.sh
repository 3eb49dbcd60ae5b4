#!/usr/bin/env bash
# A short live demo against a throwaway local etcd: an election handing over at once, a
# semaphore holding two of three, a revoked lease killing its child, and cron ticks raced
# by two conchd.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release --bins -q
conch="$PWD/target/release/conch"
work=$(mktemp -d)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cport=$(port); pport=$(port)
etcd --name demo --data-dir "$work/data" \
  --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
  --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
  --initial-cluster "demo=http://127.0.0.1:$pport" >"$work/etcd.log" 2>&1 &
etcd_pid=$!
cleanup() { kill "$etcd_pid" 2>/dev/null || true; wait "$etcd_pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
export CONCH_ENDPOINTS="http://127.0.0.1:$cport" ETCDCTL_API=3
for _ in $(seq 100); do etcdctl --endpoints "$CONCH_ENDPOINTS" endpoint health >/dev/null 2>&1 && break; sleep 0.1; done

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "elect: two candidates for office 'demo'; the second leads the moment the first exits"
"$conch" elect demo -- sh -c 'echo "  leader A rev=$CONCH_REV"; sleep 1; echo "  A done"' 2>/dev/null &
a=$!
sleep 0.3
"$conch" elect demo -- sh -c 'echo "  leader B rev=$CONCH_REV (took over)"' 2>/dev/null &
b=$!
sleep 0.3
echo "  conch elect demo --who:"; "$conch" elect demo --who | sed 's/^/    /'
wait "$a" "$b"

step "sema --max 2: three jobs, at most two at once, FIFO"
jobs_=()
for j in 1 2 3; do
  "$conch" sema backup --max 2 -- sh -c "echo \"  job $j runs (rev \$CONCH_REV)\"; sleep 0.6; echo \"  job $j done\"" 2>/dev/null &
  jobs_+=($!)
  sleep 0.1
done
sleep 0.2
echo "  conch sema backup --max 2 --who:"; "$conch" sema backup --max 2 --who | sed 's/^/    /'
wait "${jobs_[@]}"

step "loss: an administrator revokes the holder's lease; conch kills its child and exits 70"
"$conch" elect ops --kill-after 1s -- sh -c 'trap "echo \"  child got SIGTERM\"; exit 0" TERM; while :; do sleep 0.1; done' 2>/dev/null &
holder=$!
sleep 0.5
lease=$(etcdctl --endpoints "$CONCH_ENDPOINTS" get --prefix /conch/v1/elect/ops/ --keys-only | head -1 | awk -F/ '{print $NF}')
echo "  etcdctl lease revoke $lease"
etcdctl --endpoints "$CONCH_ENDPOINTS" lease revoke "$lease" >/dev/null
rc=0; wait "$holder" || rc=$?
echo "  conch exited $rc"

step "cron: a job every second; two conchd race for each tick, exactly one runs it"
"$conch" cron add demo-tick --schedule '@every 1s' -- sh -c 'echo "  tick $CONCH_TICK ran on $CONCH_NODE (claim rev $CONCH_REV)"' 2>/dev/null
"$conch" cron next demo-tick --count 3 | sed 's/^/  next: /'
daemons=()
for n in node-a node-b; do
  CONCH_HOSTNAME=$n CONCH_NODE=$n "$conch" conchd 2>/dev/null &
  daemons+=($!)
done
sleep 3.2
kill -TERM "${daemons[@]}"
wait "${daemons[@]}" || true
echo "  conch cron ls:"; "$conch" cron ls | sed 's/^/    /'
"$conch" cron rm demo-tick

step "nothing left behind"
echo "  keys under /conch/v1/elect/ and /conch/v1/sema/: $(etcdctl --endpoints "$CONCH_ENDPOINTS" get --prefix /conch/v1/elect/ --keys-only | grep -c . || true) and $(etcdctl --endpoints "$CONCH_ENDPOINTS" get --prefix /conch/v1/sema/ --keys-only | grep -c . || true)"
echo "  (cron claims and results stay, on their ~25 h and ~14 day leases: that is the run history)"
