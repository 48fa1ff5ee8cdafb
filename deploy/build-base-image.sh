#!/usr/bin/env bash
# Builds a Java 17 runtime base image from Debian's packages, without any container registry:
# debootstrap a minimal Debian root file system with openjdk-17-jre-headless (plus iproute2 and
# iptables, which the fault-injection tests use inside the containers), then `docker import` it.
#
#   deploy/build-base-image.sh [IMAGE]        (default IMAGE: peerflash-base:bookworm-jre17)
#
# Environment: SUITE (default bookworm), MIRROR (default: debootstrap's own default mirror),
# FORCE=1 rebuilds even when the image exists. Needs root, debootstrap and a running Docker daemon.
# Users who can pull images do not need this: pass any Java 17 runtime image as BASE_IMAGE.
set -euo pipefail

IMAGE="${1:-peerflash-base:bookworm-jre17}"
SUITE="${SUITE:-bookworm}"
MIRROR="${MIRROR:-}"

if [ "${FORCE:-0}" != 1 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "base image $IMAGE exists (FORCE=1 rebuilds it)"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "error: debootstrap needs root" >&2
  exit 1
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  echo "installing debootstrap"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
fi

root="$(mktemp -d /tmp/peerflash-rootfs.XXXXXX)"
trap 'rm -rf "$root"' EXIT

echo "debootstrap $SUITE into $root (about a minute)"
# shellcheck disable=SC2086  # MIRROR is empty or one word
debootstrap --variant=minbase \
  --include=openjdk-17-jre-headless,iproute2,iptables,ca-certificates \
  "$SUITE" "$root" $MIRROR >"$root.log" 2>&1 || {
  tail -30 "$root.log" >&2
  rm -f "$root.log"
  echo "error: debootstrap failed" >&2
  exit 1
}
rm -f "$root.log"

# Trim what a runtime image does not need.
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
  "$root"/usr/share/locale/* "$root"/var/cache/debconf/*-old "$root"/var/log/*.log

java_home="$(dirname "$(dirname "$(readlink -f "$root/usr/bin/java" | sed "s|^$root||")")")"
tar -C "$root" -c . | docker import \
  --change "ENV JAVA_HOME=$java_home" \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' \
  - "$IMAGE" >/dev/null
echo "built base image $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE" | numfmt --to=iec))"
