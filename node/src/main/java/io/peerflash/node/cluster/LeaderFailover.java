package io.peerflash.node.cluster;

import com.google.common.util.concurrent.ListenableFuture;
import io.grpc.ManagedChannel;
import io.peerflash.proto.v1.CommandResult;
import io.peerflash.proto.v1.DescribeCopiesRequest;
import io.peerflash.proto.v1.DescribeCopiesResponse;
import io.peerflash.proto.v1.ReplicaServiceGrpc;
import io.peerflash.replication.control.ClusterMap;
import io.peerflash.replication.control.ControlPlane;
import io.peerflash.replication.control.MapCommands;
import io.peerflash.replication.control.Member;
import io.peerflash.replication.control.VolumeRecord;
import io.peerflash.replication.fault.FaultPoints;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.Function;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * On the Raft leader: for each volume whose owner is DOWN, asks the live replica holders how much
 * they hold and commits the most complete one as the new owner (a compare-and-set on the epoch,
 * which fences the old owner). Which volumes and which candidate are {@link FailoverChoice}'s
 * rules; this class asks and commits.
 */
final class LeaderFailover {
  private static final Logger log = LoggerFactory.getLogger(LeaderFailover.class);

  /** How long a candidate has to say how far it holds the volume. */
  private static final long DESCRIBE_TIMEOUT_MS = 1_000;

  private final ControlPlane controlPlane;
  private final Function<Member, ManagedChannel> channels;
  private final FaultPoints faults;
  private final Runnable retryLater;
  private final long commandTimeoutMs;
  private final Set<String> inProgress = ConcurrentHashMap.newKeySet();
  private final LongAdder committed = new LongAdder();

  /**
   * @param retryLater asks for another pass a little later (a failover that failed is retried)
   */
  LeaderFailover(
      ControlPlane controlPlane,
      Function<Member, ManagedChannel> channels,
      FaultPoints faults,
      Runnable retryLater,
      long commandTimeoutMs) {
    this.controlPlane = controlPlane;
    this.channels = channels;
    this.faults = faults;
    this.retryLater = retryLater;
    this.commandTimeoutMs = commandTimeoutMs;
  }

  /** Failovers committed by this node as the leader since it started. */
  long committed() {
    return committed.sum();
  }

  /** One pass over {@code map}; does nothing unless this node is the ready leader. */
  void maybeFailOver(ClusterMap map) {
    if (!controlPlane.isLeaderReady()) {
      return;
    }
    for (VolumeRecord rec : map.volumes().values()) {
      if (FailoverChoice.ownerLost(map, rec) && inProgress.add(rec.name())) {
        try {
          failOver(map, rec);
        } catch (Exception e) {
          log.warn("failover of {} failed; will retry: {}", rec.name(), e.toString());
          retryLater.run();
        } finally {
          inProgress.remove(rec.name());
        }
      }
    }
  }

  private void failOver(ClusterMap map, VolumeRecord rec) throws Exception {
    // Every candidate is asked at once: a dead one (its DOWN mark not applied yet) costs one
    // deadline for all, not one each.
    Map<String, ListenableFuture<DescribeCopiesResponse>> asked = new LinkedHashMap<>();
    DescribeCopiesRequest describe =
        DescribeCopiesRequest.newBuilder().setVolume(rec.name()).build();
    for (String candidate : FailoverChoice.candidates(map, rec)) {
      try {
        asked.put(
            candidate,
            ReplicaServiceGrpc.newFutureStub(channels.apply(map.member(candidate).orElseThrow()))
                .withDeadlineAfter(DESCRIBE_TIMEOUT_MS, TimeUnit.MILLISECONDS)
                .describeCopies(describe));
      } catch (RuntimeException e) {
        log.info("failover of {}: {} could not be asked: {}", rec.name(), candidate, e.toString());
      }
    }
    Map<String, Long> answered = new LinkedHashMap<>();
    for (Map.Entry<String, ListenableFuture<DescribeCopiesResponse>> a : asked.entrySet()) {
      try {
        answered.put(a.getKey(), a.getValue().get().getMaxSeq());
      } catch (ExecutionException e) {
        log.info(
            "failover of {}: {} did not answer: {}",
            rec.name(),
            a.getKey(),
            e.getCause().toString());
      }
    }
    String best = FailoverChoice.best(answered);
    if (best == null) {
      log.error(
          "volume {}: owner {} is down and no live replica holds its data; it stays"
              + " unavailable until {} returns",
          rec.name(),
          rec.owner(),
          rec.owner());
      return;
    }
    long bestSeq = answered.get(best);
    faults.hit(FaultPoints.FAILOVER_BEFORE_CHANGE_OWNER, rec.name());
    // Conditional on the epoch read here, so safe to commit through this node's own Raft server.
    CommandResult r =
        controlPlane
            .submitAsLeader(
                MapCommands.because(
                    MapCommands.changeOwner(rec.name(), best, rec.epoch()),
                    "owner "
                        + rec.owner()
                        + " is DOWN; "
                        + best
                        + " holds the highest sequence ("
                        + bestSeq
                        + ") of the live replicas"))
            .get(commandTimeoutMs, TimeUnit.MILLISECONDS);
    if (r.getOk()) {
      committed.increment();
    }
    log.warn(
        "volume {}: owner {} down; {} takes over at sequence {} ({})",
        rec.name(),
        rec.owner(),
        best,
        bestSeq,
        r.getOk() ? "committed" : r.getMessage());
  }
}
