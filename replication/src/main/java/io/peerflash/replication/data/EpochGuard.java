package io.peerflash.replication.data;

/**
 * A replica's check, against its own copy of the cluster map, that a sender may replicate: it is
 * the volume's owner at the given epoch and this node is in the replica set. Fencing a stale owner
 * rests on this: once the map has moved to a newer epoch, no replica acks the old owner.
 */
public interface EpochGuard {
  /**
   * Waits (bounded) while this node's map is behind the sender: a newer epoch than it knows, or a
   * volume it does not know yet (a sender's map may name a volume this node has not applied).
   *
   * @throws ReplicaException FAILED_PRECONDITION when the epoch is stale, the sender is not the
   *     owner at it or this node is not among the replicas; UNAVAILABLE when the map did not catch
   *     up in time
   */
  void checkReplicate(String volume, long epoch, String ownerId) throws ReplicaException;

  /**
   * {@link #checkReplicate} for a caller that must not wait: returns false when the answer needs a
   * wait (this node's map is behind the sender's epoch), true when the sender may replicate.
   */
  default boolean tryCheckReplicate(String volume, long epoch, String ownerId)
      throws ReplicaException {
    checkReplicate(volume, epoch, ownerId);
    return true;
  }
}
