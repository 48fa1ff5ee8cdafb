#!/usr/bin/env bash
# Foreground 4 KiB write IOPS and latency while the destager is idle vs. flat out, against the
# pwrite floor measured in the same run. Usage: node/bench/destage-impact.sh [seconds] [threads] [rounds]
set -euo pipefail
cd "$(dirname "$0")/../.."
# One reactor build: the node's classpath then names the sibling modules' fresh classes, so this
# works on a fresh clone without installing them first.
mvn -B -q -ntp -pl node -am test-compile dependency:build-classpath -DskipTests \
  -Dspotless.check.skip=true -Dmdep.outputFile=target/bench.classpath -Dmdep.includeScope=test
exec java -cp "node/target/test-classes:node/target/classes:$(cat node/target/bench.classpath)" \
  io.peerflash.node.bench.DestageImpactBenchmark "$@"
