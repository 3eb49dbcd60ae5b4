#!/usr/bin/env bash
# A throwaway 3-member etcd cluster on loopback, everything of it under one dir:
#   scripts/etcd-cluster.sh start <dir>            free ports, data/logs/pids in <dir>; waits
#                                                  (at most 30 s) until every member is healthy
#   scripts/etcd-cluster.sh endpoints <dir>        the client URLs, comma-separated
#   scripts/etcd-cluster.sh stop <dir>             stops the recorded pids only, removes the data
#                                                  (the logs stay in <dir>)
#   scripts/etcd-cluster.sh member-stop <dir> N    stops member N (1-3), keeping its data
#   scripts/etcd-cluster.sh member-start <dir> N   starts member N again on its ports and data
# etcd and etcdctl come from $CONCH_ETCD_BIN_DIR when set (scripts/etcd-versions.sh 3.5),
# else from $PATH. Used to run scripts/conch-smoke.sh against a real quorum.
set -euo pipefail
usage() {
  echo "usage: $0 start|stop|endpoints <dir> | member-stop|member-start <dir> <1-3>" >&2
  exit 64
}
[ $# -ge 2 ] || usage
cmd=$1
dir=$2
[ "$cmd" != start ] || mkdir -p "$dir"
[ ! -d "$dir" ] || dir=$(cd "$dir" && pwd)
bin=${CONCH_ETCD_BIN_DIR:+$CONCH_ETCD_BIN_DIR/}
export ETCDCTL_API=3
conf="$dir/cluster.conf"
members=(1 2 3)

# "<client port> <peer port>" of member $1, from the cluster's conf.
ports_of() { sed -n "s/^m$1 //p" "$conf"; }
client_url() { echo "http://127.0.0.1:$(ports_of "$1" | cut -d' ' -f1)"; }
peer_url() { echo "http://127.0.0.1:$(ports_of "$1" | cut -d' ' -f2)"; }
endpoints() {
  local m urls=()
  for m in "${members[@]}"; do urls+=("$(client_url "$m")"); done
  (IFS=,; echo "${urls[*]}")
}
# The recorded pid of member $1 if that process is still our etcd (its command line names
# its data dir, so a recycled pid is never taken for it); empty otherwise.
live_pid() {
  local pid
  pid=$(cat "$dir/m$1.pid" 2>/dev/null) || return 0
  [ -n "$pid" ] && tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline" | grep -qF -- "$dir/m$1.data" && echo "$pid"
  return 0
}
launch() {
  local m=$1 initial=() i
  for i in "${members[@]}"; do initial+=("m$i=$(peer_url "$i")"); done
  nohup "${bin}etcd" --name "m$m" --data-dir "$dir/m$m.data" \
    --listen-client-urls "$(client_url "$m")" --advertise-client-urls "$(client_url "$m")" \
    --listen-peer-urls "$(peer_url "$m")" --initial-advertise-peer-urls "$(peer_url "$m")" \
    --initial-cluster "$(IFS=,; echo "${initial[*]}")" --initial-cluster-state new \
    --initial-cluster-token "$(sed -n 's/^token //p' "$conf")" --pre-vote=true \
    >> "$dir/m$m.log" 2>&1 < /dev/null &
  echo $! > "$dir/m$m.pid"
}
# Stops member $1 by its recorded pid: SIGTERM, SIGKILL after 10 s, gone within 15 s.
halt() {
  local pid i
  pid=$(live_pid "$1")
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 150); do
      [ -n "$(live_pid "$1")" ] || break
      [ "$i" -ne 100 ] || kill -KILL "$pid" 2>/dev/null || true
      sleep 0.1
    done
  fi
  rm -f "$dir/m$1.pid"
}
# Waits (at most $1 s) until every member in "${@:2}" answers a health check.
wait_health() {
  local limit=$1 deadline eps m
  shift
  deadline=$(( $(date +%s) + limit ))
  eps=$(for m in "$@"; do client_url "$m"; done | paste -sd,)
  while ! "${bin}etcdctl" --endpoints "$eps" --dial-timeout 1s --command-timeout 2s \
      endpoint health > /dev/null 2>&1; do
    for m in "$@"; do
      if [ -z "$(live_pid "$m")" ]; then
        echo "etcd-cluster: member m$m exited; its log ends with:" >&2
        tail -n 5 "$dir/m$m.log" >&2
        return 1
      fi
    done
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "etcd-cluster: not healthy within ${limit}s ($eps)" >&2
      return 1
    fi
    sleep 0.2
  done
}
member_arg() {
  case "${1:-}" in 1|2|3) ;; *) usage ;; esac
  [ -f "$conf" ] || { echo "etcd-cluster: no cluster in $dir" >&2; exit 1; }
}

case "$cmd" in
  start)
    for m in "${members[@]}"; do
      if [ -f "$conf" ] && [ -n "$(live_pid "$m")" ]; then
        echo "etcd-cluster: a cluster already runs in $dir (stop it first)" >&2
        exit 1
      fi
    done
    rm -rf "$dir"/m?.data
    # Six distinct free loopback ports, all held at once while they are picked.
    python3 -c '
import socket
socks = [socket.socket() for _ in range(6)]
for s in socks:
    s.bind(("127.0.0.1", 0))
p = [s.getsockname()[1] for s in socks]
for i in range(3):
    print("m%d %d %d" % (i + 1, p[2 * i], p[2 * i + 1]))
' > "$conf"
    echo "token conch-$$-$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')" >> "$conf"
    for m in "${members[@]}"; do launch "$m"; done
    if ! wait_health 30 "${members[@]}"; then
      for m in "${members[@]}"; do halt "$m"; done
      rm -rf "$dir"/m?.data "$conf"
      exit 1
    fi
    endpoints
    ;;
  endpoints)
    [ -f "$conf" ] || { echo "etcd-cluster: no cluster in $dir" >&2; exit 1; }
    endpoints
    ;;
  stop)
    [ -d "$dir" ] || exit 0
    for m in "${members[@]}"; do halt "$m"; done
    rm -rf "$dir"/m?.data "$conf"
    ;;
  member-stop)
    member_arg "${3:-}"
    halt "$3"
    ;;
  member-start)
    member_arg "${3:-}"
    [ -z "$(live_pid "$3")" ] || { echo "etcd-cluster: member m$3 already runs" >&2; exit 1; }
    launch "$3"
    wait_health 30 "$3"
    ;;
  *) usage ;;
esac
