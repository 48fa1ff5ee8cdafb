#!/usr/bin/env bash
# Builds the Prometheus image of the Docker cluster's "monitoring" profile without any container
# registry: Debian's `prometheus` package (server and promtool) installed with dpkg on the nodes'
# base image. The packages come from this host's apt sources (`apt-get download`): prometheus and
# those of its dependencies the base image lacks, as apt works them out against the base image's
# own package list, so the build itself needs no network.
#
#   deploy/build-prometheus-image.sh [IMAGE]    (default IMAGE: peerflash-prometheus:bookworm)
#
# Environment: BASE_IMAGE (default peerflash-base:bookworm-jre17, built by build-base-image.sh when
# missing; any Debian bookworm image will do), FORCE=1 rebuilds even when the image exists. Needs
# a Debian bookworm host with apt and a running Docker daemon.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

IMAGE="${1:-peerflash-prometheus:bookworm}"
default_base="peerflash-base:bookworm-jre17"
BASE_IMAGE="${BASE_IMAGE:-$default_base}"

if [ "${FORCE:-0}" != 1 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "Prometheus image $IMAGE exists (FORCE=1 rebuilds it)"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: apt-get is needed to fetch Debian's prometheus package" >&2
  exit 1
fi
if [ "$BASE_IMAGE" = "$default_base" ]; then
  FORCE=0 "$here/build-base-image.sh" "$default_base"
fi

ctx="$(mktemp -d /tmp/peerflash-prometheus.XXXXXX)"
trap 'rm -rf "$ctx"' EXIT
mkdir "$ctx/debs"
# apt fetches as its own unprivileged user (_apt).
chmod 0755 "$ctx"
chmod 0777 "$ctx/debs"

# What `apt-get install prometheus` would install on the base image: apt run on this host against
# the base image's dpkg status file.
docker run --rm --network none --entrypoint cat "$BASE_IMAGE" /var/lib/dpkg/status >"$ctx/status"
to_install() {
  apt-get -s -o Dir::State::status="$ctx/status" install --no-install-recommends prometheus \
    2>/dev/null | awk '$1 == "Inst" { print $2 }'
}
packages="$(to_install || true)"
if [ -z "$packages" ]; then
  echo "updating the package lists"
  apt-get update -qq
  packages="$(to_install)"
fi
grep -qx prometheus <<<"$packages" || {
  echo "error: apt does not offer the prometheus package" >&2
  exit 1
}
echo "fetching $(wc -w <<<"$packages") packages: $(tr '\n' ' ' <<<"$packages")"
# shellcheck disable=SC2086  # one package name per word
if ! (cd "$ctx/debs" && apt-get download -qq $packages); then
  # Lists older than the mirror name versions it no longer has.
  echo "updating the package lists"
  apt-get update -qq
  packages="$(to_install)"
  rm -f "$ctx"/debs/*.deb
  (cd "$ctx/debs" && apt-get download -qq $packages)
fi

cp "$here/Dockerfile.prometheus" "$ctx/Dockerfile"
docker build -q --build-arg BASE_IMAGE="$BASE_IMAGE" -t "$IMAGE" "$ctx" >/dev/null
echo "built Prometheus image $IMAGE ($(docker run --rm --entrypoint /usr/bin/prometheus "$IMAGE" --version 2>&1 | head -1))"
