package io.peerflash.node.cluster;

import io.peerflash.replication.control.ClusterMap;
import io.peerflash.replication.control.VolumeRecord;
import io.peerflash.replication.data.ReplicaException;
import java.util.function.BooleanSupplier;

/**
 * The two fencing rules of a node, as functions of their inputs (the lease, the map, the epochs)
 * rather than of the node's clock and threads, so that the same code decides in production ({@link
 * ClusterNode}) and in the simulation of fencing and failover on simulated time ({@code
 * FencingSimulationTest}).
 */
final class Fencing {
  private Fencing() {}

  /** What the serve guard answers for one volume. */
  enum Serve {
    /** Serve and destage the volume. */
    YES,
    /** Do not serve it now. */
    NO,
    /**
     * Do not serve, and re-read the map linearizably first: a lease began since the last read (the
     * first, or one after a lapse), so this node's copy of the map may miss the entries that gave
     * its volumes away while it held none.
     */
    RESYNC
  }

  /**
   * An owner serves and destages a volume only while (a) its lease is valid, (b) its lease began
   * before the node last read the map linearizably (no lease began since: not the first, nor one
   * after a lapse), and (c) its map still names it the owner.
   *
   * @param inStep the node has read the map linearizably and reconciled its volumes with it
   * @param leaseStarts how many times a lease began ({@code LeaseKeeper.leaseStarts}), now
   * @param leaseStartsAtSync the same count when the node last read the map linearizably
   */
  static Serve serve(
      String nodeId,
      boolean inStep,
      boolean leaseValid,
      long leaseStarts,
      long leaseStartsAtSync,
      ClusterMap map,
      String volume) {
    if (!inStep || !leaseValid) {
      return Serve.NO;
    }
    if (leaseStarts != leaseStartsAtSync) {
      return Serve.RESYNC;
    }
    return map.volume(volume).map(r -> r.owner().equals(nodeId)).orElse(false)
        ? Serve.YES
        : Serve.NO;
  }

  /**
   * A replica's epoch check of a copy (or release) from {@code ownerId} at {@code epoch}: true when
   * it may be applied, false when the answer needs a wait (this node's map or engine is behind the
   * sender's epoch).
   *
   * @param rec the volume as this node's map shows it, null if the map does not have it
   * @param inStep the node has read the map linearizably and reconciled its volumes with it
   * @param heldAsReplica whether the engine holds the volume as a replica (asked last: it costs a
   *     lookup)
   * @throws ReplicaException FAILED_PRECONDITION when the epoch is older than the map's or the
   *     sender is not the owner at it, or this node is not among its replicas
   */
  static boolean acceptCopy(
      String nodeId,
      VolumeRecord rec,
      boolean inStep,
      BooleanSupplier heldAsReplica,
      String volume,
      long epoch,
      String ownerId)
      throws ReplicaException {
    if (rec == null || rec.epoch() < epoch || !inStep || !heldAsReplica.getAsBoolean()) {
      return false;
    }
    if (epoch < rec.epoch()) {
      throw ReplicaException.staleEpoch(volume, epoch, rec.epoch());
    }
    if (!rec.owner().equals(ownerId) || !rec.allReplicas().contains(nodeId)) {
      throw new ReplicaException(
          ReplicaException.Code.FAILED_PRECONDITION,
          "at epoch "
              + epoch
              + " of volume '"
              + volume
              + "' the owner is "
              + rec.owner()
              + " and the replicas are "
              + rec.allReplicas());
    }
    return true;
  }
}
