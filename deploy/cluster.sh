#!/usr/bin/env bash
# A 3-node PeerFlash cluster in Docker (deploy/docker-compose.yml).
#
#   deploy/cluster.sh up              build what is missing, start the cluster, wait until it serves
#   deploy/cluster.sh down            stop and remove the containers and the network (data kept)
#   deploy/cluster.sh down --volumes  ... and delete the shared storage and the nodes' data
#   deploy/cluster.sh status          `peerflash cluster status`, asked inside n1
#   deploy/cluster.sh logs [NODE]     the nodes' logs
#
# `up` builds node/target/peerflash.jar when it is missing (mvn package), the base image when
# BASE_IMAGE is not set and the default one is missing (deploy/build-base-image.sh, needs root),
# and the node image from deploy/Dockerfile. Environment: BASE_IMAGE (any Java 17 runtime image),
# PEERFLASH_SUBNET (first three octets of the cluster network, default 172.31.76),
# PEERFLASH_PORT_N1..N3 (host ports, default 7601..7603), PEERFLASH_CACHE_SIZE (default 256MiB),
# PEERFLASH_PROJECT (compose project name, default peerflash).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
project="${PEERFLASH_PROJECT:-peerflash}"
default_base="peerflash-base:bookworm-jre17"

compose() {
  if docker compose version >/dev/null 2>&1; then
    docker compose -p "$project" -f "$here/docker-compose.yml" "$@"
  elif command -v docker-compose >/dev/null 2>&1; then
    docker-compose -p "$project" -f "$here/docker-compose.yml" "$@"
  else
    echo "error: neither 'docker compose' nor docker-compose is installed" \
      "(Debian: apt-get install docker-compose)" >&2
    exit 1
  fi
}

up() {
  local jar="$root/node/target/peerflash.jar"
  if [ ! -f "$jar" ]; then
    echo "building $jar"
    (cd "$root" && mvn -B -q -ntp package -DskipTests)
  fi
  if [ -z "${BASE_IMAGE:-}" ]; then
    "$here/build-base-image.sh" "$default_base"
  fi
  local ctx="$here/build/context"
  rm -rf "$ctx"
  mkdir -p "$ctx"
  cp "$here/Dockerfile" "$here/docker-entrypoint.sh" "$here/peerflash-healthcheck.sh" "$jar" "$ctx/"
  compose up -d --build
  echo "waiting for the cluster to serve"
  local deadline=$((SECONDS + 180)) out
  while true; do
    if out="$(compose exec -T n1 peerflash cluster status 2>&1)" &&
      [ "$(grep -cw UP <<<"$out")" -ge 3 ]; then
      break
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "$out" >&2
      echo "error: the cluster did not come up within 180 s; see: deploy/cluster.sh logs" >&2
      exit 1
    fi
    sleep 2
  done
  echo "$out"
  local subnet="${PEERFLASH_SUBNET:-172.31.76}"
  cat <<MSG

PeerFlash cluster is up. From this host:
  export PEERFLASH_TARGET=127.0.0.1:${PEERFLASH_PORT_N1:-7601},127.0.0.1:${PEERFLASH_PORT_N2:-7602},127.0.0.1:${PEERFLASH_PORT_N3:-7603}
  java -jar node/target/peerflash.jar volume create vm1 --size 1GiB --replicas 1
(nodes redirect clients to a volume's owner at ${subnet}.1x:7601, which a Linux host reaches);
or inside a container: docker exec ${project}_n1_1 peerflash volume list   (compose v2: ${project}-n1-1)
MSG
}

case "${1:-}" in
  up) up ;;
  down)
    shift
    compose down --remove-orphans "$@"
    ;;
  status) compose exec -T n1 peerflash cluster status ;;
  logs)
    shift
    compose logs --tail=200 "$@"
    ;;
  *)
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
