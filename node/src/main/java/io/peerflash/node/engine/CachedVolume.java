package io.peerflash.node.engine;

import io.peerflash.node.index.BlockEntry;
import io.peerflash.node.index.VolumeInfo;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * The in-memory state of one volume: its block map (mirroring the durable index) and its health.
 */
final class CachedVolume {
  volatile VolumeInfo info;
  final ConcurrentHashMap<Long, BlockEntry> blocks = new ConcurrentHashMap<>();
  final BlockLocks locks = new BlockLocks();
  final DirtyBlockIndex dirty = new DirtyBlockIndex();
  final AtomicLong nextSeq;

  /** Slots holding this volume's dirty data ({@link DirtyShare}). */
  final AtomicLong dirtySlots = new AtomicLong();

  /** This volume's writers queued for free slots now ({@link DirtyShare}). */
  final java.util.concurrent.atomic.AtomicInteger waitingForSpace =
      new java.util.concurrent.atomic.AtomicInteger();

  /** I/O takes it shared; delete and policy barriers take it exclusively. */
  final ReentrantReadWriteLock gate = new ReentrantReadWriteLock();

  volatile boolean deleted;

  /**
   * Where a handover of the volume to another node stands ({@link CacheEngine#prepareHandover}).
   */
  enum Handover {
    /** Served as usual. */
    NONE,
    /** I/O refused; the destager still writes the remaining dirty blocks. */
    DRAINING,
    /** I/O refused and nothing destaged: the next owner may already write to shared storage. */
    FENCED
  }

  volatile Handover handover = Handover.NONE;

  /** Dirty blocks whose checksum failed: kept (never served, never destaged) and reported. */
  final Set<Long> corruptBlocks = ConcurrentHashMap.newKeySet();

  /** How its destage fares: failures, backoff, since when storage fails. */
  final DestageHealth destage = new DestageHealth();

  /**
   * Blocks with a write whose copies are still on their way to the replicas, and how many such
   * writes each has. A write is visible and dirty before its replicas ack, but the destager leaves
   * its blocks (every version of them) alone until then: a release must never overtake the copy it
   * would release. A copy resent at a newer epoch, or an older version's copy, could otherwise
   * reach a replica after a release and linger there, older than what shared storage holds.
   */
  private final ConcurrentHashMap<Long, Integer> copyingBlocks = new ConcurrentHashMap<>();

  void copiesSent(long firstBlock, int count) {
    for (int i = 0; i < count; i++) {
      copyingBlocks.merge(firstBlock + i, 1, Integer::sum);
    }
  }

  void copiesDone(long firstBlock, int count) {
    for (int i = 0; i < count; i++) {
      copyingBlocks.computeIfPresent(firstBlock + i, (b, n) -> n == 1 ? null : n - 1);
    }
  }

  boolean copiesInFlight(long block) {
    return !copyingBlocks.isEmpty() && copyingBlocks.containsKey(block);
  }

  /** Highest sequence a Flush waits for; the destager works on the volume until it is clean. */
  final AtomicLong flushTargetSeq = new AtomicLong(-1);

  final LongAdder destagedBytes = new LongAdder();

  // Sequential-read detection for the promotion cutoff.
  private long lastReadEnd = -1;
  private long sequentialRunBytes;

  CachedVolume(VolumeInfo info, long nextSeq) {
    this.info = info;
    this.nextSeq = new AtomicLong(nextSeq);
  }

  long id() {
    return info.id();
  }

  String name() {
    return info.name();
  }

  /** Records a read and returns the length of the sequential run it extends. */
  synchronized long noteRead(long offset, long length) {
    sequentialRunBytes = offset == lastReadEnd ? sequentialRunBytes + length : length;
    lastReadEnd = offset + length;
    return sequentialRunBytes;
  }
}
