#!/usr/bin/env bash
# What recording metrics costs: two local 3-node clusters with mutual TLS side by side, one with
# metrics (the default) and one with metrics=false, and alternating QD32 write runs with one
# replica against each. Prints each run's write line (bench's columns: op, qd, IOPS, MiB/s, p50,
# p99, p99.9, max in microseconds, errors); compare the medians of the IOPS column.
#
#   it-tests/bench/metrics-cost.sh [ROUNDS] [WARMUP_S] [DURATION_S]     (default 3 10 15)
#
# Needs node/target/peerflash.jar (mvn -B -q -ntp package -DskipTests). Uses ports 18601-18623,
# 18701-18723, 18801-18823 and 21809-21831 on loopback, and /tmp/metrics-cost-{on,off}.
set -u
cd "$(dirname "$0")/../.."
J=${PEERFLASH_JAR:-node/target/peerflash.jar}
R=${1:-3}
WARM=${2:-10}
DUR=${3:-15}
up() {
  local d=/tmp/metrics-cost-$1
  rm -rf "$d"
  mkdir -p "$d"
  nohup java -jar "$J" local-cluster --nodes 3 --dir "$d" --cache-size 1GiB --base-port "$2" \
    --raft-base-port "$3" --http-base-port "$4" --nbd-base-port "$5" ${6:+"$6" "$7"} >"$d.log" 2>&1 &
  echo $! >"$d.pid"
}
up on 18601 18701 18801 21809
up off 18621 18721 18821 21829 --set metrics=false
for n in on off; do
  for _ in $(seq 150); do grep -q "cluster ready" /tmp/metrics-cost-$n.log && break; sleep 1; done
  grep -q "cluster ready" /tmp/metrics-cost-$n.log || { echo "cluster $n did not start"; exit 1; }
done
run() {
  local b=$1 id=$2
  shift 2
  java -jar "$J" bench --target "127.0.0.1:$b,127.0.0.1:$((b + 1)),127.0.0.1:$((b + 2))" \
    --certs "/tmp/metrics-cost-$id/certs/admin" --no-progress "$@" 2>/dev/null |
    grep -E "^write " | sed "s/^/metrics-$id /"
}
for r in $(seq "$R"); do
  run 18601 on --workload write --qd 32 --replicas 1 --volume "w$r" --warmup "$WARM" --duration "$DUR"
  run 18621 off --workload write --qd 32 --replicas 1 --volume "w$r" --warmup "$WARM" --duration "$DUR"
done
for n in on off; do kill -TERM "$(cat /tmp/metrics-cost-$n.pid)"; done
wait
