#!/usr/bin/env bash
# PeerFlash side by side with its floor and a peer, on this machine, in one run:
#   1. the floor: a 4 KiB gRPC echo between two processes served like a node (QD1, QD32);
#   2. a peer: Hazelcast 5.7.0, two members, IMap.put of 4 KiB values, backup-count 1 (QD N: N
#      client threads of blocking puts, so QD32 keeps 32 puts in flight);
#   3. a local 3-node PeerFlash cluster: write-back writes with replicas 0, 1 and 2, read hits,
#      read misses, a 70/30 mix and 1 MiB sequential writes;
#   4. TLS against plaintext: two 3-node clusters up side by side, one with mutual TLS and one
#      with --insecure; write-back writes with replicas 1 at each queue depth, in rounds that
#      alternate between them (TLS 1, plaintext 1, TLS 2, plaintext 2, ...), compared by medians;
#   5. a cluster whose shared storage answers in 1 ms: write-through vs write-back;
#   6. a sustained write run on a small cache (several times the cache is written), so the
#      destager, not the burst, decides; latency after the cache filled is reported apart;
#   7. NBD (it-tests/bench/nbd.sh): fio's nbd engine, 4 KiB random, against nbdkit memory (the
#      floor, Unix socket and TCP), qemu-nbd on a raw file, and PeerFlash replicas 0 and 1 over
#      the owner's Unix socket and over TCP with TLS, in alternating rounds; replicas 1 is also
#      judged against step 2's Hazelcast QD1 p50 and QD32 rate;
# then writes a Markdown report (every ratio, the targets met or missed) and PNG plots.
#
# Mutual TLS is the default everywhere, as in a deployed cluster: one CA in OUT/certs issues the
# nodes' certificates, the echo server's (a node identity, 'echo') and the load client's (admin),
# so the floor and the runs judged against it are both TLS. Only the plaintext cluster of step 4
# and a plaintext echo, reported beside the TLS echo, run with --insecure.
#
# Usage: it-tests/bench/compare.sh [--quick | --full | --smoke] [--rounds N] [--out DIR] [--qd LIST]
#                                  [--nbd-only]
#   --quick  about 12 minutes: short runs (3 s each), a 64 MiB cache for the sustained run
#   --full   (default) about an hour: 15 s runs, a 256 MiB cache, 3 minutes sustained
#   --smoke  about 8 minutes on a busy machine: 1 s runs, hardly any warm-up, no wait for an idle
#            machine; checks that every step and the report work, its numbers mean nothing
#   --rounds rounds of TLS against plaintext, of the QD1 runs judged against the echo and of the
#            NBD step (default 3, the fewest the targets accept)
#   --out    where results, logs and the report go (default: /tmp/peerflash-bench-<time>)
#   --qd     queue depths of every PeerFlash run (default 1,32)
#   --nbd-only  step 7 alone (about 13 minutes with --full's 10 s runs; --quick 3 s runs), with
#               Hazelcast measured by nbd.sh at QD1 and QD32 before its rounds
#
# Needs the node's jar: run 'mvn -B -ntp package -DskipTests' from the root first. The peer's
# side (it-tests/bench/pom.xml) is built here; the first build downloads Hazelcast.
# Every process it starts is stopped on exit, also on Ctrl-C.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
JAR="$ROOT/node/target/peerflash.jar"
# wait_for_line, stop_pid and the peer's build and run (peer_build, peer_measure), shared with nbd.sh.
source "$ROOT/it-tests/bench/common.sh"
MODE=full
OUT=""
QD="1,32"
ROUNDS=3
NBD_ONLY=false
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) MODE=quick ;;
    --full) MODE=full ;;
    --smoke) MODE=smoke ;;
    --rounds) ROUNDS="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    --qd) QD="$2"; shift ;;
    --nbd-only) NBD_ONLY=true ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
if ! [[ "$ROUNDS" =~ ^[1-9][0-9]?$ ]]; then
  echo "error: --rounds must be 1 to 99, not '$ROUNDS'" >&2
  exit 2
fi

# Every server process gets a warm-up pass (not measured) at QD1 and QD32 before its first measured
# run: on two busy cores the JIT compiler alone takes seconds of CPU, which would otherwise land in
# the first runs (a cold echo measured 4x its warm latency). Each run then has its own warm-up
# (its client JVM is new): 15 s, because a load client warmed for 3 s still read cache hits at
# 196 us p50 where one warmed for 15 s read 146 us (same cluster, minutes apart); the echo's
# simpler client warms faster, so a short warm-up charges the client's JIT to the node.
# IDLE_MAX: the longest wait for an idle machine before a run (see wait_idle), in seconds.
IDLE_MAX=60
# NBD_SECS: each fio run of step 7 (rounds of it: --rounds).
NBD_SECS=10
if [ "$MODE" = quick ]; then
  NBD_SECS=3
  DUR=3s; WARM=4s; PASS=5s; SUSTAIN=30s; SUSTAIN_CACHE=64MiB; CACHE=1GiB; HZ_DUR=3; HZ_WARM=2
elif [ "$MODE" = smoke ]; then
  NBD_SECS=1
  DUR=1s; WARM=1s; PASS=1s; SUSTAIN=10s; SUSTAIN_CACHE=64MiB; CACHE=256MiB; HZ_DUR=1; HZ_WARM=1
  IDLE_MAX=1
else
  DUR=15s; WARM=15s; PASS=20s; SUSTAIN=180s; SUSTAIN_CACHE=256MiB; CACHE=1GiB; HZ_DUR=15; HZ_WARM=3
fi
# Ports away from local-cluster's defaults, so a cluster someone is trying out stays untouched.
BASE_PORT=17601
RAFT_BASE_PORT=17701
# The plaintext cluster of step 4, up at the same time as the TLS one.
PLAIN_BASE_PORT=17611
PLAIN_RAFT_BASE_PORT=17711
ECHO_PORT=17690
PLAIN_ECHO_PORT=17691
HZ_PORTS=(15701 15702)
targets() { echo "127.0.0.1:$1,127.0.0.1:$(($1 + 1)),127.0.0.1:$(($1 + 2))"; }
TARGET=$(targets $BASE_PORT)
PLAIN_TARGET=$(targets $PLAIN_BASE_PORT)

if [ ! -f "$JAR" ]; then
  echo "error: $JAR is missing; build it first: mvn -B -ntp package -DskipTests" >&2
  exit 1
fi
OUT=${OUT:-/tmp/peerflash-bench-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/results" "$OUT/logs"
# 7. NBD, also alone: its own script, its own processes and ports, its report beside this one's.
# Its targets against Hazelcast take step 2's figures of this run; alone (--nbd-only) it measures
# Hazelcast itself (never a hazelcast.json an earlier run left in --out).
run_nbd() {
  local hz=()
  if ! $NBD_ONLY && [ -f "$OUT/results/hazelcast.json" ]; then
    hz=(--hazelcast "$OUT/results/hazelcast.json")
  fi
  echo "== NBD: fio's nbd engine, $ROUNDS rounds of ${NBD_SECS} s runs"
  if ! "$ROOT/it-tests/bench/nbd.sh" --out "$OUT/nbd" --rounds "$ROUNDS" --seconds "$NBD_SECS" \
    "${hz[@]}" | tee "$OUT/logs/nbd.log"; then
    echo "the NBD step failed; see $OUT/logs/nbd.log" >&2
    return 1
  fi
}
# Alone, the NBD step failing fails the script; in a whole run the other steps' report still comes.
if $NBD_ONLY; then
  run_nbd || exit 1
  exit 0
fi
# Each cluster preallocates its cache files and the sustained run writes a 16 GiB volume's worth of
# shared storage: refuse to start on a disk that would fill up halfway.
FREE_KB=$(df -Pk "$OUT" | awk 'NR == 2 {print $4}')
if [ "${FREE_KB:-0}" -lt $((12 * 1024 * 1024)) ]; then
  echo "error: $OUT has $((FREE_KB / 1024)) MiB free; compare.sh needs about 12 GiB" >&2
  exit 1
fi
RESULTS="$OUT/results"
LOGS="$OUT/logs"
# Each command says --certs or --insecure itself: a user's defaults must not add the other one.
unset PEERFLASH_CERTS PEERFLASH_INSECURE
# One CA for every cluster and the echo server; the load client is the admin.
CERTS="$OUT/certs"
TLS_CLIENT=(--certs "$CERTS/admin")
echo "compare.sh ($MODE): results, logs and report in $OUT"

# ---- processes and cleanup ------------------------------------------------------------------
PIDS=()
CLUSTER_DIRS=()
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
for p in $ECHO_PORT $PLAIN_ECHO_PORT "${HZ_PORTS[@]}" \
  $BASE_PORT $((BASE_PORT + 1)) $((BASE_PORT + 2)) \
  $RAFT_BASE_PORT $((RAFT_BASE_PORT + 1)) $((RAFT_BASE_PORT + 2)) \
  $PLAIN_BASE_PORT $((PLAIN_BASE_PORT + 1)) $((PLAIN_BASE_PORT + 2)) \
  $PLAIN_RAFT_BASE_PORT $((PLAIN_RAFT_BASE_PORT + 1)) $((PLAIN_RAFT_BASE_PORT + 2)); do
  if ! port_free "$p"; then
    echo "error: port $p is in use; stop what uses it (a previous compare.sh?)" >&2
    exit 1
  fi
done

# Waits (at most IDLE_MAX s: 60, 1 for --smoke) until the machine is idle: at least 70 % of its
# CPU time idle over one second, and its disks quiet (no task waiting for I/O at the end of that second, under 8 MiB
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
  for ((i = 0; i < IDLE_MAX; i++)); do
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
  [ "$MODE" = smoke ] && return 0
  echo "note: the machine did not go idle within $IDLE_MAX s; measuring anyway" >&2
}

PF=(java -jar "$JAR")
pf() { "${PF[@]}" "$@"; }
bench() { # bench args...: one 'peerflash bench' run on the TLS cluster; its table goes to the log
  bench_at "$TARGET" "${TLS_CLIENT[@]}" "$@"
}
bench_at() { # targets then bench args (--certs DIR or --insecure among them)
  local target=$1
  shift
  wait_idle
  pf bench --target "$target" --qd "$QD" --duration "$DUR" --warmup "$WARM" "$@" \
    | tee -a "$LOGS/bench.log" || echo "warning: this run failed or had errors (see above)" >&2
}

CLUSTER_PID=""
CLUSTER_DIR=""
start_cluster() { # name cache-size base-port raft-base-port [local-cluster args...]
  local name=$1 cache=$2 base=$3 raft=$4
  shift 4
  local dir="$OUT/$name" p
  # Each cluster's HTTP (metrics, status page) and NBD ports follow its client ports, so two
  # clusters up side by side (step 4) never meet on local-cluster's default 7801+ and 10809+.
  local http=$((base + 200)) nbd=$((base + 300))
  for p in $base $((base + 1)) $((base + 2)) $raft $((raft + 1)) $((raft + 2)) \
    $http $((http + 1)) $((http + 2)) $nbd $((nbd + 1)) $((nbd + 2)); do
    port_free "$p" || { echo "error: port $p is still in use before starting $name" >&2; exit 1; }
  done
  rm -rf "$dir"
  # local-cluster makes its certificates in DIR/certs, keeping a CA that is there: pointing that
  # at the run's one CA makes every cluster's nodes trust the load client and the echo's identity.
  mkdir -p "$dir"
  ln -s "$CERTS" "$dir/certs"
  CLUSTER_DIRS+=("$dir")
  CLUSTER_DIR=$dir
  # Started directly (not through a function, which would run in a subshell): $! is the JVM.
  env ${NODE_JVM_OPTS:+"JDK_JAVA_OPTIONS=$NODE_JVM_OPTS"} "${PF[@]}" local-cluster --nodes 3 --dir "$dir" \
    --cache-size "$cache" --base-port "$base" --raft-base-port "$raft" \
    --http-base-port "$http" --nbd-base-port "$nbd" "$@" \
    >"$LOGS/$name.log" 2>&1 &
  CLUSTER_PID=$!
  PIDS+=("$CLUSTER_PID")
  wait_for_line "$LOGS/$name.log" "cluster ready" "$CLUSTER_PID" 120
  echo "== cluster $name: 3 nodes, cache $cache each $*"
}
warm_up() { # targets then --certs DIR or --insecure: the write and read paths, not measured
  local target=$1
  shift
  echo "-- warm-up pass ($PASS, not measured)"
  # Two volumes with one replica each: placement puts their replicas on different nodes, so every
  # node runs the owner's and the replica's code before the first measured run.
  for v in b-warm1 b-warm2; do
    pf bench --target "$target" "$@" --workload write,read-hit --qd 1,32 --api unary \
      --duration "$PASS" --warmup 0s --volume "$v" --replicas 1 --working-set 16MiB \
      --no-progress >/dev/null || true
  done
  for v in b-warm1 b-warm2; do
    pf volume delete "$v" --target "$target" "$@" >/dev/null 2>&1 || true
  done
}
stop_cluster() { # [launcher-pid cluster-dir]: the cluster started last by default
  local pid=${1:-$CLUSTER_PID} dir=${2:-$CLUSTER_DIR}
  stop_pid "$pid" 60
  # The next cluster uses the same ports: make sure every node is gone.
  while read -r _ pid _; do stop_pid "$pid" 5; done < "$dir/cluster.txt"
  # Keep the node logs; drop the cache files and shared storage (gigabytes per cluster: a full
  # run would otherwise fill a small disk, and a full disk fails the runs that follow).
  local name
  name=$(basename "$dir")
  for f in "$dir"/n*.log; do [ -f "$f" ] && cp "$f" "$LOGS/$name-$(basename "$f")"; done
  rm -rf "$dir" # the certs link goes, the CA it points to stays
}

# ---- the peer's side: built first, so a failed download stops the run early ------------------
echo "== building the peer's load client (Hazelcast)"
peer_build "$OUT/peer.classpath"

START=$(date +%s)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- certificates: one CA, the echo server's node identity, the admin client -----------------
echo "== certificates in $CERTS"
{
  pf certs init --dir "$CERTS" \
    && pf certs node --dir "$CERTS" --id echo \
    && pf certs client --dir "$CERTS" --name admin --role admin
} >"$LOGS/certs.log" 2>&1 || { cat "$LOGS/certs.log" >&2; exit 1; }

# ---- 1. the floor: gRPC echo, over TLS as the nodes serve, and in plaintext beside it ---------
echo "== floor: 4 KiB gRPC echo (mutual TLS; plaintext beside it)"
"${PF[@]}" bench echo-server --listen "127.0.0.1:$ECHO_PORT" --certs "$CERTS/echo" \
  >"$LOGS/echo-server.log" 2>&1 &
ECHO_PID=$!
PIDS+=("$ECHO_PID")
"${PF[@]}" bench echo-server --listen "127.0.0.1:$PLAIN_ECHO_PORT" --insecure \
  >"$LOGS/plain-echo-server.log" 2>&1 &
PLAIN_ECHO_PID=$!
PIDS+=("$PLAIN_ECHO_PID")
wait_for_line "$LOGS/echo-server.log" "listening" "$ECHO_PID" 30
wait_for_line "$LOGS/plain-echo-server.log" "listening" "$PLAIN_ECHO_PID" 30
pf bench --workload echo --target "127.0.0.1:$ECHO_PORT" "${TLS_CLIENT[@]}" --qd 1,32 \
  --duration "$PASS" --warmup 0s --no-progress >/dev/null || true
pf bench --workload echo --target "127.0.0.1:$PLAIN_ECHO_PORT" --insecure --qd 1,32 \
  --duration "$PASS" --warmup 0s --no-progress >/dev/null || true
wait_idle
pf bench --workload echo --target "127.0.0.1:$ECHO_PORT" "${TLS_CLIENT[@]}" --qd "$QD" \
  --duration "$DUR" --warmup "$WARM" --id echo \
  --json "$RESULTS/echo.json" | tee -a "$LOGS/bench.log" || echo "warning: the echo run failed" >&2
wait_idle
pf bench --workload echo --target "127.0.0.1:$PLAIN_ECHO_PORT" --insecure --qd "$QD" \
  --duration "$DUR" --warmup "$WARM" --id plain-echo \
  --json "$RESULTS/plain-echo.json" | tee -a "$LOGS/bench.log" \
  || echo "warning: the plaintext echo run failed" >&2
stop_pid "$PLAIN_ECHO_PID"
# The echo server stays up: the QD1 target runs measure their floor again, interleaved with
# them (bench --floor: 100 ms of the run, 100 ms of echo, and so on), since the machine's speed
# drifts by more than the targets' margins (a QD1 echo ran at 69, 94 and 129 us p50 minutes apart).
FLOOR=(--floor "127.0.0.1:$ECHO_PORT")

# ---- 2. the peer: Hazelcast, two members, backup-count 1 --------------------------------------
# At the run's queue depths (--qd), in --rounds rounds: each QD's figure is its median round, as
# PeerFlash's QD1 targets are judged by the median of theirs (Hazelcast's QD1 p50 read 100.9 and
# 108.4 us in two full runs an hour apart). Step 7 reuses its QD1 and QD32 figures for the NBD
# targets against Hazelcast (and measures them itself when --qd leaves either out).
echo "== peer: Hazelcast 5.7.0, 2 members, IMap.put 4 KiB, backup-count 1 ($ROUNDS rounds)"
# An earlier run's, in a reused --out: step 7 would take it.
rm -rf "$RESULTS/hazelcast.json" "$RESULTS/hazelcast-rounds"
peer_measure "$RESULTS/hazelcast.json" "$QD" "$HZ_DUR" "$HZ_WARM" "${PASS%s}" "$LOGS/bench.log" \
  "${HZ_PORTS[@]}" "$ROUNDS"

# ---- 3. PeerFlash: write-back, replicas 0/1/2, reads, mix, sequential -------------------------
start_cluster cluster-a "$CACHE" $BASE_PORT $RAFT_BASE_PORT
warm_up "$TARGET" "${TLS_CLIENT[@]}"
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
# The QD1 targets against the floor are judged by the median of --rounds rounds: the two runs
# above are round 1; each further round runs both again at QD1, each with its own interleaved
# echo (a single run's ratio moved by more than the targets' margins between runs).
if [[ ",$QD," == *",1,"* ]]; then
  for ((n = 2; n <= ROUNDS; n++)); do
    echo "-- QD1 round $n of $ROUNDS: write-back, replicas 1, and read hits, beside the echo"
    QD=1 bench --workload write --volume "b-wb1-$n" --replicas 1 --id "wb-r1-again-$n" \
      --delete-volume "${FLOOR[@]}" --label "PeerFlash write-back, replicas 1, QD1 round $n" \
      --json "$RESULTS/wb-r1-again-$n.json"
    QD=1 bench --workload read-hit --volume "b-rh-$n" --replicas 1 --id "read-hit-again-$n" \
      --delete-volume "${FLOOR[@]}" --label "PeerFlash read hit, QD1 round $n" \
      --json "$RESULTS/read-hit-again-$n.json"
  done
fi
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

# ---- 4. TLS against plaintext: two clusters up together, rounds alternating between them -------
# Two fresh clusters started and warmed up the same way; each round runs on one while the other
# idles, so a drift of the machine's speed (larger than the 15 % margins) reaches both transports.
echo "== TLS vs plaintext: $ROUNDS rounds on two clusters"
start_cluster cluster-tls "$CACHE" $BASE_PORT $RAFT_BASE_PORT
TLS_CLUSTER=("$CLUSTER_PID" "$CLUSTER_DIR")
start_cluster cluster-plain "$CACHE" $PLAIN_BASE_PORT $PLAIN_RAFT_BASE_PORT --insecure
PLAIN_CLUSTER=("$CLUSTER_PID" "$CLUSTER_DIR")
warm_up "$TARGET" "${TLS_CLIENT[@]}"
warm_up "$PLAIN_TARGET" --insecure
for ((n = 1; n <= ROUNDS; n++)); do
  echo "-- round $n of $ROUNDS: write-back, replicas 1, mutual TLS"
  bench_at "$TARGET" "${TLS_CLIENT[@]}" --workload write --volume "b-tls$n" --replicas 1 \
    --id "tls-wb-r1-$n" --delete-volume --json "$RESULTS/tls-wb-r1-$n.json" \
    --label "PeerFlash write-back, replicas 1, mutual TLS, round $n"
  echo "-- round $n of $ROUNDS: write-back, replicas 1, plaintext"
  bench_at "$PLAIN_TARGET" --insecure --workload write --volume "b-plain$n" --replicas 1 \
    --id "plain-wb-r1-$n" --delete-volume --json "$RESULTS/plain-wb-r1-$n.json" \
    --label "PeerFlash write-back, replicas 1, plaintext, round $n"
done
stop_cluster "${PLAIN_CLUSTER[@]}"
stop_cluster "${TLS_CLUSTER[@]}"

# ---- 5. shared storage with 1 ms latency: write-through vs write-back -------------------------
start_cluster cluster-slow "$CACHE" $BASE_PORT $RAFT_BASE_PORT --set storage-latency-us=1000
warm_up "$TARGET" "${TLS_CLIENT[@]}"
echo "-- write-through, storage 1 ms"
bench --workload write --volume b-wt --mode write-through --replicas 0 --id wt-1ms \
  --delete-volume --label "PeerFlash write-through, storage latency 1 ms" \
  --json "$RESULTS/wt-1ms.json"
echo "-- write-back, replicas 1, storage 1 ms"
bench --workload write --volume b-wbs --replicas 1 --id wb-r1-1ms --delete-volume \
  --label "PeerFlash write-back, replicas 1, storage latency 1 ms" \
  --json "$RESULTS/wb-r1-1ms.json"
stop_cluster

# ---- 6. sustained: several times the cache, destage decides -----------------------------------
# GC and safepoint logs of every node and of the load client, to tell a pause in a JVM from a wait
# for space when a write is slow (logs/gc-sustained-*.log, one per process).
NODE_JVM_OPTS="-Xlog:gc*,safepoint:file=$LOGS/gc-sustained-node-%p.log:uptime,level,tags"
start_cluster cluster-sustained "$SUSTAIN_CACHE" $BASE_PORT $RAFT_BASE_PORT
NODE_JVM_OPTS=""
warm_up "$TARGET" "${TLS_CLIENT[@]}" # a cold JVM's JIT pauses would otherwise land in the first seconds of the run
echo "-- sustained 4 KiB random writes, write-back, replicas 1, QD32, $SUSTAIN"
wait_idle
# (With a warm-up of its own: a cold load client's JIT and GC pauses would be charged to the nodes.)
JDK_JAVA_OPTIONS="-Xlog:gc*,safepoint:file=$LOGS/gc-sustained-client.log:uptime,level,tags" \
  pf bench --target "$TARGET" "${TLS_CLIENT[@]}" --workload write --qd 32 --duration "$SUSTAIN" --warmup "$WARM" \
  --volume b-sus --size 16GiB --replicas 1 --sustained --id sustained \
  --label "PeerFlash sustained 4 KiB random writes, write-back, replicas 1" \
  --json "$RESULTS/sustained.json" | tee -a "$LOGS/bench.log" || true
stop_cluster

# ---- 7. NBD ------------------------------------------------------------------------------------
wait_idle
run_nbd || echo "warning: no NBD section in the report" >&2

# ---- report ---------------------------------------------------------------------------------
ELAPSED=$(($(date +%s) - START))
pf bench report --in "$RESULTS" --out "$OUT" \
  --context "compare.sh --$MODE on $(hostname), $(nproc) cores, $(java -version 2>&1 | head -1)" \
  --context "$(date -u '+%Y-%m-%d %H:%M UTC'), ${ELAPSED} s; load average at the start: $LOAD_BEFORE, at the end: $(cut -d' ' -f1-3 /proc/loadavg)" \
  --context "runs of $DUR after $WARM warm-up, each server warmed up for $PASS first; cache $CACHE per node ($SUSTAIN_CACHE for the sustained run, $SUSTAIN)" \
  --context "mutual TLS on every node, the echo and the load client (one CA, the client as admin), except the plaintext echo and the plaintext cluster of $ROUNDS alternating TLS/plaintext rounds" \
  --context "every process (3 nodes, the load client, Hazelcast members) shares this machine: compare ratios, not absolute times"
# The NBD step's section (fio's figures, judged by nbd.sh) follows the report's own.
if [ -f "$OUT/nbd/nbd-report.md" ] && [ -f "$OUT/report.md" ]; then
  { echo; cat "$OUT/nbd/nbd-report.md"; } >>"$OUT/report.md"
fi
