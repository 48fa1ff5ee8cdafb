package io.peerflash.replication.data;

/**
 * A replica's check, against its own copy of the cluster map, that a sender may replicate: it is
 * the volume's owner at the given epoch and this node is in the replica set. Fencing a stale owner
 * rests on this: once the map has moved to a newer epoch, no replica acks the old owner.
 */
public interface EpochGuard {
  /**
   * @throws ReplicaException FAILED_PRECONDITION when the epoch is stale or the sender is not the
   *     owner at it, NOT_FOUND for an unknown volume
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
