package io.peerflash.replication.control;

import static io.peerflash.replication.control.ClusterMapTest.applyOk;
import static io.peerflash.replication.control.ClusterMapTest.heartbeat;
import static io.peerflash.replication.control.ClusterMapTest.register;
import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.proto.v1.ClusterError;
import io.peerflash.proto.v1.CommandResult;
import io.peerflash.proto.v1.MapCommand;
import io.peerflash.util.ManualTime;
import io.peerflash.util.NamedThreadFactory;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** LeaseKeeper and LivenessMonitor against a manual clock: no sleeping, no Raft. */
class LeaseAndLivenessUnitTest {
  static final long LEASE = 3000;
  static final long MARGIN = 500;

  final ScheduledExecutorService unused =
      Executors.newSingleThreadScheduledExecutor(
          new NamedThreadFactory("unit-test-scheduler", true));

  @AfterEach
  void stop() {
    unused.shutdownNow();
  }

  static final CommandResult OK = CommandResult.newBuilder().setOk(true).build();

  @Test
  void theLeaseCountsFromTheSendOfTheHeartbeat() {
    ManualTime time = new ManualTime();
    // The heartbeat takes 400 ms to commit.
    LeaseKeeper keeper =
        new LeaseKeeper(
            "n1",
            time,
            LEASE,
            MARGIN,
            () -> {
              time.advanceMs(400);
              return OK;
            },
            unused);
    assertThat(keeper.leaseValid()).isFalse();
    long sent = time.nanoTime();
    keeper.heartbeatOnce();
    assertThat(keeper.leaseValid()).isTrue();
    assertThat(keeper.lastSuccessfulHeartbeatSentNanos()).isEqualTo(sent);
    assertThat(keeper.leaseValidUntilNanos() - sent)
        .isEqualTo(TimeUnit.MILLISECONDS.toNanos(LEASE - MARGIN));
    time.advanceMs(LEASE - MARGIN - 400 - 1);
    assertThat(keeper.leaseValid()).isTrue();
    time.advanceMs(1);
    assertThat(keeper.leaseValid()).isFalse();
  }

  /**
   * A node re-reads the map whenever a lease begins: the first one as well as one after a lapse. A
   * node that read the map before its first heartbeat committed may have been marked DOWN and lost
   * its volumes meanwhile (FencingSimulationTest seed 217820220358899067).
   */
  @Test
  void theFirstLeaseAndEveryLeaseAfterALapseCountAsStartsButRenewalsDoNot() {
    ManualTime time = new ManualTime();
    LeaseKeeper keeper = new LeaseKeeper("n1", time, LEASE, MARGIN, () -> OK, unused);
    assertThat(keeper.leaseStarts()).isZero();
    keeper.onHeartbeatCommitted(time.nanoTime());
    assertThat(keeper.leaseStarts()).as("the first lease").isEqualTo(1);
    time.advanceMs(LEASE / 3);
    keeper.onHeartbeatCommitted(time.nanoTime());
    time.advanceMs(LEASE / 3);
    keeper.onHeartbeatCommitted(time.nanoTime());
    assertThat(keeper.leaseStarts()).as("renewed while valid").isEqualTo(1);
    // Sent at the last instant of the lease: still a renewal.
    long sentInTime = keeper.leaseValidUntilNanos() - 1;
    time.advanceMs(LEASE - MARGIN);
    keeper.onHeartbeatCommitted(sentInTime);
    assertThat(keeper.leaseStarts()).isEqualTo(1);
    time.advanceMs(LEASE);
    assertThat(keeper.leaseValid()).isFalse();
    keeper.onHeartbeatCommitted(time.nanoTime());
    assertThat(keeper.leaseStarts()).as("a lease after a lapse").isEqualTo(2);
    assertThat(keeper.leaseValid()).isTrue();
  }

  @Test
  void awaitLeaseReturnsWhenAHeartbeatCommitsAndGivesUpAtItsTimeoutOnTheNodesClock()
      throws Exception {
    ManualTime time = new ManualTime();
    LeaseKeeper keeper = new LeaseKeeper("n1", time, LEASE, MARGIN, () -> OK, unused);
    CompletableFuture<Boolean> noHeartbeat = awaitLeaseAsync(keeper, 20);
    awaitTimers(time, 1);
    time.advanceMs(19);
    assertThat(noHeartbeat).as("the deadline has not passed on the node's clock").isNotDone();
    time.advanceMs(1);
    assertThat(noHeartbeat.get(10, TimeUnit.SECONDS)).as("no heartbeat yet").isFalse();

    CompletableFuture<Boolean> waiting = awaitLeaseAsync(keeper, 60_000);
    awaitTimers(time, 1);
    keeper.onHeartbeatCommitted(time.nanoTime());
    assertThat(waiting.get(10, TimeUnit.SECONDS)).isTrue();
    assertThat(time.pendingTimers()).as("the deadline is cancelled").isZero();

    time.advanceMs(LEASE);
    CompletableFuture<Boolean> lapsed = awaitLeaseAsync(keeper, 20);
    awaitTimers(time, 1);
    time.advanceMs(20);
    assertThat(lapsed.get(10, TimeUnit.SECONDS)).as("the lease ran out").isFalse();
  }

  private static CompletableFuture<Boolean> awaitLeaseAsync(LeaseKeeper keeper, long timeoutMs) {
    return CompletableFuture.supplyAsync(
        () -> {
          try {
            return keeper.awaitLease(timeoutMs);
          } catch (InterruptedException e) {
            throw new IllegalStateException(e);
          }
        });
  }

  /** Waits (on the event, not a sleep) until the waiter has scheduled its deadline. */
  private static void awaitTimers(ManualTime time, int n) throws InterruptedException {
    long giveUp = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (time.pendingTimers() < n) {
      if (System.nanoTime() - giveUp > 0) {
        throw new AssertionError("no deadline scheduled");
      }
      Thread.onSpinWait();
    }
  }

  @Test
  void failedOrRejectedHeartbeatsDoNotExtendTheLease() {
    ManualTime time = new ManualTime();
    AtomicReference<Object> next = new AtomicReference<>(OK);
    LeaseKeeper keeper =
        new LeaseKeeper(
            "n1",
            time,
            LEASE,
            MARGIN,
            () -> {
              Object o = next.get();
              if (o instanceof Exception e) {
                throw e;
              }
              return (CommandResult) o;
            },
            unused);
    keeper.heartbeatOnce();
    long until = keeper.leaseValidUntilNanos();
    time.advanceMs(1000);
    next.set(new java.io.IOException("no leader"));
    keeper.heartbeatOnce();
    next.set(
        CommandResult.newBuilder().setError(ClusterError.CLUSTER_ERROR_UNKNOWN_MEMBER).build());
    keeper.heartbeatOnce();
    assertThat(keeper.leaseValidUntilNanos()).isEqualTo(until);
    assertThat(keeper.failedHeartbeats()).isEqualTo(2);
    time.advanceMs(LEASE - MARGIN - 1000);
    assertThat(keeper.leaseValid()).isFalse();
  }

  @Test
  void theLeaderMarksDownOnlyAfterLeasePlusMarginAndGivesAFreshPeriodOnElection() {
    ManualTime time = new ManualTime();
    AtomicReference<ClusterMap> map =
        new AtomicReference<>(applyOk(ClusterMap.EMPTY, register("n1", ""), register("n2", "")));
    AtomicBoolean leader = new AtomicBoolean(false);
    List<MapCommand> submitted = new ArrayList<>();
    LivenessMonitor monitor = monitorOfN1(time, map, leader::get, () -> false, submitted);

    // A follower only records.
    time.advanceMs(10 * LEASE);
    monitor.tick();
    assertThat(submitted).isEmpty();

    // Becoming leader: everyone gets a full fresh period, even though the records are old.
    leader.set(true);
    monitor.tick();
    time.advanceMs(LEASE + MARGIN);
    monitor.tick();
    assertThat(submitted).isEmpty();

    // n1 keeps heartbeating, n2 is silent.
    MapCommand hb1 = heartbeat("n1");
    ClusterMap.Applied a = map.get().apply(hb1);
    map.set(a.map());
    monitor.onApplied(10, hb1, a.result(), a.map());
    time.advanceMs(1);
    monitor.tick();
    assertThat(submitted).hasSize(1);
    MapCommand.MarkDown md = submitted.get(0).getMarkDown();
    assertThat(md.getNodeId()).isEqualTo("n2");
    assertThat(md.getExpectedHeartbeats())
        .isEqualTo(map.get().member("n2").orElseThrow().heartbeats());
    monitor.tick();
    assertThat(submitted).hasSize(1); // one in flight at a time

    // Losing leadership and winning it again resets the clock again.
    leader.set(false);
    monitor.tick();
    leader.set(true);
    monitor.tick();
    time.advanceMs(LEASE);
    monitor.tick();
    assertThat(submitted).hasSize(1);
  }

  /**
   * Applies {@code node}'s heartbeat to the map and tells the monitor, as the state machine does.
   */
  private static void applyHeartbeat(
      AtomicReference<ClusterMap> map, LivenessMonitor monitor, String node) {
    MapCommand hb = heartbeat(node);
    ClusterMap.Applied a = map.get().apply(hb);
    map.set(a.map());
    monitor.onApplied(0, hb, a.result(), a.map());
  }

  private static List<String> markedDown(List<MapCommand> submitted) {
    return submitted.stream().map(c -> c.getMarkDown().getNodeId()).toList();
  }

  @Test
  void aLeaderWhoseOwnHeartbeatsAreLateDoesNotMarkItselfDown() {
    ManualTime time = new ManualTime();
    AtomicReference<ClusterMap> map =
        new AtomicReference<>(
            applyOk(ClusterMap.EMPTY, register("n1", ""), register("n2", ""), register("n3", "")));
    List<MapCommand> submitted = new ArrayList<>();
    LivenessMonitor monitor = monitorOfN1(time, map, () -> true, () -> false, submitted);
    monitor.tick(); // becomes leader: a fresh period for everyone
    // n3 keeps heartbeating; n1 (this leader, on a loaded machine) and n2 fall silent.
    for (int i = 0; i < 6; i++) {
      time.advanceMs(LEASE / 3);
      applyHeartbeat(map, monitor, "n3");
    }
    time.advanceMs(LEASE + MARGIN); // n1 and n2 silent for well over the patience
    applyHeartbeat(map, monitor, "n3");
    monitor.tick();
    assertThat(markedDown(submitted)).containsExactly("n2");

    // However long it stays late, the leader never submits its own MarkDown.
    for (int i = 0; i < 30; i++) {
      time.advanceMs(LEASE / 3);
      applyHeartbeat(map, monitor, "n3");
      monitor.tick();
    }
    assertThat(markedDown(submitted)).containsExactly("n2");
  }

  @Test
  void aLeaderThatHoldsBackItsHeartbeatsMarksItselfDownAfterThePatience() {
    ManualTime time = new ManualTime();
    AtomicReference<ClusterMap> map =
        new AtomicReference<>(applyOk(ClusterMap.EMPTY, register("n1", ""), register("n2", "")));
    AtomicBoolean held = new AtomicBoolean(false);
    List<MapCommand> submitted = new ArrayList<>();
    LivenessMonitor monitor = monitorOfN1(time, map, () -> true, held::get, submitted);
    monitor.tick(); // becomes leader
    time.advanceMs(LEASE / 3);
    applyHeartbeat(map, monitor, "n1");
    applyHeartbeat(map, monitor, "n2");
    // n1's flash fails: it sends no more heartbeats; n2 keeps going.
    held.set(true);
    for (int i = 0; i < 3; i++) {
      time.advanceMs(LEASE / 3);
      applyHeartbeat(map, monitor, "n2");
    }
    // Held or not, the patience is the same: its lease runs out before the MarkDown.
    time.advanceMs(MARGIN);
    applyHeartbeat(map, monitor, "n2");
    assertThat(monitor.lastHeardNanos("n1").orElseThrow())
        .isEqualTo(time.nanoTime() - TimeUnit.MILLISECONDS.toNanos(LEASE + MARGIN));
    monitor.tick();
    assertThat(submitted).isEmpty();
    time.advanceMs(1);
    monitor.tick();
    assertThat(markedDown(submitted)).containsExactly("n1");
    assertThat(submitted.get(0).getMarkDown().getExpectedHeartbeats())
        .isEqualTo(map.get().member("n1").orElseThrow().heartbeats());
  }

  @Test
  void aHeartbeatSeenOnlyInTheMapIsTimedWhenSeen() {
    ManualTime time = new ManualTime();
    AtomicReference<ClusterMap> map =
        new AtomicReference<>(applyOk(ClusterMap.EMPTY, register("n2", "")));
    List<MapCommand> submitted = new ArrayList<>();
    LivenessMonitor monitor =
        new LivenessMonitor(
            "n1",
            time,
            LEASE,
            MARGIN,
            map::get,
            () -> true,
            () -> false,
            c -> {
              submitted.add(c);
              return CompletableFuture.completedFuture(OK);
            },
            unused);
    monitor.tick(); // becomes leader
    time.advanceMs(LEASE);
    // A snapshot install brings a newer heartbeat count without a command event.
    map.set(applyOk(map.get(), heartbeat("n2")));
    monitor.tick();
    time.advanceMs(LEASE + MARGIN);
    monitor.tick();
    assertThat(submitted).isEmpty();
    time.advanceMs(1);
    monitor.tick();
    assertThat(submitted).hasSize(1);
    assertThat(submitted.get(0).getMarkDown().getExpectedHeartbeats()).isEqualTo(2);
  }

  /**
   * n1's liveness monitor over {@code map}; its MarkDowns are recorded in {@code submitted} and
   * stay pending (so none is submitted twice).
   */
  private LivenessMonitor monitorOfN1(
      ManualTime time,
      AtomicReference<ClusterMap> map,
      java.util.function.BooleanSupplier isLeader,
      java.util.function.BooleanSupplier ownHeartbeatsHeld,
      List<MapCommand> submitted) {
    return new LivenessMonitor(
        "n1",
        time,
        LEASE,
        MARGIN,
        map::get,
        isLeader,
        ownHeartbeatsHeld,
        c -> {
          submitted.add(c);
          return new CompletableFuture<>();
        },
        unused);
  }
}
