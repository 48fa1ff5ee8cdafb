# Sourced by compare.sh and nbd.sh, not run: waiting for a process's line, stopping a process,
# and the peer (Hazelcast 5.7.0: two members, IMap.put of 4 KiB values, backup-count 1), built
# and measured the same way by both. The caller runs under 'set -euo pipefail' and defines ROOT
# (the checkout), LOGS (its log directory) and PIDS (an array: every process it starts, stopped
# on its exit); a wait_idle of its own, if it has one, runs before each measured Hazelcast run.

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

# ---- the peer: Hazelcast ---------------------------------------------------------------------
PEER_POM="$ROOT/it-tests/bench/pom.xml"
PEER_CP=""
HZ_OPTS=(--add-modules java.se --add-exports java.base/jdk.internal.ref=ALL-UNNAMED
  --add-opens java.base/java.lang=ALL-UNNAMED --add-opens java.base/sun.nio.ch=ALL-UNNAMED
  --add-opens java.management/sun.management=ALL-UNNAMED
  --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED)

peer_build() { # classpath-file: builds the members and the load client, sets PEER_CP
  # The first build downloads Hazelcast.
  mvn -B -q -ntp -f "$PEER_POM" package -DskipTests >"$LOGS/peer-build.log" 2>&1 \
    || { tail -30 "$LOGS/peer-build.log" >&2; return 1; }
  mvn -B -q -ntp -f "$PEER_POM" dependency:build-classpath \
    -Dmdep.outputFile="$1" >>"$LOGS/peer-build.log" 2>&1 \
    || { tail -30 "$LOGS/peer-build.log" >&2; return 1; }
  PEER_CP="$ROOT/it-tests/bench/target/classes:$(cat "$1")"
}

# Starts two members on the two ports, warms them up with a pass at QD32 (not measured), then
# measures each queue depth of the list (QD N: N client threads of blocking puts) in each of
# `rounds` rounds (default 1) into a results JSON (peerflash-bench/1, one result per QD; each
# round's table goes to stdout and to table-log) and stops the members. With several rounds the
# result of each QD is its median round, as PeerFlash's QD1 targets are judged by the median of
# theirs: by p50 at QD1, by IOPS deeper; its label lists every round's figure, and each round's
# JSON is kept in a directory beside it (NAME-rounds/round-N.json, out of the report's reach,
# which reads the JSON files of one directory and takes the first figure of each QD). A member
# that does not come up is an error; a load run that fails is a warning, as every other run of
# compare.sh (the caller checks the JSON where it needs the figures).
peer_measure() { # json qd-list duration-s warmup-s pass-s table-log port port [rounds]
  local json=$1 qds=$2 dur=$3 warm=$4 pass=$5 table=$6 port1=$7 port2=$8 rounds=${9:-1}
  local members="127.0.0.1:$port1,127.0.0.1:$port2" pids=() port pid n
  local -a parts=()
  for port in "$port1" "$port2"; do
    java "${HZ_OPTS[@]}" -cp "$PEER_CP" io.peerflash.itbench.HazelcastMember "$port" "$members" \
      >"$LOGS/hazelcast-$port.log" 2>&1 &
    PIDS+=($!)
    pids+=($!)
  done
  wait_for_line "$LOGS/hazelcast-$port1.log" "member ready" "${pids[0]}" 90
  wait_for_line "$LOGS/hazelcast-$port2.log" "member ready" "${pids[1]}" 90
  java "${HZ_OPTS[@]}" -cp "$PEER_CP" io.peerflash.itbench.HazelcastLoad --members "$members" \
    --qd 32 --duration "$pass" --warmup 0 >/dev/null 2>>"$LOGS/hazelcast-load.log" || true
  for ((n = 1; n <= rounds; n++)); do
    local part=$json
    if ((rounds > 1)); then
      mkdir -p "${json%.json}-rounds"
      part="${json%.json}-rounds/round-$n.json"
      echo "-- Hazelcast round $n of $rounds"
    fi
    rm -f "$part"
    if declare -F wait_idle >/dev/null; then wait_idle; fi
    java "${HZ_OPTS[@]}" -cp "$PEER_CP" io.peerflash.itbench.HazelcastLoad --members "$members" \
      --qd "$qds" --duration "$dur" --warmup "$warm" --json "$part" \
      2>>"$LOGS/hazelcast-load.log" | tee -a "$table" \
      || echo "warning: the Hazelcast run failed; see $LOGS/hazelcast-load.log" >&2
    if [ -s "$part" ]; then parts+=("$part"); fi
  done
  for pid in "${pids[@]}"; do stop_pid "$pid"; done
  if ((rounds > 1)); then
    rm -f "$json"
    if ((${#parts[@]} > 0)); then peer_median "$json" "${parts[@]}"; fi
  fi
  return 0
}

# Writes to `json` the rounds' median result of each QD (by p50 at QD1, by IOPS deeper), its
# label naming the rounds' figures in their order. Of an even number of rounds it takes the
# better of the middle two for Hazelcast (the lower p50, the higher rate): the stricter for
# PeerFlash. A QD some round lacks is judged by the rounds that have it.
peer_median() { # json round.json...
  local out=$1
  shift
  python3 - "$out" "$@" <<'PY'
import json, sys

out, parts = sys.argv[1], sys.argv[2:]
docs = [json.load(open(p)) for p in parts]
by_qd = {}
for d in docs:
    for r in d["results"]:
        if r.get("ops", 0) > 0:
            by_qd.setdefault(r["qd"], []).append(r)
merged = []
for qd in sorted(by_qd):
    rs = list(by_qd[qd])
    if qd == 1:
        rs.sort(key=lambda r: r["latency_us"]["p50"])
        figures = ", ".join("%.1f" % r["latency_us"]["p50"] for r in by_qd[qd])
        what = "p50 us"
    else:
        rs.sort(key=lambda r: r["iops"], reverse=True)
        figures = ", ".join("%.0f" % r["iops"] for r in by_qd[qd])
        what = "IOPS"
    median = dict(rs[(len(rs) - 1) // 2])
    median["label"] = "%s; the median of %d rounds (%s: %s)" % (
        median["label"], len(rs), what, figures)
    merged.append(median)
doc = dict(docs[0])
doc["results"] = merged
json.dump(doc, open(out, "w"), indent=1)
PY
}
