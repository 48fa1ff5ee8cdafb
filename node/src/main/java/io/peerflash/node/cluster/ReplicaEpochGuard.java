package io.peerflash.node.cluster;

import io.peerflash.node.engine.CacheEngine;
import io.peerflash.node.engine.CacheException;
import io.peerflash.node.index.VolumeInfo.Role;
import io.peerflash.replication.control.ControlPlane;
import io.peerflash.replication.data.EpochGuard;
import io.peerflash.replication.data.ReplicaException;
import io.peerflash.util.Time;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.BooleanSupplier;

/**
 * A replica's epoch guard: a copy, release, reset or sync is accepted only from the node this
 * node's map names the volume's owner at the request's epoch ({@link Fencing#acceptCopy}). The
 * replication service waits here while this node's map is behind the sender's; the engine's replica
 * store then decides the check again together with the change ({@link
 * io.peerflash.replication.data.ReplicaSink}).
 */
final class ReplicaEpochGuard implements EpochGuard {
  /** How long a request waits for this node's map to reach the sender's epoch. */
  static final long MAP_CATCH_UP_MS = 2_000;

  private final String nodeId;
  private final ControlPlane controlPlane;
  private final CacheEngine engine;
  private final BooleanSupplier inStep;
  private final Time time;
  private final LongAdder refusals = new LongAdder();

  /**
   * @param inStep whether the node has read the map linearizably and reconciled its volumes
   */
  ReplicaEpochGuard(
      String nodeId,
      ControlPlane controlPlane,
      CacheEngine engine,
      BooleanSupplier inStep,
      Time time) {
    this.nodeId = nodeId;
    this.controlPlane = controlPlane;
    this.engine = engine;
    this.inStep = inStep;
    this.time = time;
  }

  /** Requests refused for a stale epoch or a sender that is not the owner. */
  long refusals() {
    return refusals.sum();
  }

  @Override
  public void checkReplicate(String volume, long epoch, String ownerId) throws ReplicaException {
    long deadline = time.nowMs() + MAP_CATCH_UP_MS;
    while (!tryCheckReplicate(volume, epoch, ownerId)) {
      // This node's map (or its engine) is behind the sender's: wait a little for it.
      if (time.nowMs() > deadline) {
        throw new ReplicaException(
            ReplicaException.Code.UNAVAILABLE,
            "node " + nodeId + " has not caught up with epoch " + epoch + " of " + volume);
      }
      try {
        time.sleepMs(10);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new ReplicaException(ReplicaException.Code.UNAVAILABLE, "interrupted");
      }
    }
  }

  @Override
  public boolean tryCheckReplicate(String volume, long epoch, String ownerId)
      throws ReplicaException {
    try {
      return Fencing.acceptCopy(
          nodeId,
          controlPlane.map().volume(volume).orElse(null),
          inStep.getAsBoolean(),
          () -> heldAsReplica(volume),
          volume,
          epoch,
          ownerId);
    } catch (ReplicaException e) {
      refusals.increment();
      throw e;
    }
  }

  private boolean heldAsReplica(String volume) {
    try {
      return engine.getVolume(volume).role() == Role.REPLICA;
    } catch (CacheException e) {
      return false;
    }
  }
}
