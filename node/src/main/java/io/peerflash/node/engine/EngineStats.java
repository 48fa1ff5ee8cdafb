package io.peerflash.node.engine;

import java.util.concurrent.atomic.LongAdder;

/** Node-wide counters, exported through status. */
final class EngineStats {
  final LongAdder readHits = new LongAdder();
  final LongAdder readMisses = new LongAdder();
  final LongAdder evictedBlocks = new LongAdder();
  final LongAdder destagedBytes = new LongAdder();
  final LongAdder backpressureWaits = new LongAdder();
  final LongAdder backpressureRejections = new LongAdder();
  final LongAdder checksumFailures = new LongAdder();
}
