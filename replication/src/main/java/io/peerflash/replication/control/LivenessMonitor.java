package io.peerflash.replication.control;

import io.peerflash.proto.v1.CommandResult;
import io.peerflash.proto.v1.MapCommand;
import io.peerflash.util.Time;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.function.Function;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Marks members DOWN when their lease has expired by the leader's clock. Runs on every node but
 * acts only while this node is the ready Raft leader.
 *
 * <p>It records, by the injected clock, when each member's Heartbeat (or RegisterMember) was
 * applied on this node, together with the member's heartbeat counter after it. When an UP or
 * DRAINING member has not been heard from for {@code leaseTimeoutMs + clockSkewMarginMs}, it
 * submits {@code MarkDown(node, expected_heartbeats = that counter)}.
 *
 * <p><b>Invariant: a node's own lease always expires before the leader may mark it down.</b> The
 * node's lease ends at {@code send + leaseTimeoutMs - clockSkewMarginMs} of its last committed
 * heartbeat ({@link LeaseKeeper}). The leader applies that heartbeat at some time {@code apply >=
 * send} and marks down no earlier than {@code apply + leaseTimeoutMs + clockSkewMarginMs}. The
 * MarkDown is a compare-and-set on the heartbeat counter, so any heartbeat committed before the
 * MarkDown (even one the leader had not applied when it decided, or one applied by an earlier
 * leader) makes the MarkDown fail. Hence when a MarkDown is applied, the node's newest lease came
 * from a heartbeat the leader had already timed, and it expired at least {@code 2 *
 * clockSkewMarginMs} (of clock rate difference) earlier.
 *
 * <p><b>The leader does not judge itself, unless it holds back its own heartbeats.</b> A leader
 * whose own heartbeats are late (a loaded machine) is evidently alive: it runs this check and
 * commits commands. Its lease already stops it from serving while its heartbeats are late, and no
 * other node takes its volumes while it is not marked DOWN, so waiting for its next heartbeat can
 * never give a volume two owners; marking itself DOWN would only move its volumes away for nothing.
 * The exception is a node that deliberately stops renewing its lease ({@code ownHeartbeatsHeld},
 * e.g. its local flash failed an fsync: {@link ControlPlane#holdHeartbeatsWhile}): its volumes must
 * go to replicas, and if it is the leader no other node would ever mark it DOWN, so it marks itself
 * DOWN as it would any silent member, with the same patience and the same compare-and-set. The rule
 * only leaves MarkDowns out; every MarkDown still submitted is timed as above, so the invariant
 * holds for the leader's own one too. (A leader cut off from the majority cannot commit a MarkDown
 * at all; once the majority elects another leader, that one judges the old leader like any other
 * member.)
 *
 * <p>On becoming leader every live member gets a full fresh period (the leader's records may be
 * older than its election), so an election never causes an instant mass MarkDown; the same happens
 * when the map shows a heartbeat this monitor did not time (e.g. after a snapshot was installed):
 * then it is timed "now", which is later than it really was.
 */
public final class LivenessMonitor implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(LivenessMonitor.class);

  private record Heard(long nanos, long heartbeats) {}

  private final String nodeId;
  private final Time time;
  private final long patienceNanos;
  private final long tickMs;
  private final Supplier<ClusterMap> map;
  private final BooleanSupplier isLeaderReady;
  private final BooleanSupplier ownHeartbeatsHeld;
  private final Function<MapCommand, CompletableFuture<CommandResult>> submitter;
  private final ScheduledExecutorService executor;

  private final Map<String, Heard> lastHeard = new ConcurrentHashMap<>();
  private final Set<String> pending = ConcurrentHashMap.newKeySet();
  private volatile boolean wasLeader;
  // This node's heartbeat count when it last logged that it is late but not marking itself DOWN:
  // one line per silence, not one per tick.
  private volatile long ownLatenessLoggedAt = -1;
  private ScheduledFuture<?> task;

  /**
   * @param ownHeartbeatsHeld true while this node deliberately sends no heartbeats (its lease is to
   *     run out and its volumes to fail over); only then does this monitor, as leader, mark its own
   *     node DOWN
   */
  public LivenessMonitor(
      String nodeId,
      Time time,
      long leaseTimeoutMs,
      long clockSkewMarginMs,
      Supplier<ClusterMap> map,
      BooleanSupplier isLeaderReady,
      BooleanSupplier ownHeartbeatsHeld,
      Function<MapCommand, CompletableFuture<CommandResult>> submitter,
      ScheduledExecutorService executor) {
    this.nodeId = nodeId;
    this.time = time;
    this.patienceNanos = TimeUnit.MILLISECONDS.toNanos(leaseTimeoutMs + clockSkewMarginMs);
    this.tickMs = Math.max(20, Math.min(250, leaseTimeoutMs / 10));
    this.map = map;
    this.isLeaderReady = isLeaderReady;
    this.ownHeartbeatsHeld = ownHeartbeatsHeld;
    this.submitter = submitter;
    this.executor = executor;
  }

  /** Register with {@link ClusterStateMachine#addCommandListener} before the server starts. */
  public void onApplied(long index, MapCommand command, CommandResult result, ClusterMap m) {
    if (!result.getOk()) {
      return;
    }
    String id =
        switch (command.getCommandCase()) {
          case HEARTBEAT -> command.getHeartbeat().getNodeId();
          case REGISTER_MEMBER -> command.getRegisterMember().getId();
          default -> null;
        };
    if (id == null) {
      return;
    }
    m.member(id).ifPresent(member -> heard(id, time.nanoTime(), member.heartbeats()));
  }

  private void heard(String id, long nanos, long heartbeats) {
    lastHeard.merge(
        id,
        new Heard(nanos, heartbeats),
        (old, neu) -> neu.heartbeats() >= old.heartbeats() ? neu : old);
  }

  public void start() {
    synchronized (this) {
      if (task == null) {
        task =
            executor.scheduleWithFixedDelay(
                this::tickSafely, tickMs, tickMs, TimeUnit.MILLISECONDS);
      }
    }
  }

  private void tickSafely() {
    try {
      tick();
    } catch (RuntimeException e) {
      LOG.warn("{}: liveness tick failed", nodeId, e);
    }
  }

  /** One check; public for tests that drive the clock. */
  public void tick() {
    if (!isLeaderReady.getAsBoolean()) {
      wasLeader = false;
      return;
    }
    long now = time.nanoTime();
    ClusterMap current = map.get();
    if (!wasLeader) {
      wasLeader = true;
      // A full fresh period for everyone: no mass MarkDown right after an election.
      for (Member member : current.members().values()) {
        lastHeard.put(member.id(), new Heard(now, member.heartbeats()));
      }
      LOG.info("{}: leader, watching {} members", nodeId, current.members().size());
      return;
    }
    for (Member member : current.members().values()) {
      if (!member.isAlive()) {
        continue;
      }
      Heard h = lastHeard.get(member.id());
      if (h == null || member.heartbeats() > h.heartbeats()) {
        // A heartbeat we did not time (new member, installed snapshot): time it now.
        heard(member.id(), now, member.heartbeats());
        continue;
      }
      if (now - h.nanos() <= patienceNanos) {
        continue;
      }
      long silentMs = TimeUnit.NANOSECONDS.toMillis(now - h.nanos());
      if (member.id().equals(nodeId) && !ownHeartbeatsHeld.getAsBoolean()) {
        // Alive and leading; its lease fences it until its next heartbeat commits.
        if (ownLatenessLoggedAt != h.heartbeats()) {
          ownLatenessLoggedAt = h.heartbeats();
          LOG.warn(
              "{}: own heartbeats late, none applied for {} ms; not marking itself DOWN (it is"
                  + " the leader, alive; its lease keeps it from serving meanwhile)",
              nodeId,
              silentMs);
        }
        continue;
      }
      if (!pending.add(member.id())) {
        continue;
      }
      MapCommand markDown =
          MapCommand.newBuilder()
              .setMarkDown(
                  MapCommand.MarkDown.newBuilder()
                      .setNodeId(member.id())
                      .setReason("no heartbeat applied for " + silentMs + " ms")
                      .setExpectedHeartbeats(h.heartbeats()))
              .build();
      LOG.info("{}: marking {} DOWN, silent for {} ms", nodeId, member.id(), silentMs);
      long submittedNanos = time.nanoTime();
      submitter
          .apply(markDown)
          .whenComplete(
              (r, e) -> {
                pending.remove(member.id());
                long tookMs = TimeUnit.NANOSECONDS.toMillis(time.nanoTime() - submittedNanos);
                if (e != null) {
                  LOG.warn(
                      "{}: MarkDown {} failed after {} ms: {}",
                      nodeId,
                      member.id(),
                      tookMs,
                      e.toString());
                } else if (!r.getOk()) {
                  LOG.info("{}: MarkDown {} not applied: {}", nodeId, member.id(), r.getMessage());
                } else {
                  // Its time is part of every failover's: a slow commit shows here.
                  LOG.info("{}: {} marked DOWN (committed in {} ms)", nodeId, member.id(), tookMs);
                }
              });
    }
  }

  /** Nanos (by the injected clock) when {@code node} was last heard from, if it was. */
  public java.util.OptionalLong lastHeardNanos(String node) {
    Heard h = lastHeard.get(node);
    return h == null ? java.util.OptionalLong.empty() : java.util.OptionalLong.of(h.nanos());
  }

  @Override
  public void close() {
    synchronized (this) {
      if (task != null) {
        task.cancel(false);
      }
    }
  }
}
