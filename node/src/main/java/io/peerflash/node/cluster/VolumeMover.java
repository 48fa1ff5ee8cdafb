package io.peerflash.node.cluster;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.peerflash.node.engine.CacheEngine;
import io.peerflash.node.engine.CacheException;
import io.peerflash.node.wire.Protos;
import io.peerflash.proto.v1.ClusterError;
import io.peerflash.proto.v1.ClusterServiceGrpc;
import io.peerflash.proto.v1.CommandResult;
import io.peerflash.proto.v1.MapCommand;
import io.peerflash.proto.v1.MoveVolumeRequest;
import io.peerflash.proto.v1.MoveVolumeResponse;
import io.peerflash.replication.control.ClusterMap;
import io.peerflash.replication.control.ControlPlane;
import io.peerflash.replication.control.MapCommands;
import io.peerflash.replication.control.Member;
import io.peerflash.replication.control.VolumeRecord;
import io.peerflash.util.NamedThreadFactory;
import io.peerflash.util.Texts;
import io.peerflash.util.Time;
import java.util.Comparator;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Function;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Hands owned volumes to other nodes online, and empties a DRAINING node of the volumes it owns.
 *
 * <p>A move runs on the volume's owner (another node forwards the request there). Invariant: before
 * the ChangeOwner commits, shared storage holds every acknowledged write; after it commits, this
 * node never writes the volume to shared storage again. Steps: destage while writes go on (so
 * little is left); then {@link CacheEngine#prepareHandover} refuses I/O (clients retry), waits out
 * writes in flight, destages the rest and stops destaging after any running batch; then ChangeOwner
 * with the epoch as compare-and-set. If the commit is refused the volume is served again; if its
 * outcome is unknown the volume stays fenced until an epoch bump settles it (see {@link #resolve}),
 * because serving it while the ChangeOwner might still commit would lose writes.
 */
final class VolumeMover implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(VolumeMover.class);
  static final long DEFAULT_TIMEOUT_MS = 120_000;
  private static final long COMMAND_TIMEOUT_MS = 15_000;
  private static final long RESOLVE_MS = 30_000;
  private static final long MAP_CATCH_UP_MS = 10_000;
  private static final long DRAIN_RETRY_MS = 2_000;
  // A forwarded move waits this much longer than the move itself for the owner's answer.
  private static final long FORWARD_SLACK_MS = 30_000;

  private final String nodeId;
  private final CacheEngine engine;
  private final ControlPlane controlPlane;
  private final Function<Member, ManagedChannel> channels;
  private final Time time;
  private final Set<String> moving = ConcurrentHashMap.newKeySet();
  private final AtomicBoolean draining = new AtomicBoolean();
  private final ScheduledExecutorService worker =
      Executors.newSingleThreadScheduledExecutor(new NamedThreadFactory("peerflash-mover", true));
  private volatile boolean closed;

  VolumeMover(
      String nodeId,
      CacheEngine engine,
      ControlPlane controlPlane,
      Function<Member, ManagedChannel> channels,
      Time time) {
    this.nodeId = nodeId;
    this.engine = engine;
    this.controlPlane = controlPlane;
    this.channels = channels;
    this.time = time;
  }

  // ---------------------------------------------------------------------------------------------
  // MoveVolume

  /** The MoveVolume RPC: moves here when this node owns the volume, else forwards to the owner. */
  MoveVolumeResponse move(MoveVolumeRequest req) {
    String volume = req.getVolume();
    String to = req.getTo();
    if (volume.isEmpty() || to.isEmpty()) {
      throw Status.INVALID_ARGUMENT
          .withDescription("a move needs the volume and the node to move it to")
          .asRuntimeException();
    }
    long timeoutMs = req.getTimeoutMs() == 0 ? DEFAULT_TIMEOUT_MS : req.getTimeoutMs();
    ClusterMap map = controlPlane.map();
    VolumeRecord rec = map.volume(volume).orElse(null);
    if (rec == null) {
      throw Status.NOT_FOUND
          .withDescription("volume " + Texts.quote(volume) + " does not exist")
          .asRuntimeException();
    }
    Member target = map.member(to).orElse(null);
    if (target == null) {
      throw Status.NOT_FOUND
          .withDescription(
              "node '"
                  + to
                  + "' is not a member of the cluster (members: "
                  + map.members().keySet()
                  + ")")
          .asRuntimeException();
    }
    if (rec.owner().equals(to)) {
      return MoveVolumeResponse.newBuilder()
          .setPreviousOwner(to)
          .setOwner(to)
          .setEpoch(rec.epoch())
          .setMoved(false)
          .build();
    }
    if (!target.isUp()) {
      throw Status.FAILED_PRECONDITION
          .withDescription(
              "node "
                  + to
                  + " is "
                  + target.state()
                  + ": volume '"
                  + volume
                  + "' can move only to an UP member")
          .asRuntimeException();
    }
    if (!rec.owner().equals(nodeId) && req.getForwarded()) {
      // The sender's map names this node the owner; this node's map may lag a little.
      rec = awaitOwnedHere(volume);
    }
    if (rec.owner().equals(nodeId)) {
      return moveOwned(volume, to, timeoutMs);
    }
    if (req.getForwarded()) {
      throw Status.UNAVAILABLE
          .withDescription("the owner of volume '" + volume + "' is changing; retry")
          .asRuntimeException();
    }
    Member owner = map.member(rec.owner()).orElse(null);
    if (owner == null || !owner.isAlive()) {
      throw Status.UNAVAILABLE
          .withDescription(
              "volume '"
                  + volume
                  + "': its owner "
                  + rec.owner()
                  + " is down; failover in progress")
          .asRuntimeException();
    }
    return ClusterServiceGrpc.newBlockingStub(channels.apply(owner))
        .withDeadlineAfter(timeoutMs + FORWARD_SLACK_MS, TimeUnit.MILLISECONDS)
        .moveVolume(
            req.toBuilder()
                .setForwarded(true)
                .setOnBehalfOf(onBehalfOf())
                .setTimeoutMs(timeoutMs)
                .build());
  }

  /** The client this node forwards a move for, as its certificate names it (audit only). */
  private static String onBehalfOf() {
    io.peerflash.security.Identity who = io.peerflash.security.Identities.current();
    return who == null ? "" : who.describe();
  }

  private VolumeRecord awaitOwnedHere(String volume) {
    long deadline = time.nowMs() + 2_000;
    while (true) {
      VolumeRecord rec = controlPlane.map().volume(volume).orElse(null);
      if (rec == null) {
        throw Status.NOT_FOUND
            .withDescription("volume " + Texts.quote(volume) + " does not exist")
            .asRuntimeException();
      }
      if (rec.owner().equals(nodeId) || time.nowMs() >= deadline) {
        return rec;
      }
      sleep(10);
    }
  }

  /** Whether this node is handing {@code volume} to another node now (its I/O is fenced). */
  boolean moving(String volume) {
    return moving.contains(volume);
  }

  /** Moves a volume this node owns to {@code to}; see the class comment. */
  MoveVolumeResponse moveOwned(String volume, String to, long timeoutMs) {
    if (!moving.add(volume)) {
      throw Status.FAILED_PRECONDITION
          .withDescription("a move of volume '" + volume + "' is already running")
          .asRuntimeException();
    }
    try {
      long start = time.nowMs();
      long deadline = start + timeoutMs;
      String what = "moving volume '" + volume + "' from " + nodeId + " to " + to;
      VolumeRecord rec = controlPlane.map().volume(volume).orElse(null);
      if (rec == null || !rec.owner().equals(nodeId)) {
        throw Status.FAILED_PRECONDITION
            .withDescription(what + ": " + nodeId + " does not own it (any more)")
            .asRuntimeException();
      }
      long destaged;
      try {
        // While writes go on: the fenced part below then has little left to destage.
        destaged = engine.flush(volume, deadline);
      } catch (CacheException e) {
        throw failed(e, what + ": destaging before the handover failed", timeoutMs);
      }
      long fencedAt = time.nowMs();
      try {
        destaged += engine.prepareHandover(volume, deadline);
      } catch (CacheException e) {
        throw failed(e, what + ": handover failed; " + nodeId + " serves it again", timeoutMs);
      }
      VolumeRecord after = commit(volume, to, what);
      long fencedMs = time.nowMs() - fencedAt;
      log.info(
          "{}: destaged {} bytes, I/O paused {} ms, epoch {}; took {} ms",
          what,
          destaged,
          fencedMs,
          after.epoch(),
          time.nowMs() - start);
      dropOnceMapFollows(volume, after.epoch());
      return MoveVolumeResponse.newBuilder()
          .setPreviousOwner(nodeId)
          .setOwner(after.owner())
          .setEpoch(after.epoch())
          .setMoved(true)
          .setDestagedBytes(destaged)
          .setFencedMs(fencedMs)
          .build();
    } finally {
      moving.remove(volume);
    }
  }

  private static StatusRuntimeException failed(CacheException e, String what, long timeoutMs) {
    Status s = Protos.toStatus(e);
    String limit =
        e.reason() == CacheException.Reason.DEADLINE_EXCEEDED
            ? " (move timeout " + timeoutMs + " ms)"
            : "";
    return s.withDescription(what + ": " + e.getMessage() + limit).asRuntimeException();
  }

  /** Commits the new owner; on a definite refusal serves the volume again and throws. */
  private VolumeRecord commit(String volume, String to, String what) {
    VolumeRecord rec = controlPlane.map().volume(volume).orElse(null);
    for (int attempt = 1; ; attempt++) {
      if (rec == null || !rec.owner().equals(nodeId)) {
        // Deleted, or failed over while fenced: nothing of this node's may be served anyway.
        cancel(volume);
        throw Status.ABORTED
            .withDescription(
                what
                    + ": "
                    + (rec == null
                        ? "the volume was deleted meanwhile"
                        : rec.owner() + " took the volume over meanwhile"))
            .asRuntimeException();
      }
      long expected = rec.epoch();
      CommandResult r;
      try {
        r =
            controlPlane
                .submit(MapCommands.changeOwner(volume, to, expected))
                .get(COMMAND_TIMEOUT_MS, TimeUnit.MILLISECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return resolve(volume, to, expected, what, e);
      } catch (ExecutionException | TimeoutException e) {
        return resolve(volume, to, expected, what, e);
      }
      if (r.getOk()) {
        return VolumeRecord.fromProto(r.getVolume());
      }
      if (r.getError() == ClusterError.CLUSTER_ERROR_STALE_EPOCH && r.hasVolume() && attempt < 10) {
        // A replica change bumped the epoch: still the owner, still fenced and destaged.
        rec = VolumeRecord.fromProto(r.getVolume());
        continue;
      }
      cancel(volume);
      Status status =
          switch (r.getError()) {
            case CLUSTER_ERROR_UNKNOWN_MEMBER, CLUSTER_ERROR_VOLUME_NOT_FOUND -> Status.NOT_FOUND;
            case CLUSTER_ERROR_STALE_EPOCH -> Status.ABORTED;
            default -> Status.FAILED_PRECONDITION;
          };
      throw status
          .withDescription(what + ": the cluster refused the new owner: " + r.getMessage())
          .asRuntimeException();
    }
  }

  private enum Outcome {
    MOVED,
    NOT_MOVED,
    UNKNOWN
  }

  /**
   * The ChangeOwner at {@code expected} was sent but not answered: it may still commit. Either the
   * map shows it applied, or an epoch bump by this node (SetReplicaSet with the same replicas)
   * makes sure it never can; only then is the volume served again.
   */
  private VolumeRecord resolve(
      String volume, String to, long expected, String what, Exception cause) {
    log.warn("{}: the ChangeOwner was not answered ({}); settling its outcome", what, cause);
    long until = time.nowMs() + RESOLVE_MS;
    while (true) {
      VolumeRecord[] moved = new VolumeRecord[1];
      Outcome o = settle(volume, to, expected, moved);
      if (o == Outcome.MOVED) {
        return moved[0];
      }
      if (o == Outcome.NOT_MOVED) {
        cancel(volume);
        throw Status.UNAVAILABLE
            .withDescription(
                what
                    + ": the cluster did not confirm the new owner within "
                    + COMMAND_TIMEOUT_MS
                    + " ms ("
                    + cause
                    + "); the move was called off and "
                    + nodeId
                    + " serves the volume again")
            .asRuntimeException();
      }
      if (time.nowMs() >= until || closed) {
        settleLater(volume, to, expected);
        throw Status.UNAVAILABLE
            .withDescription(
                what
                    + ": the cluster has not answered for "
                    + (COMMAND_TIMEOUT_MS + RESOLVE_MS)
                    + " ms; the volume stays fenced on "
                    + nodeId
                    + " until the outcome is known")
            .asRuntimeException();
      }
      sleep(500);
    }
  }

  private Outcome settle(String volume, String to, long expected, VolumeRecord[] moved) {
    try {
      ClusterMap map = controlPlane.readLinearizable().get(5, TimeUnit.SECONDS);
      VolumeRecord rec = map.volume(volume).orElse(null);
      if (rec == null) {
        return Outcome.NOT_MOVED;
      }
      if (rec.owner().equals(to) && rec.epoch() > expected) {
        moved[0] = rec;
        return Outcome.MOVED;
      }
      if (!rec.owner().equals(nodeId) || rec.epoch() > expected) {
        // The epoch moved on without this ChangeOwner: it can never apply now.
        return Outcome.NOT_MOVED;
      }
      CommandResult r =
          controlPlane
              .submit(
                  MapCommand.newBuilder()
                      .setSetReplicaSet(
                          MapCommand.SetReplicaSet.newBuilder()
                              .setVolume(volume)
                              .addAllReplicas(rec.replicaSet())
                              .setExpectedEpoch(expected))
                      .build())
              .get(COMMAND_TIMEOUT_MS, TimeUnit.MILLISECONDS);
      return r.getOk() ? Outcome.NOT_MOVED : Outcome.UNKNOWN; // stale: read again
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return Outcome.UNKNOWN;
    } catch (ExecutionException | TimeoutException e) {
      return Outcome.UNKNOWN;
    }
  }

  private void settleLater(String volume, String to, long expected) {
    try {
      worker.schedule(
          () -> {
            VolumeRecord[] moved = new VolumeRecord[1];
            Outcome o = settle(volume, to, expected, moved);
            if (o == Outcome.MOVED) {
              dropOnceMapFollows(volume, moved[0].epoch());
            } else if (o == Outcome.NOT_MOVED) {
              cancel(volume);
              log.warn("volume {}: the move to {} did not happen; served again", volume, to);
            } else if (!closed) {
              settleLater(volume, to, expected);
            }
          },
          DRAIN_RETRY_MS,
          TimeUnit.MILLISECONDS);
    } catch (RejectedExecutionException e) {
      // Closing: the volume stays fenced; after a restart the map decides.
    }
  }

  private void cancel(String volume) {
    try {
      engine.cancelHandover(volume);
    } catch (CacheException e) {
      // dropped meanwhile: nothing to serve
    }
  }

  /**
   * Drops the local copy once this node's map shows the new epoch. Not sooner: with the map still
   * naming this node the owner, the reconcile would adopt an empty volume again and serve it.
   */
  private void dropOnceMapFollows(String volume, long epoch) {
    long deadline = time.nowMs() + MAP_CATCH_UP_MS;
    while (time.nowMs() < deadline) {
      Optional<VolumeRecord> rec = controlPlane.map().volume(volume);
      if (rec.isEmpty() || rec.get().epoch() >= epoch) {
        if (rec.isPresent() && rec.get().owner().equals(nodeId)) {
          return; // moved back here already
        }
        try {
          engine.dropLocalVolume(volume);
        } catch (CacheException e) {
          // the reconcile dropped it first
        }
        return;
      }
      sleep(10);
    }
    // Still fenced; the reconcile drops it once the map arrives.
    log.warn("volume {}: this node's map has not reached epoch {} yet", volume, epoch);
  }

  // ---------------------------------------------------------------------------------------------
  // Draining

  /**
   * Called after each reconcile: when this node is DRAINING and owns volumes, moves them away one
   * at a time (in the background; at most one round runs).
   */
  void maybeDrain(ClusterMap map) {
    Member self = map.member(nodeId).orElse(null);
    if (closed
        || self == null
        || self.state() != Member.State.DRAINING
        || map.volumesOwnedBy(nodeId).isEmpty()) {
      return;
    }
    if (draining.compareAndSet(false, true)) {
      try {
        worker.execute(this::drain);
      } catch (RejectedExecutionException e) {
        draining.set(false);
      }
    }
  }

  private void drain() {
    try {
      while (!closed) {
        ClusterMap map = controlPlane.map();
        Member self = map.member(nodeId).orElse(null);
        if (self == null || self.state() != Member.State.DRAINING) {
          return;
        }
        VolumeRecord rec = map.volumesOwnedBy(nodeId).stream().findFirst().orElse(null);
        if (rec == null) {
          log.info("node {} is draining and owns no volume any more", nodeId);
          return;
        }
        String target = drainTarget(map, rec);
        if (target == null) {
          log.warn("node {} is draining, but no UP member can take volume {}", nodeId, rec.name());
          time.sleepMs(DRAIN_RETRY_MS);
          continue;
        }
        try {
          moveOwned(rec.name(), target, DEFAULT_TIMEOUT_MS);
          log.info("node {} is draining: volume {} moved to {}", nodeId, rec.name(), target);
        } catch (StatusRuntimeException e) {
          log.warn(
              "node {} is draining: moving volume {} to {} failed; retrying: {}",
              nodeId,
              rec.name(),
              target,
              e.getStatus());
          time.sleepMs(DRAIN_RETRY_MS);
        }
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } finally {
      draining.set(false);
    }
  }

  /** An UP in-sync replica (least loaded first), else the least-loaded UP member. */
  static String drainTarget(ClusterMap map, VolumeRecord rec) {
    Comparator<Member> byLoad =
        Comparator.<Member>comparingInt(m -> map.load(m.id())).thenComparing(Member::id);
    Optional<Member> replica =
        rec.replicaSet().stream()
            .map(map::member)
            .flatMap(Optional::stream)
            .filter(Member::isUp)
            .min(byLoad);
    if (replica.isPresent()) {
      return replica.get().id();
    }
    return map.members().values().stream()
        .filter(Member::isUp)
        .filter(m -> !m.id().equals(rec.owner()))
        .min(byLoad)
        .map(Member::id)
        .orElse(null);
  }

  private void sleep(long ms) {
    try {
      time.sleepMs(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  @Override
  public void close() {
    closed = true;
    worker.shutdownNow();
  }
}
