#!/usr/bin/env bash
# Make a docker engine answer and the rlvr SWE base image exist. Idempotent and quick when all is
# in place. When no engine answers and we are root: apt-install docker.io, debootstrap and
# bubblewrap, then start `dockerd --bridge=none --iptables=false` in the background (no bridge
# network, so containers have no network at all). Then build the base image if it is absent, and
# unpack its file system as the bubblewrap backend's sandbox runtime (python3, pytest and git of the
# image, bound read-only into every bwrap sandbox, so no command depends on the host's Python).
#
# Usage: containers/provision.sh [--no-base]
# Environment: RLVR_SWE_BASE_IMAGE, RLVR_DOCKERD_LOG (default /var/log/rlvr-dockerd.log),
#              RLVR_DOCKERD_WAIT_S (default 60), RLVR_BWRAP_ROOTFS (default
#              ${RLVR_CACHE:-${XDG_CACHE_HOME:-~/.cache}/rlvr}/sandbox-rootfs)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BUILD_BASE=1
[ "${1:-}" = "--no-base" ] && BUILD_BASE=0
LOG="${RLVR_DOCKERD_LOG:-/var/log/rlvr-dockerd.log}"
WAIT_S="${RLVR_DOCKERD_WAIT_S:-60}"

engine_up() { docker info >/dev/null 2>&1; }

if ! engine_up; then
  if [ "$(id -u)" != 0 ]; then
    echo "provision.sh: no docker engine answers and you are not root." >&2
    echo "  Start one yourself (e.g. 'sudo dockerd --bridge=none --iptables=false &') or rerun as root." >&2
    exit 1
  fi
  missing=""
  command -v dockerd >/dev/null || missing="$missing docker.io"
  command -v debootstrap >/dev/null || missing="$missing debootstrap"
  command -v bwrap >/dev/null || missing="$missing bubblewrap"
  if [ -n "$missing" ]; then
    echo "provision.sh: apt-get install$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends $missing >/dev/null 2>&1 || {
      apt-get update >/dev/null && apt-get install -y --no-install-recommends $missing >/dev/null; }
  fi
  if ! pgrep -x dockerd >/dev/null; then
    echo "provision.sh: starting dockerd --bridge=none --iptables=false (log: $LOG)"
    mkdir -p "$(dirname "$LOG")"
    nohup dockerd --bridge=none --iptables=false --ip-masq=false >>"$LOG" 2>&1 </dev/null &
    disown || true
  fi
  for _ in $(seq 1 "$WAIT_S"); do
    engine_up && break
    sleep 1
  done
  engine_up || { echo "provision.sh: dockerd did not answer within ${WAIT_S}s; see $LOG" >&2; tail -n 20 "$LOG" >&2 || true; exit 1; }
fi
echo "provision.sh: docker engine answers ($(docker version -f '{{.Server.Version}}' 2>/dev/null || echo '?'))"

if [ "$BUILD_BASE" = 1 ]; then
  "$HERE/build_base.sh"
  IMAGE="${RLVR_SWE_BASE_IMAGE:-rlvr-swe-base:bookworm}"
  ROOTFS="${RLVR_BWRAP_ROOTFS:-${RLVR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rlvr}/sandbox-rootfs}"
  id="$(docker image inspect -f '{{.Id}}' "$IMAGE")"
  if [ "$(cat "$ROOTFS/.rlvr-image-id" 2>/dev/null || true)" != "$id" ]; then
    echo "provision.sh: unpacking $IMAGE into $ROOTFS (bubblewrap sandbox runtime)"
    tmp="$ROOTFS.tmp.$$"
    rm -rf --one-file-system "$tmp"
    mkdir -p "$tmp"
    cid="$(docker create "$IMAGE" /bin/true)"
    # a failed export must not leave the unlabelled container (no reaper knows it) or a half tree behind
    trap 'docker rm -f "$cid" >/dev/null 2>&1 || true; rm -rf --one-file-system "$tmp"' EXIT
    docker export "$cid" | tar --numeric-owner -x -C "$tmp"
    docker rm -f "$cid" >/dev/null
    echo "$id" >"$tmp/.rlvr-image-id"
    rm -rf --one-file-system "$ROOTFS"
    mv "$tmp" "$ROOTFS"
    trap - EXIT
  fi
  echo "provision.sh: bubblewrap sandbox runtime in $ROOTFS"
fi
