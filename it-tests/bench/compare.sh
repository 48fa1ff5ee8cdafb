#!/usr/bin/env bash
# PeerFlash side by side with its floor and a peer, on this machine, in one run:
#   1. the floor: a 4 KiB gRPC echo between two processes served like a node (QD1, QD32);
#   2. a peer: Hazelcast 5.7.0, two members, IMap.put of 4 KiB values, backup-count 1;
#   3. a local 3-node PeerFlash cluster: write-back writes with replicas 0, 1 and 2, read hits,
#      read misses, a 70/30 mix and 1 MiB sequential writes;
#   4. a cluster whose shared storage answers in 1 ms: write-through vs write-back;
#   5. a sustained write run on a small cache (several times the cache is written), so the
#      destager, not the burst, decides; latency after the cache filled is reported apart;
# then writes a Markdown report (every ratio, the targets met or missed) and PNG plots.
#
# Usage: it-tests/bench/compare.sh [--quick | --full] [--out DIR] [--qd LIST]
#   --quick  about 7 minutes: short runs (3 s each), a 64 MiB cache for the sustained run
#   --full   (default) about 35 minutes: 15 s runs, a 256 MiB cache, 3 minutes sustained
#   --out    where results, logs and the report go (default: /tmp/peerflash-bench-<time>)
#
# Needs the node's jar: run 'mvn -B -ntp package -DskipTests' from the root first. The peer's
# side (it-tests/bench/pom.xml) is built here; the first build downloads Hazelcast.
# Every process it starts is stopped on exit, also on Ctrl-C.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
JAR="$ROOT/node/target/peerflash.jar"
PEER_POM="$ROOT/it-tests/bench/pom.xml"
MODE=full
OUT=""
QD="1,32"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) MODE=quick ;;
    --full) MODE=full ;;
    --out) OUT="$2"; shift ;;
    --qd) QD="$2"; shift ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

# Every server process gets a warm-up pass (not measured) at QD1 and QD32 before its first measured
# run: on two busy cores the JIT compiler alone takes seconds of CPU, which would otherwise land in
# the first runs (a cold echo measured 4x its warm latency). Each run then has its own warm-up
# (its client JVM is new): 15 s, because a load client warmed for 3 s still read cache hits at
# 196 us p50 where one warmed for 15 s read 146 us (same cluster, minutes apart); the echo's
# simpler client warms faster, so a short warm-up charges the client's JIT to the node.
if [ "$MODE" = quick ]; then
  DUR=3s; WARM=4s; PASS=5s; SUSTAIN=30s; SUSTAIN_CACHE=64MiB; CACHE=1GiB; HZ_DUR=3; HZ_WARM=2
else
  DUR=15s; WARM=15s; PASS=20s; SUSTAIN=180s; SUSTAIN_CACHE=256MiB; CACHE=1GiB; HZ_DUR=15; HZ_WARM=3
fi
# Ports away from local-cluster's defaults, so a cluster someone is trying out stays untouched.
BASE_PORT=17601
RAFT_BASE_PORT=17701
ECHO_PORT=17690
HZ_PORTS=(15701 15702)
TARGET="127.0.0.1:$BASE_PORT,127.0.0.1:$((BASE_PORT + 1)),127.0.0.1:$((BASE_PORT + 2))"

if [ ! -f "$JAR" ]; then
  echo "error: $JAR is missing; build it first: mvn -B -ntp package -DskipTests" >&2
  exit 1
fi
OUT=${OUT:-/tmp/peerflash-bench-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/results" "$OUT/logs"
# Each cluster preallocates its cache files and the sustained run writes a 16 GiB volume's worth of
# shared storage: refuse to start on a disk that would fill up halfway.
FREE_KB=$(df -Pk "$OUT" | awk 'NR == 2 {print $4}')
if [ "${FREE_KB:-0}" -lt $((12 * 1024 * 1024)) ]; then
  echo "error: $OUT has $((FREE_KB / 1024)) MiB free; compare.sh needs about 12 GiB" >&2
  exit 1
fi
RESULTS="$OUT/results"
LOGS="$OUT/logs"
echo "compare.sh ($MODE): results, logs and report in $OUT"

# ---- processes and cleanup ------------------------------------------------------------------
PIDS=()
CLUSTER_DIRS=()
stop_pid() { # pid [seconds]: SIGTERM, then SIGKILL after a grace period
  local pid=$1 grace=${2:-20} i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  local pid dir
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do stop_pid "$pid" 20; done
  # Nodes of a cluster whose launcher could not stop them.
  for dir in "${CLUSTER_DIRS[@]}"; do
    if [ -f "$dir/cluster.txt" ]; then
      while read -r _ pid _; do stop_pid "$pid" 5; done < "$dir/cluster.txt"
    fi
  done
}
trap cleanup EXIT
trap 'echo "interrupted; stopping everything" >&2; exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in $ECHO_PORT "${HZ_PORTS[@]}" $BASE_PORT $((BASE_PORT + 1)) $((BASE_PORT + 2)) \
  $RAFT_BASE_PORT $((RAFT_BASE_PORT + 1)) $((RAFT_BASE_PORT + 2)); do
  if ! port_free "$p"; then
    echo "error: port $p is in use; stop what uses it (a previous compare.sh?)" >&2
    exit 1
  fi
done

wait_for_line() { # file pattern pid seconds
  local file=$1 pattern=$2 pid=$3 secs=$4 i
  for ((i = 0; i < secs * 10; i++)); do
    grep -q "$pattern" "$file" 2>/dev/null && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "error: process $pid exited; last lines of $file:" >&2
      tail -20 "$file" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "error: '$pattern' not seen in $file within $secs s" >&2
  return 1
}

# Waits (at most 60 s) until the machine is idle: at least 70 % of its CPU time idle over one
# second, and its disks quiet (no task waiting for I/O at the end of that second, under 8 MiB
# written and under 100 discards or flushes in it). The previous run leaves work behind (its
# volume's destage, deletion, compaction, GC); measuring the next one on top of it would charge
# that work to the wrong run. The disk test matters: deleting a volume's backing file on a
# filesystem mounted with 'discard' kept a node in synchronous discards for seconds with the CPU
# idle, while the next run started.
disk_counts() { # prints: sectors written, discards + flushes completed (all whole disks)
  awk '$3 !~ /^(loop|ram|sr)/ && $3 !~ /[0-9]$/ || $3 ~ /^nvme[0-9]+n[0-9]+$/ {
      w += $10; d += $15 + $19 } END { printf "%d %d\n", w, d }' /proc/diskstats
}
wait_idle() {
  local i a b idle total da db blocked
  for ((i = 0; i < 60; i++)); do
    a=($(head -1 /proc/stat))
    da=($(disk_counts))
    sleep 1
    b=($(head -1 /proc/stat))
    db=($(disk_counts))
    blocked=$(awk '/^procs_blocked/ {print $2}' /proc/stat)
    idle=$(((b[4] + b[5]) - (a[4] + a[5])))
    total=0
    for k in 1 2 3 4 5 6 7 8; do total=$((total + b[k] - a[k])); done
    ((total > 0 && idle * 100 >= total * 70 && blocked == 0 \
      && (db[0] - da[0]) * 512 < 8 * 1024 * 1024 && db[1] - da[1] < 100)) && return 0
  done
  echo "note: the machine did not go idle within 60 s; measuring anyway" >&2
}

PF=(java -jar "$JAR")
pf() { "${PF[@]}" "$@"; }
bench() { # bench args...: one 'peerflash bench' run; its table goes to the log too
  wait_idle
  pf bench --target "$TARGET" --qd "$QD" --duration "$DUR" --warmup "$WARM" "$@" \
    | tee -a "$LOGS/bench.log" || echo "warning: this run failed or had errors (see above)" >&2
}

CLUSTER_PID=""
start_cluster() { # name cache-size [local-cluster args...]
  local name=$1 cache=$2
  shift 2
  local dir="$OUT/$name" p
  for p in $BASE_PORT $((BASE_PORT + 1)) $((BASE_PORT + 2)) $RAFT_BASE_PORT \
    $((RAFT_BASE_PORT + 1)) $((RAFT_BASE_PORT + 2)); do
    port_free "$p" || { echo "error: port $p is still in use before starting $name" >&2; exit 1; }
  done
  rm -rf "$dir"
  CLUSTER_DIRS+=("$dir")
  # Started directly (not through a function, which would run in a subshell): $! is the JVM.
  env ${NODE_JVM_OPTS:+"JDK_JAVA_OPTIONS=$NODE_JVM_OPTS"} "${PF[@]}" local-cluster --nodes 3 --dir "$dir" \
    --cache-size "$cache" --base-port $BASE_PORT --raft-base-port $RAFT_BASE_PORT "$@" \
    >"$LOGS/$name.log" 2>&1 &
  CLUSTER_PID=$!
  PIDS+=("$CLUSTER_PID")
  wait_for_line "$LOGS/$name.log" "cluster ready" "$CLUSTER_PID" 120
  echo "== cluster $name: 3 nodes, cache $cache each $*"
}
warm_up() { # a pass over the write and read paths of a new cluster, not measured
  echo "-- warm-up pass ($PASS, not measured)"
  # Two volumes with one replica each: placement puts their replicas on different nodes, so every
  # node runs the owner's and the replica's code before the first measured run.
  for v in b-warm1 b-warm2; do
    pf bench --target "$TARGET" --workload write,read-hit --qd 1,32 --api unary --duration "$PASS" \
      --warmup 0s --volume "$v" --replicas 1 --working-set 16MiB --no-progress >/dev/null || true
  done
  for v in b-warm1 b-warm2; do
    pf volume delete "$v" --target "$TARGET" >/dev/null 2>&1 || true
  done
}
stop_cluster() {
  local dir=${CLUSTER_DIRS[-1]} pid
  stop_pid "$CLUSTER_PID" 60
  # The next cluster uses the same ports: make sure every node is gone.
  while read -r _ pid _; do stop_pid "$pid" 5; done < "$dir/cluster.txt"
  # Keep the node logs; drop the cache files and shared storage (gigabytes per cluster: a full
  # run would otherwise fill a small disk, and a full disk fails the runs that follow).
  local name
  name=$(basename "$dir")
  for f in "$dir"/n*.log; do [ -f "$f" ] && cp "$f" "$LOGS/$name-$(basename "$f")"; done
  rm -rf "$dir"
}

# ---- the peer's side: built first, so a failed download stops the run early ------------------
echo "== building the peer's load client (Hazelcast)"
mvn -B -q -ntp -f "$PEER_POM" package -DskipTests >"$LOGS/peer-build.log" 2>&1 \
  || { tail -30 "$LOGS/peer-build.log" >&2; exit 1; }
mvn -B -q -ntp -f "$PEER_POM" dependency:build-classpath \
  -Dmdep.outputFile="$OUT/peer.classpath" >>"$LOGS/peer-build.log" 2>&1 \
  || { tail -30 "$LOGS/peer-build.log" >&2; exit 1; }
PEER_CP="$ROOT/it-tests/bench/target/classes:$(cat "$OUT/peer.classpath")"
HZ_OPTS=(--add-modules java.se --add-exports java.base/jdk.internal.ref=ALL-UNNAMED
  --add-opens java.base/java.lang=ALL-UNNAMED --add-opens java.base/sun.nio.ch=ALL-UNNAMED
  --add-opens java.management/sun.management=ALL-UNNAMED
  --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED)

START=$(date +%s)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- 1. the floor: gRPC echo ------------------------------------------------------------------
echo "== floor: 4 KiB gRPC echo"
"${PF[@]}" bench echo-server --listen "127.0.0.1:$ECHO_PORT" >"$LOGS/echo-server.log" 2>&1 &
ECHO_PID=$!
PIDS+=("$ECHO_PID")
wait_for_line "$LOGS/echo-server.log" "listening" "$ECHO_PID" 30
pf bench --workload echo --target "127.0.0.1:$ECHO_PORT" --qd 1,32 --duration "$PASS" --warmup 0s \
  --no-progress >/dev/null || true
wait_idle
pf bench --workload echo --target "127.0.0.1:$ECHO_PORT" --qd "$QD" --duration "$DUR" \
  --warmup "$WARM" --id echo --json "$RESULTS/echo.json" | tee -a "$LOGS/bench.log" \
  || echo "warning: the echo run failed" >&2
# The echo server stays up: the QD1 target runs measure their floor again, interleaved with
# them (bench --floor: 100 ms of the run, 100 ms of echo, and so on), since the machine's speed
# drifts by more than the targets' margins (a QD1 echo ran at 69, 94 and 129 us p50 minutes apart).
FLOOR=(--floor "127.0.0.1:$ECHO_PORT")

# ---- 2. the peer: Hazelcast, two members, backup-count 1 --------------------------------------
echo "== peer: Hazelcast 5.7.0, 2 members, IMap.put 4 KiB, backup-count 1"
HZ_MEMBERS="127.0.0.1:${HZ_PORTS[0]},127.0.0.1:${HZ_PORTS[1]}"
HZ_PIDS=()
for port in "${HZ_PORTS[@]}"; do
  java "${HZ_OPTS[@]}" -cp "$PEER_CP" io.peerflash.itbench.HazelcastMember "$port" "$HZ_MEMBERS" \
    >"$LOGS/hazelcast-$port.log" 2>&1 &
  PIDS+=($!)
  HZ_PIDS+=($!)
done
for i in 0 1; do
  wait_for_line "$LOGS/hazelcast-${HZ_PORTS[$i]}.log" "member ready" "${HZ_PIDS[$i]}" 90
done
java "${HZ_OPTS[@]}" -cp "$PEER_CP" io.peerflash.itbench.HazelcastLoad --members "$HZ_MEMBERS" \
  --qd 32 --duration "${PASS%s}" --warmup 0 >/dev/null 2>>"$LOGS/hazelcast-load.log" || true
wait_idle
java "${HZ_OPTS[@]}" -cp "$PEER_CP" io.peerflash.itbench.HazelcastLoad --members "$HZ_MEMBERS" \
  --qd "$QD" --duration "$HZ_DUR" --warmup "$HZ_WARM" --json "$RESULTS/hazelcast.json" \
  2>"$LOGS/hazelcast-load.log" | tee -a "$LOGS/bench.log" \
  || echo "warning: the Hazelcast run failed; see $LOGS/hazelcast-load.log" >&2
for pid in "${HZ_PIDS[@]}"; do stop_pid "$pid"; done

# ---- 3. PeerFlash: write-back, replicas 0/1/2, reads, mix, sequential -------------------------
start_cluster cluster-a "$CACHE"
warm_up
echo "-- write-back, replicas 0"
bench --workload write --volume b-wb0 --replicas 0 --id wb-r0 --delete-volume \
  --label "PeerFlash write-back, replicas 0: 4 KiB random writes" --json "$RESULTS/wb-r0.json"
echo "-- write-back, replicas 1"
bench --workload write --volume b-wb1 --replicas 1 --id wb-r1 --delete-volume "${FLOOR[@]}" \
  --label "PeerFlash write-back, replicas 1: 4 KiB random writes" --json "$RESULTS/wb-r1.json"
echo "-- write-back, replicas 2"
bench --workload write --volume b-wb2 --replicas 2 --id wb-r2 --delete-volume \
  --label "PeerFlash write-back, replicas 2: 4 KiB random writes" --json "$RESULTS/wb-r2.json"
echo "-- read hits"
bench --workload read-hit --volume b-rh --replicas 1 --id read-hit --delete-volume "${FLOOR[@]}" \
  --label "PeerFlash read hit: 4 KiB random reads, cached" --json "$RESULTS/read-hit.json"
echo "-- read misses"
bench --workload read-miss --volume b-rm --size 64GiB --replicas 1 --id read-miss \
  --delete-volume --label "PeerFlash read miss: 4 KiB reads from shared storage" \
  --json "$RESULTS/read-miss.json"
echo "-- 70/30 mix"
bench --workload mix --volume b-mix --replicas 1 --id mix --delete-volume \
  --label "PeerFlash 70/30 read/write, write-back, replicas 1" --json "$RESULTS/mix.json"
echo "-- 1 MiB sequential writes"
bench --workload seq-write --volume b-seq --replicas 1 --id seq-write --delete-volume \
  --label "PeerFlash 1 MiB sequential writes, write-back, replicas 1" \
  --json "$RESULTS/seq-write.json"
stop_cluster

# ---- 4. shared storage with 1 ms latency: write-through vs write-back -------------------------
start_cluster cluster-slow "$CACHE" --set storage-latency-us=1000
warm_up
echo "-- write-through, storage 1 ms"
bench --workload write --volume b-wt --mode write-through --replicas 0 --id wt-1ms \
  --delete-volume --label "PeerFlash write-through, storage latency 1 ms" \
  --json "$RESULTS/wt-1ms.json"
echo "-- write-back, replicas 1, storage 1 ms"
bench --workload write --volume b-wbs --replicas 1 --id wb-r1-1ms --delete-volume \
  --label "PeerFlash write-back, replicas 1, storage latency 1 ms" \
  --json "$RESULTS/wb-r1-1ms.json"
stop_cluster

# ---- 5. sustained: several times the cache, destage decides -----------------------------------
# GC and safepoint logs of every node and of the load client, to tell a pause in a JVM from a wait
# for space when a write is slow (logs/gc-sustained-*.log, one per process).
NODE_JVM_OPTS="-Xlog:gc*,safepoint:file=$LOGS/gc-sustained-node-%p.log:uptime,level,tags"
start_cluster cluster-sustained "$SUSTAIN_CACHE"
NODE_JVM_OPTS=""
warm_up # a cold JVM's JIT pauses would otherwise land in the first seconds of the run
echo "-- sustained 4 KiB random writes, write-back, replicas 1, QD32, $SUSTAIN"
wait_idle
# (With a warm-up of its own: a cold load client's JIT and GC pauses would be charged to the nodes.)
JDK_JAVA_OPTIONS="-Xlog:gc*,safepoint:file=$LOGS/gc-sustained-client.log:uptime,level,tags" \
  pf bench --target "$TARGET" --workload write --qd 32 --duration "$SUSTAIN" --warmup "$WARM" \
  --volume b-sus --size 16GiB --replicas 1 --sustained --id sustained \
  --label "PeerFlash sustained 4 KiB random writes, write-back, replicas 1" \
  --json "$RESULTS/sustained.json" | tee -a "$LOGS/bench.log" || true
stop_cluster

# ---- report ---------------------------------------------------------------------------------
ELAPSED=$(($(date +%s) - START))
pf bench report --in "$RESULTS" --out "$OUT" \
  --context "compare.sh --$MODE on $(hostname), $(nproc) cores, $(java -version 2>&1 | head -1)" \
  --context "$(date -u '+%Y-%m-%d %H:%M UTC'), ${ELAPSED} s; load average at the start: $LOAD_BEFORE, at the end: $(cut -d' ' -f1-3 /proc/loadavg)" \
  --context "runs of $DUR after $WARM warm-up, each server warmed up for $PASS first; cache $CACHE per node ($SUSTAIN_CACHE for the sustained run, $SUSTAIN)" \
  --context "every process (3 nodes, the load client, Hazelcast members) shares this machine: compare ratios, not absolute times"
echo "report: $OUT/report.md"
