#!/usr/bin/env bash
# Foreground 4 KiB write IOPS and latency while the destager is idle vs. flat out, against the
# pwrite floor measured in the same run. Usage: node/bench/destage-impact.sh [seconds] [threads] [rounds]
exec "$(dirname "$0")/run-class.sh" io.peerflash.node.bench.DestageImpactBenchmark "$@"
