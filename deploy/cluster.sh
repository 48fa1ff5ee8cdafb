#!/usr/bin/env bash
# A 3-node PeerFlash cluster in Docker (deploy/docker-compose.yml).
#
#   deploy/cluster.sh up              build what is missing, start the cluster, wait until it serves
#   deploy/cluster.sh up --monitoring ... and Prometheus on 127.0.0.1:9090 (compose profile "monitoring")
#   deploy/cluster.sh down            stop and remove the containers and the network (data kept)
#   deploy/cluster.sh down --volumes  ... and delete the shared storage and the nodes' data
#   deploy/cluster.sh status          `peerflash cluster status` as the admin client
#   deploy/cluster.sh logs [NODE]     the nodes' logs
#
# `up` first checks for docker, a running daemon, compose and java, and stops with the fix when
# one is missing. It then builds node/target/peerflash.jar when it is missing (mvn package), the base image when
# BASE_IMAGE is not set and the default one is missing (deploy/build-base-image.sh, needs root),
# the certificates when they are missing (deploy/certs/: the CA in ca/, one identity directory per
# node, n1..n3, owned by the nodes' user uid 10001 and mounted read-only into its container only,
# and the admin client in admin/; made with `peerflash certs` on this host's java), and the node
# image from deploy/Dockerfile. Every port of the cluster runs mutual TLS; the CLI connects with
# PEERFLASH_CERTS=deploy/certs/admin. Environment: BASE_IMAGE (any Java 17 runtime image),
# PEERFLASH_SUBNET (first three octets of the cluster network, default 172.31.76),
# PEERFLASH_PORT_N1..N3 (host ports, default 7601..7603), PEERFLASH_CACHE_SIZE (default 256MiB),
# PEERFLASH_PROJECT (compose project name, default peerflash). With --monitoring, `up` also builds
# the Prometheus image from Debian's package when PEERFLASH_PROMETHEUS_IMAGE is not set and
# peerflash-prometheus:bookworm is missing (deploy/build-prometheus-image.sh); PEERFLASH_PROMETHEUS_PORT
# (default 9090) is its port on the host's loopback.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
project="${PEERFLASH_PROJECT:-peerflash}"
default_base="peerflash-base:bookworm-jre17"
jar="$root/node/target/peerflash.jar"
certs="$here/certs"
subnet="${PEERFLASH_SUBNET:-172.31.76}"
node_uid=10001

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

# What `up` needs, checked before anything slow (building the jar, debootstrapping the base
# image): each missing piece is named with the way to get it.
preflight() {
  local missing=()
  if ! command -v docker >/dev/null 2>&1; then
    missing+=("docker is not installed (Debian: apt-get install docker.io)")
  elif ! docker info >/dev/null 2>&1; then
    missing+=("no Docker daemon answers (start it: systemctl start docker, or dockerd &; or add this user to the docker group)")
  fi
  if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
    missing+=("neither 'docker compose' nor docker-compose is installed (Debian: apt-get install docker-compose)")
  fi
  command -v java >/dev/null 2>&1 ||
    missing+=("java (17 or later) is not installed; it makes the certificates (Debian: apt-get install openjdk-17-jre-headless)")
  if [ ! -f "$jar" ] && ! command -v mvn >/dev/null 2>&1; then
    missing+=("$jar is missing and mvn is not installed to build it (Debian: apt-get install maven)")
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    local m
    for m in "${missing[@]}"; do echo "error: $m" >&2; done
    exit 1
  fi
}

# The command line client on this host (certificates, status).
peerflash() {
  if ! command -v java >/dev/null 2>&1; then
    echo "error: java (17 or later) is needed on this host to run $jar" >&2
    exit 1
  fi
  java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -jar "$jar" "$@"
}

# Every node's published client port. A node's certificate names localhost and 127.0.0.1.
targets() {
  local host="${PEERFLASH_PUBLISH_HOST:-127.0.0.1}"
  case "$host" in 0.0.0.0 | "") host=127.0.0.1 ;; esac
  echo "$host:${PEERFLASH_PORT_N1:-7601},$host:${PEERFLASH_PORT_N2:-7602},$host:${PEERFLASH_PORT_N3:-7603}"
}

# `peerflash cluster status` as the admin client.
status() {
  peerflash cluster status --target "$(targets)" --certs "$certs/admin"
}

# Gives a node's identity directory to the nodes' user, so the node reads its key (0600) and no
# other user of the host does. Without root, a throwaway container of the base image does it.
give_to_node() {
  if [ "$(id -u)" = 0 ]; then
    chown -R "$node_uid:$node_uid" "$1"
  else
    docker run --rm --user 0:0 --network none --entrypoint chown -v "$1:/certs" \
      "${BASE_IMAGE:-$default_base}" -R "$node_uid:$node_uid" /certs
  fi
}

# The CA, n1..n3 and the admin client, each made once. A node's certificate names its host
# name and its address on the cluster network (peers dial it there, redirected clients too).
make_certs() {
  if [ -f "$certs/subnet" ] && [ "$(cat "$certs/subnet")" != "$subnet" ]; then
    echo "error: the node certificates in $certs name the subnet $(cat "$certs/subnet")," \
      "not $subnet; remove them to issue new ones: sudo rm -rf $certs/n1 $certs/n2" \
      "$certs/n3 $certs/subnet" >&2
    exit 1
  fi
  if [ ! -f "$certs/ca/ca-cert.pem" ]; then
    echo "creating the cluster's certificate authority in $certs/ca"
    peerflash certs init --dir "$certs" --cluster-name "$project" >/dev/null
  fi
  local publish="${PEERFLASH_PUBLISH_HOST:-127.0.0.1}" i extra
  for i in 1 2 3; do
    # A node's directory belongs to uid 10001 (0700): test the directory, not its files.
    if [ ! -d "$certs/n$i" ]; then
      extra=()
      case "$publish" in 0.0.0.0 | 127.0.0.1 | localhost | "") ;; *) extra=(--host "$publish") ;; esac
      peerflash certs node --dir "$certs" --id "n$i" --host "n$i" --host "$subnet.1$i" \
        ${extra[@]+"${extra[@]}"} >/dev/null
      give_to_node "$certs/n$i"
    fi
  done
  echo "$subnet" >"$certs/subnet"
  if [ ! -d "$certs/admin" ]; then
    peerflash certs client --dir "$certs" --name admin --role admin >/dev/null
  fi
}

up() {
  local profile=()
  case "${1:-}" in
    "") ;;
    --monitoring) profile=(--profile monitoring) ;;
    *)
      echo "error: unknown option $1 (up takes --monitoring)" >&2
      exit 2
      ;;
  esac
  preflight
  if [ ! -f "$jar" ]; then
    echo "building $jar"
    (cd "$root" && mvn -B -q -ntp package -DskipTests)
  fi
  if [ -z "${BASE_IMAGE:-}" ]; then
    "$here/build-base-image.sh" "$default_base"
  fi
  make_certs
  local ctx="$here/build/context"
  rm -rf "$ctx"
  mkdir -p "$ctx"
  cp "$here/Dockerfile" "$here/docker-entrypoint.sh" "$here/peerflash-healthcheck.sh" "$jar" "$ctx/"
  if [ ${#profile[@]} -gt 0 ] && [ -z "${PEERFLASH_PROMETHEUS_IMAGE:-}" ]; then
    "$here/build-prometheus-image.sh" peerflash-prometheus:bookworm
  fi
  compose ${profile[@]+"${profile[@]}"} up -d --build
  echo "waiting for the cluster to serve"
  local deadline=$((SECONDS + 180)) out
  while true; do
    if out="$(status 2>&1)" &&
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
  cat <<MSG

PeerFlash cluster is up, with mutual TLS on every port. From this host, as the admin client:
  export PEERFLASH_TARGET=$(targets)
  export PEERFLASH_CERTS=$certs/admin
  java -jar node/target/peerflash.jar volume create vm1 --size 1GiB --replicas 1
(nodes redirect clients to a volume's owner at ${subnet}.1x:7601, which a Linux host reaches).
MSG
  if [ ${#profile[@]} -gt 0 ]; then
    echo "Prometheus: http://127.0.0.1:${PEERFLASH_PROMETHEUS_PORT:-9090} (Grafana dashboard: deploy/grafana/peerflash-dashboard.json)"
  fi
}

case "${1:-}" in
  up)
    shift
    up "$@"
    ;;
  down)
    shift
    # With the profile, so a Prometheus started by `up --monitoring` goes too.
    compose --profile monitoring down --remove-orphans "$@"
    ;;
  status) status ;;
  logs)
    shift
    compose logs --tail=200 "$@"
    ;;
  *)
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
