#!/usr/bin/env bash
# The NBD section of compare.sh, also run alone: fio's nbd engine, 4 KiB random I/O, latency p50
# (fio's total latency, submission to completion) and IOPS, against
#   - the floor: nbdkit's memory plugin, over a Unix socket and over TCP (no TLS);
#   - qemu-nbd exporting a raw file on local disk over a Unix socket (what a user would run
#     without PeerFlash; its default write-back cache: writes land in the page cache);
#   - PeerFlash, a 2-node local cluster with mutual TLS, volumes half the cache: replicas 0, then
#     replicas 1, each over the owner's Unix socket and over TCP with TLS (NBD_OPT_STARTTLS);
#   - a 4 KiB gRPC echo at QD1 (mutual TLS), beside the replicas-1 rounds, for their target;
#   - the peer: Hazelcast 5.7.0, two members, IMap.put of 4 KiB values with backup-count 1, at
#     QD1 (p50) and QD32 (rate; 32 client threads of blocking puts), for the replicas-1 targets
#     against it: compare.sh's step 2 figures of the same run (--hazelcast), or else measured
#     here before the rounds (the members are stopped before the first fio run); either way
#     each QD's figure is the median of --rounds Hazelcast rounds.
# Per target: random writes at QD1 and QD32, and random reads at QD1 after the whole export was
# written once (for PeerFlash: read hits). Rounds alternate every target, and each ratio is taken
# against the floor measured in its own round; the report gives the medians of the rounds. A
# target missed is reported as missed; a server or the Hazelcast run failing is an error.
#
# Usage: it-tests/bench/nbd.sh [--out DIR] [--rounds N] [--seconds S] [--cache SIZE]
#                              [--hazelcast FILE]
#   --out        results, logs and nbd-report.md (default: /tmp/peerflash-nbd-<time>)
#   --rounds     rounds per phase (default 3)
#   --seconds    each fio run, after a 1 s ramp (default 10); also each Hazelcast QD's run
#   --cache      cache size per node (default 256MiB; volumes are half of it)
#   --hazelcast  Hazelcast's results JSON (HazelcastLoad's, as compare.sh writes it); used when
#                it holds QD1 and QD32, else Hazelcast is measured here
# Needs fio (with its nbd engine), nbdkit, qemu-nbd, jq, python3, the node's jar
# (mvn -B -ntp package -DskipTests), and Maven to build the peer's side (it-tests/bench/pom.xml)
# when it measures Hazelcast. Every process it starts is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
JAR="$ROOT/node/target/peerflash.jar"
OUT=""
ROUNDS=3
SECS=10
CACHE=256MiB
HZ_FROM=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift ;;
    --rounds) ROUNDS="$2"; shift ;;
    --seconds) SECS="$2"; shift ;;
    --cache) CACHE="$2"; shift ;;
    --hazelcast) HZ_FROM="$2"; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
# Whether a Hazelcast results JSON has both figures the targets take: QD1 and QD32, each with puts.
hz_complete() { # json
  [ -s "$1" ] && jq -e '[.results[] | select(.system == "hazelcast" and .ops > 0) | .qd]
    | (index(1) != null) and (index(32) != null)' "$1" >/dev/null 2>&1
}
HZ_REUSE=false
if [ -n "$HZ_FROM" ]; then
  if hz_complete "$HZ_FROM"; then
    HZ_REUSE=true
  else
    echo "note: $HZ_FROM holds no Hazelcast figures for both QD1 and QD32; measuring them here" >&2
  fi
fi
TOOLS=(fio nbdkit qemu-nbd jq python3 java)
$HZ_REUSE || TOOLS+=(mvn)
for tool in "${TOOLS[@]}"; do
  command -v "$tool" >/dev/null || { echo "error: $tool is missing" >&2; exit 1; }
done
[ -f "$JAR" ] || { echo "error: $JAR is missing; build it first" >&2; exit 1; }
OUT=${OUT:-/tmp/peerflash-nbd-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/results" "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
RES="$OUT/results/nbd.tsv"
LOGS="$OUT/logs"
HZ_JSON="$OUT/results/hazelcast.json"
: >"$RES"
$HZ_REUSE || rm -rf "$HZ_JSON" "${HZ_JSON%.json}-rounds" # an earlier run's, in a reused --out
unset PEERFLASH_CERTS PEERFLASH_INSECURE PEERFLASH_TARGET
case "$CACHE" in
  *MiB) CACHE_MIB=${CACHE%MiB} ;;
  *GiB) CACHE_MIB=$((${CACHE%GiB} * 1024)) ;;
  *) echo "error: --cache takes N MiB or N GiB (e.g. 256MiB), not '$CACHE'" >&2; exit 2 ;;
esac
VOL_MIB=$((CACHE_MIB / 2))
# Ports apart from compare.sh's other steps and from local-cluster's defaults.
BASE_PORT=17631
RAFT_BASE_PORT=17731
NBD_BASE_PORT=10909
FLOOR_TCP_PORT=10899
ECHO_PORT=17692
HZ_PORTS=(15721 15722)
DIR="$OUT/cluster"
PF=(java -jar "$JAR")
echo "nbd.sh: $ROUNDS rounds per phase, ${SECS} s runs, cache $CACHE, volumes ${VOL_MIB} MiB; in $OUT"

PIDS=()
# wait_for_line, stop_pid, and the peer's build and run (peer_build, peer_measure), as compare.sh.
source "$ROOT/it-tests/bench/common.sh"
cleanup() {
  trap - EXIT INT TERM
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 2
  if [ -f "$DIR/cluster.txt" ]; then
    while read -r _ pid _; do kill -KILL "$pid" 2>/dev/null || true; done <"$DIR/cluster.txt"
  fi
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

# ---- the peer: Hazelcast at QD1 and QD32, before any other server is up ----------------------
if $HZ_REUSE; then
  [ "$HZ_FROM" -ef "$HZ_JSON" ] || cp "$HZ_FROM" "$HZ_JSON"
  HZ_SOURCE="from --hazelcast $HZ_FROM"
  echo "Hazelcast: the figures of $HZ_FROM"
else
  echo "== Hazelcast 5.7.0, 2 members, IMap.put 4 KiB, backup-count 1: QD1 and QD32"
  peer_build "$OUT/peer.classpath"
  # Warmed up by a QD32 pass of at least 5 s, as compare.sh's --quick; each QD then runs as long
  # as a fio run, after a warm-up of its own.
  peer_measure "$HZ_JSON" 1,32 "$SECS" $((SECS < 3 ? SECS : 3)) $((SECS < 5 ? 5 : SECS)) \
    "$LOGS/hazelcast-table.log" "${HZ_PORTS[@]}" "$ROUNDS"
  if ! hz_complete "$HZ_JSON"; then
    echo "error: no Hazelcast figures for QD1 and QD32; see $LOGS/hazelcast-load.log" >&2
    exit 1
  fi
  HZ_SOURCE="measured by nbd.sh before the rounds, ${SECS} s per QD, the median of $ROUNDS rounds"
fi

# ---- servers --------------------------------------------------------------------------------
nbdkit -f -U "$OUT/floor.sock" memory 1G >"$LOGS/nbdkit-unix.log" 2>&1 &
PIDS+=($!)
nbdkit -f -i 127.0.0.1 -p "$FLOOR_TCP_PORT" memory 1G >"$LOGS/nbdkit-tcp.log" 2>&1 &
PIDS+=($!)
# qemu-nbd's raw file on the disk the cluster's flash is on, as large as a volume.
truncate -s "${VOL_MIB}M" "$OUT/qemu-disk.raw"
qemu-nbd -t -f raw -x disk -k "$OUT/qemu.sock" "$OUT/qemu-disk.raw" >"$LOGS/qemu-nbd.log" 2>&1 &
PIDS+=($!)
"${PF[@]}" local-cluster --nodes 2 --dir "$DIR" --cache-size "$CACHE" --base-port "$BASE_PORT" \
  --raft-base-port "$RAFT_BASE_PORT" --http-base-port 0 --nbd-base-port "$NBD_BASE_PORT" \
  >"$LOGS/cluster.log" 2>&1 &
PIDS+=($!)
wait_for_line "$LOGS/cluster.log" "cluster ready" "$!" 240
CERTS="$DIR/certs"
TARGET="127.0.0.1:$BASE_PORT,127.0.0.1:$((BASE_PORT + 1))"
CLIENT=(--target "$TARGET" --certs "$CERTS/admin")
"${PF[@]}" certs node --dir "$CERTS" --id echo >/dev/null
"${PF[@]}" bench echo-server --listen "127.0.0.1:$ECHO_PORT" --certs "$CERTS/echo" \
  >"$LOGS/echo-server.log" 2>&1 &
PIDS+=($!)
wait_for_line "$LOGS/echo-server.log" "listening" "$!" 30
for i in $(seq 1 50); do [ -S "$OUT/floor.sock" ] && [ -S "$OUT/qemu.sock" ] && break; sleep 0.1; done
# fio's nbd engine takes no tls-certificates=DIR in the URI; libnbd then reads the client's files
# from $HOME/.pki/libnbd, or for root from /etc/pki/libnbd. So as root the TLS runs go as user
# nobody with a home of their own here (nothing outside OUT changes).
TLS_HOME="$OUT/home"
mkdir -p "$TLS_HOME/.pki/libnbd"
cp "$CERTS/admin/"*.pem "$TLS_HOME/.pki/libnbd/"
AS_CLIENT=(env HOME="$TLS_HOME")
if [ "$(id -u)" = 0 ]; then
  chown -R 65534:65534 "$TLS_HOME"
  AS_CLIENT=(setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$TLS_HOME")
fi

# ---- one fio run: appends "phase round target workload qd iops p50 p99 errors" ---------------
fio_run() { # phase round target uri rw qd
  local phase=$1 round=$2 target=$3 uri=$4 rw=$5 qd=$6 json
  json="$OUT/results/$phase-$round-$target-$rw-qd$qd.json"
  local as=()
  [[ "$uri" == nbds://* ]] && as=("${AS_CLIENT[@]}")
  "${as[@]}" fio --name="$target" --ioengine=nbd --uri="$uri" --rw="$rw" --bs=4k --iodepth="$qd" \
    --size="${VOL_MIB}m" --time_based --ramp_time=1 --runtime="$SECS" --lat_percentiles=1 \
    --output-format=json 2>>"$LOGS/fio.log" | sed -n '/^{/,$p' >"$json" || true
  jq -r --arg p "$phase" --arg r "$round" --arg t "$target" --arg w "$rw" --arg q "$qd" '
    .jobs[0] as $j | (if $w == "randread" then $j.read else $j.write end) as $d
    | [$p, $r, $t, $w, $q, ($d.iops | floor), ($d.lat_ns.percentile["50.000000"] / 1000),
       ($d.lat_ns.percentile["99.000000"] / 1000), $j.error] | @tsv' "$json" >>"$RES" \
    && tail -1 "$RES" || echo "warning: $target $rw QD$qd gave no result (see $LOGS/fio.log)" >&2
}
fill() { # uri: writes the whole export once, so reads after it are of written (cached) data
  local as=()
  [[ "$1" == nbds://* ]] && as=("${AS_CLIENT[@]}")
  "${as[@]}" fio --name=fill --ioengine=nbd --uri="$1" --rw=write --bs=1m --iodepth=8 --size="${VOL_MIB}m" \
    >>"$LOGS/fio.log" 2>&1
}
volume() { # name replicas: creates it, prints "owner-index"
  "${PF[@]}" volume create "$1" --size "${VOL_MIB}MiB" --replicas "$2" "${CLIENT[@]}" >&2
  "${PF[@]}" volume stat "$1" "${CLIENT[@]}" | awk '/^owner:/ {sub(/^n/, "", $2); print $2}'
}
run_targets() { # phase rounds "name=uri"...
  local phase=$1 rounds=$2 r t
  shift 2
  for t in "$@"; do # warm-up (the JIT of each node, the page cache), not recorded
    local as=()
    [[ "${t#*=}" == nbds://* ]] && as=("${AS_CLIENT[@]}")
    "${as[@]}" fio --name=warm --ioengine=nbd --uri="${t#*=}" --rw=randwrite --bs=4k --iodepth=32 \
      --size="${VOL_MIB}m" --time_based --runtime=$((SECS < 5 ? SECS : 5)) >>"$LOGS/fio.log" 2>&1 || true
  done
  for ((r = 1; r <= rounds; r++)); do
    for t in "$@"; do
      fio_run "$phase" "$r" "${t%%=*}" "${t#*=}" randwrite 1
      fio_run "$phase" "$r" "${t%%=*}" "${t#*=}" randwrite 32
      fio_run "$phase" "$r" "${t%%=*}" "${t#*=}" randread 1
    done
    if [ "$phase" = replicas1 ]; then
      "${PF[@]}" bench --workload echo --target "127.0.0.1:$ECHO_PORT" --certs "$CERTS/admin" \
        --qd 1 --duration "${SECS}s" --warmup "${SECS}s" --no-progress \
        --json "$OUT/results/echo-$r.json" >>"$LOGS/echo.log" 2>&1 || true
      jq -r --arg r "$r" '.results[0] | ["replicas1", $r, "grpc-echo", "echo", "1",
        (.iops | floor), .latency_us.p50, .latency_us.p99, .errors] | @tsv' \
        "$OUT/results/echo-$r.json" >>"$RES" && tail -1 "$RES" \
        || echo "warning: echo round $r failed" >&2
    fi
  done
}

FLOOR_UNIX="floor-unix=nbd+unix:///?socket=$OUT/floor.sock"
FLOOR_TCP="floor-tcp=nbd://127.0.0.1:$FLOOR_TCP_PORT/"
QEMU="qemu-nbd=nbd+unix:///disk?socket=$OUT/qemu.sock"
for t in "$FLOOR_UNIX" "$FLOOR_TCP" "$QEMU"; do fill "${t#*=}"; done

# ---- phase 1: replicas 0 ----------------------------------------------------------------------
echo "== replicas 0"
OWNER=$(volume nbd-r0 0)
R0_UNIX="pf-r0-unix=nbd+unix:///nbd-r0?socket=$DIR/n$OWNER/nbd.sock"
R0_TLS="pf-r0-tls=nbds://localhost:$((NBD_BASE_PORT + OWNER - 1))/nbd-r0"
fill "${R0_UNIX#*=}"
run_targets replicas0 "$ROUNDS" "$FLOOR_UNIX" "$FLOOR_TCP" "$QEMU" "$R0_UNIX" "$R0_TLS"
"${PF[@]}" volume delete nbd-r0 "${CLIENT[@]}" >/dev/null

# ---- phase 2: replicas 1 (the other volume is gone: each phase has the cache to itself) ------
echo "== replicas 1"
OWNER=$(volume nbd-r1 1)
R1_UNIX="pf-r1-unix=nbd+unix:///nbd-r1?socket=$DIR/n$OWNER/nbd.sock"
R1_TLS="pf-r1-tls=nbds://localhost:$((NBD_BASE_PORT + OWNER - 1))/nbd-r1"
fill "${R1_UNIX#*=}"
run_targets replicas1 "$ROUNDS" "$FLOOR_UNIX" "$R1_UNIX" "$R1_TLS"

# ---- report -----------------------------------------------------------------------------------
python3 - "$RES" "$OUT/nbd-report.md" "$ROUNDS" "$SECS" "$CACHE" "$VOL_MIB" "$HZ_JSON" \
  "$HZ_SOURCE" <<'EOF'
import collections, json, statistics, sys
res, out, rounds, secs, cache, vol, hz_json, hz_source = sys.argv[1:9]
# Hazelcast's put at each QD: (rate per s, p50 us, errors)
hz = {r["qd"]: (r["iops"], r["latency_us"]["p50"], r["errors"])
      for r in json.load(open(hz_json))["results"] if r.get("system") == "hazelcast"}
rows = collections.defaultdict(dict)  # (phase, round) -> (target, workload, qd) -> (iops, p50, p99, err)
for line in open(res):
    f = line.rstrip("\n").split("\t")
    if len(f) < 9:
        continue
    rows[(f[0], f[1])][(f[2], f[3], f[4])] = (float(f[5]), float(f[6]), float(f[7]), int(float(f[8])))
def med(xs):
    return statistics.median(xs) if xs else float("nan")
def col(phase, key, i):
    return [r[key][i] for (p, _), r in sorted(rows.items()) if p == phase and key in r]
def ratios(phase, key, floor, i):
    return [r[key][i] / r[floor][i] for (p, _), r in sorted(rows.items())
            if p == phase and key in r and floor in r and r[floor][i] > 0]
L = []
L.append("## NBD: fio's nbd engine, 4 KiB random (medians of %s rounds)\n" % rounds)
L.append("Runs of %s s after a 1 s ramp; cache %s per node, volumes %s MiB (half of it); 2-node "
         "PeerFlash cluster with mutual TLS. Latency is fio's total (submission to completion). "
         "Ratios are against the floor (`nbdkit memory`, Unix socket) of the same round.\n" % (secs, cache, vol))
L.append("| target | write QD1 p50 us | write QD32 IOPS | read QD1 p50 us | write QD1 p50 / floor | write QD32 IOPS / floor | read QD1 p50 / floor | errors |")
L.append("|---|---|---|---|---|---|---|---|")
order = [("replicas0", t) for t in ("floor-unix", "floor-tcp", "qemu-nbd", "pf-r0-unix", "pf-r0-tls")] + \
        [("replicas1", t) for t in ("floor-unix", "pf-r1-unix", "pf-r1-tls")]
for phase, t in order:
    w1, w32, r1 = (t, "randwrite", "1"), (t, "randwrite", "32"), (t, "randread", "1")
    f1, f32, fr = ("floor-unix", "randwrite", "1"), ("floor-unix", "randwrite", "32"), ("floor-unix", "randread", "1")
    errs = sum(r[k][3] for (p, _), r in rows.items() if p == phase for k in (w1, w32, r1) if k in r)
    L.append("| %s (%s) | %.1f | %.0f | %.1f | %.2fx | %.2fx | %.2fx | %d |" % (
        t, phase, med(col(phase, w1, 1)), med(col(phase, w32, 0)), med(col(phase, r1, 1)),
        med(ratios(phase, w1, f1, 1)), med(ratios(phase, w32, f32, 0)), med(ratios(phase, r1, fr, 1)), errs))
echo = col("replicas1", ("grpc-echo", "echo", "1"), 1)
L.append("| gRPC echo, QD1, mutual TLS (replicas 1 rounds) | %.1f | | | | | | |" % med(echo))
L.append("| Hazelcast 5.7.0 IMap.put 4 KiB, 2 members, backup-count 1 (%s) | %.1f | %.0f | | | | | %d |" % (
    hz_source, hz[1][1], hz[32][0], hz[1][2] + hz[32][2]))
L.append("")
def verdict(ok):
    return "met" if ok else "missed"
t = []
w1 = med(ratios("replicas0", ("pf-r0-unix", "randwrite", "1"), ("floor-unix", "randwrite", "1"), 1))
t.append(("replicas 0, Unix socket, write QD1 p50 vs floor", "%.2fx" % w1, "at most 2x", w1 <= 2))
w32 = med(ratios("replicas0", ("pf-r0-unix", "randwrite", "32"), ("floor-unix", "randwrite", "32"), 0))
t.append(("replicas 0, Unix socket, write QD32 IOPS vs floor", "%.2fx" % w32, "at least 0.25x", w32 >= 0.25))
r1 = med(ratios("replicas0", ("pf-r0-unix", "randread", "1"), ("floor-unix", "randread", "1"), 1))
t.append(("replicas 0, Unix socket, read hit QD1 p50 vs floor", "%.2fx" % r1, "at most 1.5x", r1 <= 1.5))
# replicas 1: per round, p50 against floor p50 + 1.5 x echo p50 of the same round
lim = []
for (p, _), r in sorted(rows.items()):
    k, f, e = ("pf-r1-unix", "randwrite", "1"), ("floor-unix", "randwrite", "1"), ("grpc-echo", "echo", "1")
    if p == "replicas1" and k in r and f in r and e in r:
        lim.append((r[k][1], r[f][1] + 1.5 * r[e][1]))
if lim:
    got, limit = med([a for a, _ in lim]), med([b for _, b in lim])
    q = med([a / b for a, b in lim])
    t.append(("replicas 1, Unix socket, write QD1 p50 vs floor p50 + 1.5x echo p50",
              "%.1f us vs %.1f us (%.2fx)" % (got, limit, q), "at most 1x", q <= 1))
# replicas 1 against Hazelcast's put with one backup (measured once, not per round): the median of
# the rounds against Hazelcast's figure
w1 = med(col("replicas1", ("pf-r1-unix", "randwrite", "1"), 1))
t.append(("replicas 1, Unix socket, write QD1 p50 vs Hazelcast put p50 (QD1, backup-count 1)",
          "%.1f us vs %.1f us (%.2fx)" % (w1, hz[1][1], w1 / hz[1][1]), "at most 1x", w1 <= hz[1][1]))
w32 = med(col("replicas1", ("pf-r1-unix", "randwrite", "32"), 0))
t.append(("replicas 1, Unix socket, write QD32 IOPS vs Hazelcast put rate (QD32: 32 threads of blocking puts)",
          "%.0f vs %.0f/s (%.2fx)" % (w32, hz[32][0], w32 / hz[32][0]), "at least 2x", w32 >= 2 * hz[32][0]))
L.append("| NBD target | measured (median of rounds) | limit | |")
L.append("|---|---|---|---|")
for name, got, limit, ok in t:
    L.append("| %s | %s | %s | %s |" % (name, got, limit, verdict(ok)))
L.append("")
L.append("Rounds (phase, round, target, workload, QD, IOPS, p50 us, p99 us, errors) are in `results/nbd.tsv`; "
         "Hazelcast's figures in `results/hazelcast.json`.")
open(out, "w").write("\n".join(L) + "\n")
print("\n".join(L))
EOF
echo "report: $OUT/nbd-report.md"
