#!/usr/bin/env bash
# How long a replica takes to ack a write's copy, as its owner sees it: one local 2-node cluster
# with mutual TLS from JAR, a 128 MiB volume with one replica, fio's nbd engine writing 4 KiB at
# random over the owner's Unix socket at QD1 for DUR seconds (after a QD32 pass that writes every
# block once). Prints fio's p50 and the mean of the owner's peerflash_replica_ack_duration_seconds
# over the QD1 run (from the copy's send to its ack: the replica hop, its store, and any wait for
# the owner's thread).
#
#   it-tests/bench/replica-ack.sh JAR TAG      (DUR=S sets the run length, default 10)
#
# Run it for two builds in turn, several times, to compare them. Needs fio. Uses ports
# 19101-19132 on loopback and /tmp/replica-ack-TAG.
set -u
[ $# -ge 2 ] || { sed -n 2,12p "$0"; exit 2; }
JAR=$1
TAG=$2
DUR=${DUR:-10}
d=/tmp/replica-ack-$TAG
rm -rf "$d"
mkdir -p "$d"
java -jar "$JAR" local-cluster --nodes 2 --dir "$d" --cache-size 256MiB --base-port 19101 \
  --raft-base-port 19111 --http-base-port 19121 --nbd-base-port 19131 >"$d.log" 2>&1 &
PID=$!
trap 'kill -TERM $PID 2>/dev/null; wait $PID 2>/dev/null' EXIT
for _ in $(seq 150); do grep -q "cluster ready" "$d.log" && break; sleep 1; done
grep -q "cluster ready" "$d.log" || { echo "the cluster did not start; see $d.log"; exit 1; }
pf() { java -jar "$JAR" "$@" --target 127.0.0.1:19101 --certs "$d/certs/admin"; }
pf volume create v --size 128MiB --replicas 1 >/dev/null
owner=$(pf volume stat v | sed -n 's/.*owner \(n[0-9]*\).*/\1/p')
http=$((19121 + ${owner#n} - 1))
run() { # qd seconds
  fio --name=w --ioengine=nbd --uri="nbd+unix:///v?socket=$d/$owner/nbd.sock" --rw=randwrite \
    --bs=4k --size=128m --iodepth="$1" --time_based --runtime="$2" --ramp_time=2 \
    --output-format=json 2>/dev/null |
    python3 -c "import json,sys; t=sys.stdin.read(); j=json.loads(t[t.index('{'):])['jobs'][0]['write']; print('$TAG qd$1 iops %.0f p50 %.1f us' % (j['iops'], j['clat_ns']['percentile']['50.000000']/1000))"
}
acks() { curl -s "http://127.0.0.1:$http/metrics" | grep "^peerflash_replica_ack_duration_seconds_\(sum\|count\)"; }
run 32 8 >/dev/null
before=$(acks)
run 1 "$DUR"
after=$(acks)
python3 - "$before" "$after" "$TAG" <<'PY'
import sys
def parse(text):
    v = {}
    for line in text.splitlines():
        key, x = line.rsplit(" ", 1)
        v[key.split("{")[0].rsplit("_", 1)[1]] = v.get(key.split("{")[0].rsplit("_", 1)[1], 0) + float(x)
    return v
a, b = parse(sys.argv[1]), parse(sys.argv[2])
n = b["count"] - a["count"]
print("%s replica ack mean %.1f us over %d acks" % (sys.argv[3], (b["sum"] - a["sum"]) / n * 1e6, n))
PY
