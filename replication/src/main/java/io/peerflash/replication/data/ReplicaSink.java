package io.peerflash.replication.data;

import java.util.List;

/**
 * Where a replica node keeps the copies owners send it: the node's own flash cache. Contract:
 * {@link #apply} returns only once the copies are as durable as the node's own write-back writes; a
 * copy not newer (by sequence) than the one held for its block is ignored; {@link #release} drops
 * only copies whose sequence is at most the released one.
 *
 * <p>Every change takes the request's {@link EpochCheck} and decides it together with the change:
 * in one critical section with respect to the volume's role changes, drops and resets. A copy
 * checked at epoch E is thus either stored before this node drops the volume, re-adopts it or
 * resets it for a newer epoch (which then removes it), or checked after that (and refused as
 * stale); it is never checked before such a change and stored after it.
 */
public interface ReplicaSink {
  /**
   * The epoch check of one request (its sender, volume and epoch against this node's map; {@link
   * EpochGuard#tryCheckReplicate}), run by the sink inside the decision it guards.
   */
  @FunctionalInterface
  interface EpochCheck {
    /**
     * @return true when the change may be made; false when the answer needs a wait (this node's map
     *     or engine is behind the sender's epoch): nothing is changed then
     * @throws ReplicaException when the sender may not make it (a stale epoch, not the owner)
     */
    boolean passes() throws ReplicaException;
  }

  /**
   * Stores copies if {@code check} passes.
   *
   * @throws ReplicaException what the check threw; UNAVAILABLE when it needs a wait (the caller
   *     waits for this node's map first, {@link EpochGuard#checkReplicate})
   */
  void apply(String volume, List<BlockCopy> blocks, EpochCheck check) throws ReplicaException;

  /**
   * {@link #apply} for a caller that must not wait (a transport thread): returns false, having
   * stored nothing, when storing would mean waiting (for space, a lock, an fsync, this node's map).
   * The default never applies without waiting.
   */
  default boolean tryApply(String volume, List<BlockCopy> blocks, EpochCheck check)
      throws ReplicaException {
    return false;
  }

  void release(String volume, long[] blocks, long[] seqs, EpochCheck check) throws ReplicaException;

  /** Drops every copy held for the volume whose sequence is below {@code belowSeq}. */
  void reset(String volume, long belowSeq, EpochCheck check) throws ReplicaException;

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
