#!/usr/bin/env bash
# How long a CLI call takes: a local 3-node cluster with mutual TLS, then `volume list` (a volume
# exists) N times through deploy/peerflash (class-data sharing archive made by one call first) and
# N times as `java -jar`. Prints every call's wall and CPU seconds and the medians.
#
#   it-tests/bench/cli-latency.sh [N]          (default 10; SETTLE_S=20 s idle before measuring)
#
# Needs node/target/peerflash.jar (mvn -B -q -ntp package -DskipTests). Uses ports 19601-19603,
# 19701-19703, 19801-19803 and 19901-19903 on loopback, and /tmp/cli-latency.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
J=${PEERFLASH_JAR:-$ROOT/node/target/peerflash.jar}
N=${1:-10}
D=/tmp/cli-latency
LOGS=$D
PIDS=()
# shellcheck source=common.sh
. "$ROOT/it-tests/bench/common.sh"
rm -rf "$D"
mkdir -p "$D"
trap 'for p in "${PIDS[@]}"; do stop_pid "$p"; done' EXIT
java -jar "$J" local-cluster --nodes 3 --dir "$D/cluster" --base-port 19601 \
  --raft-base-port 19701 --http-base-port 19801 --nbd-base-port 19901 >"$D/cluster.log" 2>&1 &
PIDS+=($!)
wait_for_line "$D/cluster.log" "cluster ready" "${PIDS[0]}" 150
export PEERFLASH_TARGET=127.0.0.1:19601,127.0.0.1:19602,127.0.0.1:19603
export PEERFLASH_CERTS=$D/cluster/certs/admin
export PEERFLASH_JAR=$J
export XDG_CACHE_HOME=$D/cache
java -jar "$J" volume create vm1 --size 1GiB --replicas 1 >/dev/null
"$ROOT/deploy/peerflash" volume list >/dev/null # makes the archive
sleep "${SETTLE_S:-20}" # the nodes' own start-up (class loading, compilation) is over: an idle cluster
median() { # numbers on stdin, one per line
  sort -n | awk '{v[NR] = $1} END {printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
measure() { # label command...
  local label=$1 i
  shift
  : >"$D/times"
  for ((i = 0; i < N; i++)); do
    /usr/bin/time -a -o "$D/times" -f "%e %U %S" "$@" volume list >/dev/null
  done
  awk -v label="$label" '{printf "%s call %d: %.2f s wall, %.2f s CPU\n", label, NR, $1, $2 + $3}' "$D/times"
  printf '%s: median %s s wall, %s s CPU over %d calls\n' "$label" \
    "$(cut -d' ' -f1 "$D/times" | median)" "$(awk '{printf "%.2f\n", $2 + $3}' "$D/times" | median)" "$N"
}
measure deploy/peerflash "$ROOT/deploy/peerflash" | tee "$D/launcher.txt"
measure "java -jar" java -jar "$J" | tee "$D/plain.txt"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
grep median "$D/launcher.txt" "$D/plain.txt" | sed 's/^[^:]*://'
