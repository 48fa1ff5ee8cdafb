package io.peerflash.node.cluster;

import io.peerflash.node.index.VolumeInfo.Role;
import io.peerflash.replication.control.VolumeRecord;

/**
 * What a node does with one volume to follow the map, as a function of the map's record and the
 * role its engine holds the volume in, so that {@link ClusterNode} and the simulation of fencing
 * and failover ({@code FencingSimulationTest}) follow the same rule.
 */
final class Reconciliation {
  private Reconciliation() {}

  enum Step {
    /** Nothing held, nothing wanted. */
    NONE,
    /** Hold the volume as its owner. */
    ADOPT_OWNER,
    /** Hold the volume as a replica. */
    ADOPT_REPLICA,
    /**
     * Drop what is held, then hold the volume as a replica: this node owned it, lost it in a
     * failover and is now re-added as a peer of the new owner. Its copies carry sequence numbers of
     * its own ownership, possibly higher than the new owner's for writes that were never
     * acknowledged; kept, they would hide the new owner's later (acknowledged) writes of the same
     * blocks, which a replica skips as not newer, and the reset before re-protection only drops
     * copies below the new owner's next sequence.
     */
    DROP_THEN_ADOPT_REPLICA,
    /** Drop what is held: the owner and replicas of the current epoch hold every acked write. */
    DROP
  }

  /**
   * Bits of a write sequence below its epoch band: an owner that holds a volume at map epoch E
   * issues sequences of at least {@link #sequenceFloor}(E), and 2^40 sequences (4 PiB of 4 KiB
   * blocks) fit in one band; epochs up to 2^23 get a band of their own.
   */
  static final int SEQUENCE_BAND_BITS = 40;

  private static final long LAST_BAND = (1L << (Long.SIZE - 1 - SEQUENCE_BAND_BITS)) - 1;

  /**
   * The lowest sequence an owner of a volume at map {@code epoch} may give a write: the start of
   * the epoch's band, above every band of an earlier epoch. Sequences are counted by each owner on
   * its own, and a replica keeps, per block, the copy with the highest sequence; so the writes of a
   * new owner must sort after every copy the replicas may hold from an earlier ownership. Those
   * include writes the old owner never acknowledged and the new owner never received: copies sent
   * to a replica that took them before it applied the failover, or held by a more complete replica
   * that did not answer the leader's question in time. Counting on from the new owner's own highest
   * sequence would give its writes numbers such a copy already has, and the replica would skip them
   * as not newer while acknowledging them. Every owner applies the floor each time it follows the
   * map (so after a restart too) before it serves at that epoch; epoch 1 has floor 0, so a volume
   * that never changed hands counts from 1 as before.
   */
  static long sequenceFloor(long epoch) {
    long band = Math.min(Math.max(0, epoch - 1), LAST_BAND);
    return band << SEQUENCE_BAND_BITS;
  }

  /**
   * @param held the role the engine holds the volume in, null when it does not hold it
   */
  static Step step(String nodeId, VolumeRecord rec, Role held) {
    if (rec.owner().equals(nodeId)) {
      return Step.ADOPT_OWNER;
    }
    if (rec.allReplicas().contains(nodeId)) {
      return held == Role.OWNER ? Step.DROP_THEN_ADOPT_REPLICA : Step.ADOPT_REPLICA;
    }
    return held != null ? Step.DROP : Step.NONE;
  }
}
