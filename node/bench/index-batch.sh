#!/usr/bin/env bash
# The block index's cost per entry written one per batch vs in batches of 8 and 32 (RocksDB,
# write-ahead log unsynced). Usage: node/bench/index-batch.sh [entries] [rounds]
exec "$(dirname "$0")/run-class.sh" io.peerflash.node.bench.IndexBatchBenchmark "$@"
