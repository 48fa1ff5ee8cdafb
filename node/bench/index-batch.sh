#!/usr/bin/env bash
# The block index's cost per entry written one per batch vs in batches of 8 and 32 (RocksDB,
# write-ahead log unsynced). Usage: node/bench/index-batch.sh [entries] [rounds]
set -euo pipefail
cd "$(dirname "$0")/../.."
mvn -B -q -ntp -pl node -am test-compile dependency:build-classpath -DskipTests \
  -Dspotless.check.skip=true -Dmdep.outputFile=target/bench.classpath -Dmdep.includeScope=test
exec java -cp "node/target/test-classes:node/target/classes:$(cat node/target/bench.classpath)" \
  io.peerflash.node.bench.IndexBatchBenchmark "$@"
