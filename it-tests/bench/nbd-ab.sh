#!/usr/bin/env bash
# Before/after of a change on the replicated write path, through NBD: two local 2-node clusters
# with mutual TLS side by side, one from each build, a 128 MiB volume with one replica in each,
# fio's nbd engine writing 4 KiB at random over the owner's Unix socket (TLS=1: over TCP with
# TLS, to the owner's NBD port), QD1 then QD32, alternating between the builds. Prints each run's
# IOPS and p50 (fio's completion latency).
#
#   it-tests/bench/nbd-ab.sh JAR_A JAR_B [ROUNDS]      (default 3; DUR=S sets the run length, 10;
#                                                       REPLICAS=0 for volumes without a replica)
#
# Build each jar from its commit (mvn -B -q -ntp package -DskipTests) and copy
# node/target/peerflash.jar aside. Run it twice with the jars swapped: the cluster in the first
# slot has been faster at QD32 whichever build it ran. Needs fio. Uses ports 18901-18982 on
# loopback and /tmp/nbd-ab-{a,b}. libnbd reads a client's certificates from $HOME/.pki/libnbd
# (root: /etc/pki/libnbd), so with TLS=1 fio runs with a home of its own per cluster,
# /tmp/nbd-ab-{a,b}-home, as user nobody when run as root.
set -u
[ $# -ge 2 ] || { sed -n 2,12p "$0"; exit 2; }
A=$1
B=$2
R=${3:-3}
DUR=${DUR:-10}
TLS=${TLS:-0}
REPLICAS=${REPLICAS:-1}
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
uri() { # id base-port nbd-base-port: the owner's NBD socket, or its TLS port with TLS=1
  local owner
  owner=$(pf "$1" "$2" volume stat v | sed -n 's/.*owner \(n[0-9]*\).*/\1/p')
  if [ "$TLS" = 1 ]; then
    echo "nbds://localhost:$(($3 + ${owner#n} - 1))/v"
  else
    echo "nbd+unix:///v?socket=/tmp/nbd-ab-$1/$owner/nbd.sock"
  fi
}
as_client() { # id command...: as the client of cluster id (its own libnbd home with TLS=1)
  local id=$1 home=/tmp/nbd-ab-$1-home
  shift
  if [ "$TLS" != 1 ]; then
    "$@"
    return
  fi
  if [ ! -d "$home" ]; then
    mkdir -p "$home/.pki/libnbd"
    cp /tmp/nbd-ab-"$id"/certs/admin/*.pem "$home/.pki/libnbd/"
    [ "$(id -u)" = 0 ] && chown -R 65534:65534 "$home"
  fi
  if [ "$(id -u)" = 0 ]; then
    setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$home" "$@"
  else
    env HOME="$home" "$@"
  fi
}
rm -rf /tmp/nbd-ab-a-home /tmp/nbd-ab-b-home
pf a 18901 volume create v --size 128MiB --replicas "$REPLICAS" >/dev/null
pf b 18951 volume create v --size 128MiB --replicas "$REPLICAS" >/dev/null
SA=$(uri a 18901 18931)
SB=$(uri b 18951 18981)
run() { # id uri qd
  as_client "$1" fio --name=w --ioengine=nbd --uri="$2" --rw=randwrite --bs=4k --size=128m \
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
