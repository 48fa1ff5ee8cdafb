package io.peerflash.node.cluster;

import io.peerflash.node.index.VolumeInfo.Role;
import io.peerflash.replication.cluster.VolumeRecord;

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
