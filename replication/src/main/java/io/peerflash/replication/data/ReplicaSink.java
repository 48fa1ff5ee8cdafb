package io.peerflash.replication.data;

import java.util.List;

/**
 * Where a replica node keeps the copies owners send it: the node's own flash cache. Contract:
 * {@link #apply} returns only once the copies are as durable as the node's own write-back writes; a
 * copy not newer (by sequence) than the one held for its block is ignored; {@link #release} drops
 * only copies whose sequence is at most the released one.
 */
public interface ReplicaSink {
  void apply(String volume, List<BlockCopy> blocks) throws ReplicaException;

  /**
   * {@link #apply} for a caller that must not wait (a transport thread): returns false, having
   * stored nothing, when storing would mean waiting (for space, a lock, an fsync). The default
   * never applies without waiting.
   */
  default boolean tryApply(String volume, List<BlockCopy> blocks) throws ReplicaException {
    return false;
  }

  void release(String volume, long[] blocks, long[] seqs) throws ReplicaException;

  /** Drops every copy held for the volume whose sequence is below {@code belowSeq}. */
  void reset(String volume, long belowSeq) throws ReplicaException;

  /**
   * Returns once every copy of the volume applied before this call is on non-volatile storage (also
   * where {@link #apply} does not sync); concurrent calls may share one sync.
   *
   * @throws ReplicaException NOT_FOUND for a volume not held, FAILED_PRECONDITION for one not held
   *     as a replica, UNAVAILABLE when the sync failed
   */
  void sync(String volume) throws ReplicaException;

  /** The highest sequence held for the volume (0 when none) and the number of dirty blocks. */
  CopyState describe(String volume) throws ReplicaException;

  record CopyState(long maxSeq, long dirtyBlocks) {}
}
