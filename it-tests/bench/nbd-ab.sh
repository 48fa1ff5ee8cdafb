#!/usr/bin/env bash
# Before/after of a change on the replicated write path, through NBD: two local 2-node clusters
# with mutual TLS side by side, one from each build, a 128 MiB volume with one replica in each,
# fio's nbd engine writing 4 KiB at random over the owner's Unix socket, QD1 then QD32,
# alternating between the builds. Prints each run's IOPS and p50 (fio's completion latency).
#
#   it-tests/bench/nbd-ab.sh JAR_A JAR_B [ROUNDS]      (default 3; DUR=S sets the run length, 10)
#
# Build each jar from its commit (mvn -B -q -ntp package -DskipTests) and copy
# node/target/peerflash.jar aside. Run it twice with the jars swapped: the cluster in the first
# slot has been faster at QD32 whichever build it ran. Needs fio. Uses ports 18901-18982 on
# loopback and /tmp/nbd-ab-{a,b}.
set -u
[ $# -ge 2 ] || { sed -n 2,12p "$0"; exit 2; }
A=$1
B=$2
R=${3:-3}
DUR=${DUR:-10}
up() { # id jar base raft http nbd
  local d=/tmp/nbd-ab-$1
  rm -rf "$d"
  mkdir -p "$d"
  nohup java -jar "$2" local-cluster --nodes 2 --dir "$d" --cache-size 256MiB --base-port "$3" \
    --raft-base-port "$4" --http-base-port "$5" --nbd-base-port "$6" >"$d.log" 2>&1 &
  echo $! >"$d.pid"
}
down() {
  for n in a b; do [ -f /tmp/nbd-ab-$n.pid ] && kill -TERM "$(cat /tmp/nbd-ab-$n.pid)" 2>/dev/null; done
  wait
}
trap down EXIT
up a "$A" 18901 18911 18921 18931
up b "$B" 18951 18961 18971 18981
for n in a b; do
  for _ in $(seq 150); do grep -q "cluster ready" /tmp/nbd-ab-$n.log && break; sleep 1; done
  grep -q "cluster ready" /tmp/nbd-ab-$n.log || { echo "cluster $n did not start"; exit 1; }
done
pf() { # id base-port args...
  local id=$1 base=$2
  shift 2
  java -jar "$A" "$@" --target "127.0.0.1:$base" --certs "/tmp/nbd-ab-$id/certs/admin"
}
socket() { # id base-port: the owner's NBD socket
  local owner
  owner=$(pf "$1" "$2" volume stat v | sed -n 's/.*owner \(n[0-9]*\).*/\1/p')
  echo "/tmp/nbd-ab-$1/$owner/nbd.sock"
}
pf a 18901 volume create v --size 128MiB --replicas 1 >/dev/null
pf b 18951 volume create v --size 128MiB --replicas 1 >/dev/null
SA=$(socket a 18901)
SB=$(socket b 18951)
run() { # id socket qd
  fio --name=w --ioengine=nbd --uri="nbd+unix:///v?socket=$2" --rw=randwrite --bs=4k --size=128m \
    --iodepth="$3" --time_based --runtime="$DUR" --ramp_time=2 --output-format=json 2>/dev/null |
    python3 -c "import json,sys; t=sys.stdin.read(); j=json.loads(t[t.index('{'):])['jobs'][0]['write']; print('$1 qd$3 iops %.0f p50 %.1f us' % (j['iops'], j['clat_ns']['percentile']['50.000000']/1000))"
}
run a "$SA" 32 >/dev/null # warm-up, and every block written once
run b "$SB" 32 >/dev/null
for _ in $(seq "$R"); do
  for qd in 1 32; do
    run a "$SA" "$qd"
    run b "$SB" "$qd"
  done
done
