#!/usr/bin/env bash
# Foreground 4 KiB write IOPS and latency while the destager is idle vs. flat out, against the
# pwrite floor measured in the same run. Usage: node/bench/destage-impact.sh [seconds] [threads]
set -euo pipefail
cd "$(dirname "$0")/../.."
mvn -B -q -ntp -pl node -am test-compile -DskipTests -Dspotless.check.skip=true
mvn -B -q -ntp -pl node dependency:build-classpath -Dmdep.outputFile=target/bench.classpath >/dev/null
exec java -cp "node/target/test-classes:node/target/classes:$(cat node/target/bench.classpath)" \
  io.peerflash.node.bench.DestageImpactBenchmark "$@"
