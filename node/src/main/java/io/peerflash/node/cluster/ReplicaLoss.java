package io.peerflash.node.cluster;

import io.peerflash.node.engine.CacheException;
import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.index.VolumeInfo;
import io.peerflash.proto.v1.CommandResult;
import io.peerflash.proto.v1.OnPeerLoss;
import io.peerflash.replication.control.ControlPlane;
import io.peerflash.replication.control.MapCommands;
import io.peerflash.replication.control.VolumeRecord;
import io.peerflash.util.NamedThreadFactory;
import io.peerflash.util.Time;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What an owner does about the replicas it loses, for its writes ({@link PeerReplicationPort}):
 * takes a replica that failed to take a copy out of the volume's replicas before the write is
 * acknowledged without it ({@link #evict}), and, under on-peer-loss {@code block}, holds a write
 * while fewer replicas are in sync than the policy asks for ({@link #admit}).
 */
final class ReplicaLoss implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(ReplicaLoss.class);

  private final String nodeId;
  private final ControlPlane controlPlane;
  private final Consumer<String> failedPeers;
  private final Time time;
  private final long leaseTimeoutMs;
  private final long peerLossWaitMs;
  // Each eviction waits for a map commit (bounded by the lease); a write that lost several
  // replicas evicts them at once.
  private final ExecutorService evictions =
      Executors.newCachedThreadPool(new NamedThreadFactory("peerflash-evict", true));

  /**
   * @param failedPeers told of each peer evicted for a copy it did not take (re-protection avoids
   *     it for a while)
   * @param leaseTimeoutMs how long an eviction keeps trying: past the lease the node serves nothing
   * @param peerLossWaitMs how long a write waits for re-protection under on-peer-loss block
   */
  ReplicaLoss(
      String nodeId,
      ControlPlane controlPlane,
      Consumer<String> failedPeers,
      Time time,
      long leaseTimeoutMs,
      long peerLossWaitMs) {
    this.nodeId = nodeId;
    this.controlPlane = controlPlane;
    this.failedPeers = failedPeers;
    this.time = time;
    this.leaseTimeoutMs = leaseTimeoutMs;
    this.peerLossWaitMs = peerLossWaitMs;
  }

  /**
   * On-peer-loss {@code block}: a write waits (bounded) while fewer in-sync replicas hold copies
   * than the policy asks for, then fails with UNAVAILABLE naming the wait.
   *
   * @param rec the volume as the map has it, null when it has none
   */
  static boolean admits(VolumeRecord rec) {
    return rec == null
        || rec.onPeerLoss() != OnPeerLoss.ON_PEER_LOSS_BLOCK
        || !rec.underReplicated();
  }

  /** Returns once the map's record of the volume {@link #admits} a write; see there. */
  void admit(VolumeInfo v) throws CacheException {
    long deadline = time.nowMs() + peerLossWaitMs;
    while (true) {
      VolumeRecord rec = controlPlane.map().volume(v.name()).orElse(null);
      if (admits(rec)) {
        return;
      }
      if (time.nowMs() >= deadline) {
        throw new CacheException(
            Reason.UNAVAILABLE,
            "volume '"
                + v.name()
                + "' has "
                + rec.replicaSet().size()
                + " of "
                + rec.requestedReplicas()
                + " replicas in sync and its on-peer-loss policy is block; waited "
                + peerLossWaitMs
                + " ms (peer-loss-wait-ms) for re-protection");
      }
      sleep(10);
    }
  }

  /**
   * Takes a replica that failed to take a copy (in sync or being filled) out of the volume's
   * replicas, so it can never win a failover without the write about to be acknowledged without it.
   * Retried across epoch changes; bounded by the lease.
   *
   * @return true once the map no longer names {@code peerId} a replica at an epoch after {@code
   *     epoch}; false when this node could not make it so (no longer the owner, no commit in time)
   */
  CompletableFuture<Boolean> evict(String volume, String peerId, long epoch) {
    return time.completeOnTimeout(
        CompletableFuture.supplyAsync(() -> evictBlocking(volume, peerId, epoch), evictions),
        false,
        leaseTimeoutMs);
  }

  private boolean evictBlocking(String volume, String peerId, long epoch) {
    long deadline = time.nowMs() + leaseTimeoutMs;
    VolumeRecord rec = controlPlane.map().volume(volume).orElse(null);
    while (rec != null && rec.owner().equals(nodeId) && time.nowMs() < deadline) {
      if (!rec.allReplicas().contains(peerId)) {
        return rec.epoch() > epoch;
      }
      log.warn("volume {}: replica {} did not take a copy; removing it", volume, peerId);
      failedPeers.accept(peerId);
      CommandResult r;
      try {
        r =
            controlPlane
                .submit(
                    MapCommands.because(
                        MapCommands.removeReplica(volume, peerId, rec.epoch()),
                        "it did not take a copy of a write within the ack timeout"))
                .get(Math.max(1, deadline - time.nowMs()), TimeUnit.MILLISECONDS);
      } catch (Exception e) {
        return false;
      }
      if (r.getOk()) {
        return true; // committed; this node's copy of the map follows shortly
      }
      // Compare-and-set lost to another change: try again at the epoch the map has now.
      rec = r.hasVolume() ? VolumeRecord.fromProto(r.getVolume()) : null;
    }
    return false;
  }

  /** A pause in a wait loop, on the node's clock (whose deadlines the loop reads). */
  private void sleep(long ms) {
    try {
      time.sleepMs(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  @Override
  public void close() {
    evictions.shutdownNow();
  }
}
