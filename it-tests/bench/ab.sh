#!/usr/bin/env bash
# Before/after of a change on the write path: two local 3-node clusters with mutual TLS side by
# side, one from each build, and alternating runs against each of QD1 and QD32 4 KiB writes with
# one replica. Prints each run's write line (bench's columns: op, qd, IOPS, MiB/s, p50, p99, p99.9,
# max in microseconds, errors) and, at the end, the medians per build: QD1 p50 and QD32 IOPS.
#
#   it-tests/bench/ab.sh JAR_A JAR_B [ROUNDS] [WARMUP_S] [DURATION_S]     (default 3 10 15)
#
# Build each jar from its commit (mvn -B -q -ntp package -DskipTests, in a worktree of it; copy
# node/target/peerflash.jar aside). Uses ports 18601-18623, 18701-18723, 18801-18823 and
# 21809-21831 on loopback, and /tmp/ab-{a,b}.
set -u
cd "$(dirname "$0")/../.."
[ $# -ge 2 ] || { sed -n 2,11p "$0"; exit 2; }
JA=$1
JB=$2
R=${3:-3}
WARM=${4:-10}
DUR=${5:-15}
up() {
  local d=/tmp/ab-$1 jar=$2
  rm -rf "$d"
  mkdir -p "$d"
  nohup java -jar "$jar" local-cluster --nodes 3 --dir "$d" --cache-size 1GiB --base-port "$3" \
    --raft-base-port "$4" --http-base-port "$5" --nbd-base-port "$6" >"$d.log" 2>&1 &
  echo $! >"$d.pid"
}
down() {
  for n in a b; do [ -f /tmp/ab-$n.pid ] && kill -TERM "$(cat /tmp/ab-$n.pid)" 2>/dev/null; done
  wait
}
trap down EXIT
up a "$JA" 18601 18701 18801 21809
up b "$JB" 18621 18721 18821 21829
for n in a b; do
  for _ in $(seq 150); do grep -q "cluster ready" /tmp/ab-$n.log && break; sleep 1; done
  grep -q "cluster ready" /tmp/ab-$n.log || { echo "cluster $n did not start"; exit 1; }
done
OUT=/tmp/ab-results.txt
: >"$OUT"
run() {
  local b=$1 id=$2 jar=$3
  shift 3
  java -jar "$jar" bench --target "127.0.0.1:$b,127.0.0.1:$((b + 1)),127.0.0.1:$((b + 2))" \
    --certs "/tmp/ab-$id/certs/admin" --no-progress "$@" 2>/dev/null |
    grep -E "^write " | sed "s/^/$id /" | tee -a "$OUT"
}
for r in $(seq "$R"); do
  for qd in 1 32; do
    run 18601 a "$JA" --workload write --qd $qd --replicas 1 --volume "q$qd-$r" \
      --warmup "$WARM" --duration "$DUR"
    run 18621 b "$JB" --workload write --qd $qd --replicas 1 --volume "q$qd-$r" \
      --warmup "$WARM" --duration "$DUR"
  done
done
median() { sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
echo "== medians over $R rounds (A=$JA, B=$JB)"
for id in a b; do
  p50=$(awk -v id=$id '$1==id && $3==1 {print $6}' "$OUT" | median)
  # bench prints 12.3k for 12300: compare numbers, not text.
  iops=$(awk -v id=$id '$1==id && $3==32 {v=$4; if (sub(/k$/, "", v)) v*=1000; print v}' "$OUT" |
    median)
  echo "$id: QD1 p50 ${p50} us, QD32 ${iops} IOPS"
done
