#!/usr/bin/env bash
# Build the rlvr SWE base image offline: a Debian bookworm minbase root filesystem made with
# debootstrap (python3, pip, venv, pytest, git), imported with `docker import`. Nothing is pulled
# from a registry. Needs root, debootstrap and a reachable Debian mirror (or apt proxy).
#
# Usage: containers/build_base.sh [IMAGE] [--keep-rootfs DIR] [--force]
#   IMAGE            tag to create (default: $RLVR_SWE_BASE_IMAGE or rlvr-swe-base:bookworm)
#   --keep-rootfs D  also keep the unpacked root filesystem in D (used by the bubblewrap backend)
#   --force          rebuild even if IMAGE already exists
# Environment: RLVR_DEBIAN_MIRROR (default http://deb.debian.org/debian)
set -euo pipefail

IMAGE="${RLVR_SWE_BASE_IMAGE:-rlvr-swe-base:bookworm}"
KEEP_ROOTFS=""
FORCE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --keep-rootfs) KEEP_ROOTFS="$2"; shift 2 ;;
    --force) FORCE=1; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    -*) echo "build_base.sh: unknown option '$1' (expected --keep-rootfs DIR or --force)" >&2; exit 2 ;;
    *) IMAGE="$1"; shift ;;
  esac
done

MIRROR="${RLVR_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
PACKAGES="python3,python3-pip,python3-venv,python3-pytest,git,procps"
# Bump when the recipe below changes: the image carries it as a label and rlvr checks it.
RECIPE_VERSION=1
DIGEST="$(printf '%s|%s|%s' "$SUITE" "$PACKAGES" "$RECIPE_VERSION" | sha256sum | cut -c1-16)"

if [ "$FORCE" = 0 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  have="$(docker image inspect -f '{{ index .Config.Labels "rlvr.base.digest" }}' "$IMAGE" 2>/dev/null || true)"
  if [ "$have" = "$DIGEST" ] && [ -z "$KEEP_ROOTFS" ]; then
    echo "build_base.sh: $IMAGE is up to date (digest $DIGEST)"
    exit 0
  fi
fi

if [ "$(id -u)" != 0 ]; then
  echo "build_base.sh: debootstrap needs root; run this script as root (e.g. with sudo)" >&2
  exit 1
fi
command -v debootstrap >/dev/null || { echo "build_base.sh: debootstrap is missing; install it with 'apt-get install -y debootstrap'" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "build_base.sh: no docker engine answers; run containers/provision.sh first" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/rlvr-rootfs.XXXXXX")"
cleanup() { rm -rf --one-file-system "$WORK"; }
trap cleanup EXIT
ROOTFS="$WORK/rootfs"

echo "build_base.sh: debootstrap $SUITE (minbase + $PACKAGES) from $MIRROR"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
  echo "build_base.sh: debootstrap failed; last lines of its log:" >&2; tail -n 30 "$WORK/debootstrap.log" >&2; exit 1; }

# Unprivileged user that runs every agent command (uid/gid 1000).
chroot "$ROOTFS" /usr/sbin/groupadd --gid 1000 agent
chroot "$ROOTFS" /usr/sbin/useradd --uid 1000 --gid 1000 --create-home --shell /bin/bash agent
cat >"$ROOTFS/etc/gitconfig" <<'GIT'
[user]
	name = rlvr
	email = rlvr@localhost
[init]
	defaultBranch = main
[safe]
	directory = *
[advice]
	detachedHead = false
[core]
	pager = cat
GIT
mkdir -p "$ROOTFS/testbed" "$ROOTFS/opt/rlvr/bin"
chown 1000:1000 "$ROOTFS/testbed"
# Keep the image small: no package caches or lists (there is no network inside anyway).
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/usr/share/doc/* \
       "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/locale/* "$ROOTFS"/var/log/*.log

echo "build_base.sh: importing as $IMAGE"
tar --numeric-owner -C "$ROOTFS" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PYTHONDONTWRITEBYTECODE=1' \
  --change 'WORKDIR /testbed' \
  --change 'CMD ["/bin/bash"]' \
  --change "LABEL rlvr.base.digest=$DIGEST rlvr.base.suite=$SUITE" \
  - "$IMAGE" >/dev/null

if [ -n "$KEEP_ROOTFS" ]; then
  mkdir -p "$(dirname "$KEEP_ROOTFS")"
  rm -rf --one-file-system "$KEEP_ROOTFS"
  mv "$ROOTFS" "$KEEP_ROOTFS"
  echo "build_base.sh: root filesystem kept in $KEEP_ROOTFS"
fi
echo "build_base.sh: built $IMAGE (digest $DIGEST)"
