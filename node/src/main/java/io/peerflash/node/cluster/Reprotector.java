package io.peerflash.node.cluster;

import io.peerflash.node.engine.CacheEngine;
import io.peerflash.node.engine.CacheException;
import io.peerflash.node.engine.CopySink;
import io.peerflash.proto.v1.BlockImage;
import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.ClusterError;
import io.peerflash.proto.v1.CommandResult;
import io.peerflash.proto.v1.MapCommand;
import io.peerflash.replication.control.ClusterMap;
import io.peerflash.replication.control.ControlPlane;
import io.peerflash.replication.control.MapCommands;
import io.peerflash.replication.control.VolumeRecord;
import io.peerflash.replication.data.BlockCopy;
import io.peerflash.replication.data.PeerReplicator;
import io.peerflash.replication.fault.FaultPoints;
import io.peerflash.util.Time;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import java.util.stream.Collectors;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Re-protection, on a volume's owner: when fewer in-sync replicas hold its dirty data than the
 * policy asks for, asks the map for new peers (AddReplicas), copies every dirty block to each while
 * new writes also reach it, and then commits it in sync (ReplicaInSync, compare-and-set on the
 * epoch the copy began at: any change in between, such as the peer missing a write and being
 * removed, fails it and the copy starts over).
 *
 * <p>Also clears the replicas of a volume that left write-back once it holds no dirty data.
 */
final class Reprotector {
  private static final Logger log = LoggerFactory.getLogger(Reprotector.class);
  private static final long ADD_RETRY_MS = 2_000;
  private static final long COMMAND_TIMEOUT_MS = 15_000;

  /** Progress of one copy, for status. */
  record Progress(long totalBytes, long ackedBytes) {}

  private final String nodeId;
  private final CacheEngine engine;
  private final ControlPlane controlPlane;
  private final Function<String, PeerReplicator> replicators;
  private final ExecutorService copier;
  private final Time time;
  private final long batchTimeoutMs;
  private final FaultPoints faults;
  // volume + "/" + peer -> progress of the copy running now
  private final Map<String, Progress> running = new ConcurrentHashMap<>();
  // AddReplicas or clear, at once for a new situation, again for the same one after a pause
  private final RequestPacer pacer;
  // volumes with a look scheduled for when their paced request is due again
  private final Set<String> relookPending = ConcurrentHashMap.newKeySet();
  private final ScheduledExecutorService timers;
  // peer -> when it last failed to take a copy: not picked again while the map may still call
  // it UP (until the leader has had the time to mark it DOWN)
  private final Map<String, Long> failedAtMs = new ConcurrentHashMap<>();
  private final long avoidFailedMs;

  Reprotector(
      String nodeId,
      CacheEngine engine,
      ControlPlane controlPlane,
      Function<String, PeerReplicator> replicators,
      ExecutorService copier,
      ScheduledExecutorService timers,
      Time time,
      long batchTimeoutMs,
      long avoidFailedMs,
      FaultPoints faults) {
    this.avoidFailedMs = avoidFailedMs;
    this.nodeId = nodeId;
    this.engine = engine;
    this.controlPlane = controlPlane;
    this.replicators = replicators;
    this.copier = copier;
    this.timers = timers;
    this.pacer = new RequestPacer(time, ADD_RETRY_MS);
    this.time = time;
    this.batchTimeoutMs = batchTimeoutMs;
    this.faults = faults;
  }

  /** Looks at every volume this node owns; starts what is missing. Quick; never blocks. */
  void maybeReprotect(ClusterMap map) {
    List<VolumeRecord> owned = map.volumesOwnedBy(nodeId);
    pacer.retainOnly(owned.stream().map(VolumeRecord::name).collect(Collectors.toSet()));
    for (VolumeRecord rec : owned) {
      pacer.seen(rec.name(), rec);
      if (rec.mode() != CacheMode.WRITE_BACK) {
        maybeClearReplicas(rec);
        continue;
      }
      for (String peer : rec.syncing()) {
        String key = rec.name() + "/" + peer;
        if (running.putIfAbsent(key, new Progress(0, 0)) == null) {
          try {
            copier.execute(() -> copy(rec.name(), peer, key));
          } catch (RejectedExecutionException e) {
            running.remove(key); // the node is closing
          }
        }
      }
      if (map.replicasWanted(rec) > 0 && due(rec, "add replicas")) {
        submitAsync(
            MapCommands.because(
                MapCommands.addReplicas(rec.name(), rec.epoch(), recentlyFailed()),
                "fewer in-sync replicas than the policy wants"),
            "add replicas to " + rec.name());
      }
    }
  }

  /** A peer failed to take a copy (of any volume): avoid it for a while. */
  void noteFailed(String peer) {
    failedAtMs.put(peer, time.nowMs());
  }

  private List<String> recentlyFailed() {
    long now = time.nowMs();
    failedAtMs.values().removeIf(t -> now - t > avoidFailedMs);
    return List.copyOf(failedAtMs.keySet());
  }

  /** Copy progress per "volume/peer", for status. */
  Map<String, Progress> progress() {
    return Map.copyOf(running);
  }

  /**
   * Whether a request about this volume may go now: at once when its record changed since the last
   * one (a policy change, a move, a new epoch), after a pause when it did not (the map could not
   * grant it). A paused request gets a look of its own when it is due, not only at the next map
   * change.
   */
  private boolean due(VolumeRecord rec, String request) {
    if (pacer.due(rec.name(), request, rec)) {
      return true;
    }
    if (relookPending.add(rec.name())) {
      try {
        timers.schedule(
            () -> {
              relookPending.remove(rec.name());
              maybeReprotect(controlPlane.map());
            },
            Math.max(1, pacer.msUntilDue(rec.name())),
            TimeUnit.MILLISECONDS);
      } catch (RejectedExecutionException e) {
        relookPending.remove(rec.name()); // the node is closing
      }
    }
    return false;
  }

  /** A volume out of write-back keeps no replicas once its dirty data is on shared storage. */
  private void maybeClearReplicas(VolumeRecord rec) {
    if (rec.replicaSet().isEmpty() && rec.syncing().isEmpty()) {
      return;
    }
    try {
      if (engine.dirtyBlocks(rec.name()) > 0 || !due(rec, "clear replicas")) {
        return;
      }
    } catch (CacheException e) {
      return;
    }
    submitAsync(
        MapCommands.because(
            MapCommands.setReplicaSet(rec.name(), rec.epoch(), List.of()),
            "the volume left write-back and its dirty data is on shared storage"),
        "clear the replicas of " + rec.name());
  }

  private void submitAsync(MapCommand command, String what) {
    controlPlane
        .submit(command)
        .whenComplete(
            (r, e) -> {
              if (e != null) {
                log.info("could not {}: {}", what, e.toString());
              } else if (!r.getOk() && r.getError() != ClusterError.CLUSTER_ERROR_STALE_EPOCH) {
                log.info("could not {}: {}", what, r.getMessage());
              }
            });
  }

  /** One copy to one syncing peer, retried while the map still lists it as syncing. */
  private void copy(String volume, String peer, String key) {
    try {
      for (int attempt = 1; attempt <= 5; attempt++) {
        VolumeRecord rec = controlPlane.map().volume(volume).orElse(null);
        if (rec == null || !rec.owner().equals(nodeId) || !rec.syncing().contains(peer)) {
          return;
        }
        PeerReplicator r = replicators.apply(peer);
        if (r == null) {
          return;
        }
        long epoch = rec.epoch();
        try {
          long start = time.nowMs();
          long total = (long) engine.dirtyBlocks(volume) * CacheEngine.BLOCK;
          running.put(key, new Progress(total, 0));
          List<CompletableFuture<Void>> resets = new ArrayList<>(1);
          long bytes =
              engine.copyDirtyBlocks(
                  volume,
                  new CopySink() {
                    @Override
                    public void begin(long resetBelowSeq) {
                      resets.add(r.reset(volume, epoch, nodeId, resetBelowSeq));
                    }

                    @Override
                    public CompletableFuture<Void> send(List<BlockCopy> blocks) {
                      return r.replicate(volume, epoch, nodeId, images(blocks));
                    }
                  },
                  batchTimeoutMs,
                  acked -> running.put(key, new Progress(total, acked)));
          resets.get(0).get(batchTimeoutMs, TimeUnit.MILLISECONDS);
          faults.hit(FaultPoints.REPROTECT_BEFORE_IN_SYNC, peer);
          CommandResult result =
              controlPlane
                  .submit(MapCommands.replicaInSync(volume, peer, epoch))
                  .get(COMMAND_TIMEOUT_MS, TimeUnit.MILLISECONDS);
          if (result.getOk()) {
            // Let this node's map catch up before the next look, which would otherwise still see
            // the peer syncing and start a needless second copy.
            long until = time.nowMs() + 2_000;
            while (time.nowMs() < until
                && controlPlane.map().volume(volume).map(v -> v.epoch() <= epoch).orElse(false)) {
              time.sleepMs(10);
            }
            log.info(
                "volume {}: {} is in sync after copying {} bytes in {} ms (epoch {})",
                volume,
                peer,
                bytes,
                time.nowMs() - start,
                epoch + 1);
            return;
          }
          log.info(
              "volume {}: {} copied, but {}; starting over", volume, peer, result.getMessage());
        } catch (CacheException | java.util.concurrent.ExecutionException e) {
          log.warn("volume {}: re-protection to {} failed: {}", volume, peer, e.toString());
          noteFailed(peer);
          removeAfterFailure(volume, peer, epoch);
          return;
        } catch (java.util.concurrent.TimeoutException e) {
          log.warn("volume {}: re-protection to {} timed out; starting over", volume, peer);
        }
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } finally {
      running.remove(key);
      // Another syncing peer or a new AddReplicas may be due now.
      maybeReprotect(controlPlane.map());
    }
  }

  /** A peer that cannot take the copy leaves the syncing list; AddReplicas picks again later. */
  private void removeAfterFailure(String volume, String peer, long epoch)
      throws InterruptedException {
    VolumeRecord rec = controlPlane.map().volume(volume).orElse(null);
    if (rec == null || !rec.syncing().contains(peer)) {
      return;
    }
    try {
      controlPlane
          .submit(
              MapCommands.because(
                  MapCommands.removeReplica(volume, peer, rec.epoch()),
                  "it failed to take the re-protection copy"))
          .get(COMMAND_TIMEOUT_MS, TimeUnit.MILLISECONDS);
    } catch (java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException e) {
      log.info("volume {}: could not remove syncing peer {}: {}", volume, peer, e.toString());
    }
  }

  private static List<BlockImage> images(List<BlockCopy> blocks) {
    List<BlockImage> images = new ArrayList<>(blocks.size());
    for (BlockCopy b : blocks) {
      images.add(PeerReplicationPort.image(b));
    }
    return images;
  }
}
