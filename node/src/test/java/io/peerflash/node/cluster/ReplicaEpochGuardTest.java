package io.peerflash.node.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import io.peerflash.node.engine.CacheEngine;
import io.peerflash.node.engine.EngineConfig;
import io.peerflash.node.index.VolumeInfo;
import io.peerflash.node.index.VolumeInfo.Role;
import io.peerflash.node.storage.FileBackingStore;
import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.MapCommand;
import io.peerflash.replication.control.ControlPlane;
import io.peerflash.replication.control.VolumeRecord;
import io.peerflash.replication.data.BlockCopy;
import io.peerflash.replication.data.ReplicaException;
import io.peerflash.replication.data.ReplicaSink;
import io.peerflash.util.ManualTime;
import io.peerflash.util.Time;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;
import org.assertj.core.api.ThrowableAssert.ThrowingCallable;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The replica's epoch guard of node n2 on a real control plane (a one-voter Raft group whose map
 * also registers n1 and n3) and a real engine: each test's volume is owned by n1 with n2 and n3 as
 * replicas. Copies from the owner at the map's epoch pass at once; an older epoch, a sender that is
 * not the owner, or a node outside the replicas is refused (and counted) without a wait; a sender
 * ahead of this node's map, a node not in step or an engine not holding the volume as a replica
 * waits, up to {@link ReplicaEpochGuard#MAP_CATCH_UP_MS}, on the guard's own clock; and the
 * engine's replica store decides the same check again together with the store.
 *
 * <p>The control plane's clock is stopped, so the leader never marks the registered-only members n1
 * and n3 DOWN; the guard's clock is stopped too, and moves only by the guard's own sleeps.
 */
class ReplicaEpochGuardTest {
  private static final String SELF = "n2";

  @TempDir static Path dir;
  private static ControlPlane cp;
  private static CacheEngine engine;
  private static final AtomicInteger volumes = new AtomicInteger();

  private final ManualTime time = new ManualTime();

  @BeforeAll
  static void start() throws Exception {
    cp = OneVoterControlPlane.start(dir, SELF, List.of("n1", "n3"));
    engine =
        CacheEngine.open(
            EngineConfig.defaults(dir.resolve("data"), 8 << 20),
            new FileBackingStore(dir.resolve("shared")),
            new ManualTime());
  }

  @AfterAll
  static void stop() {
    if (engine != null) {
      engine.close();
    }
    if (cp != null) {
      cp.close();
    }
  }

  private static void commit(MapCommand command) throws Exception {
    OneVoterControlPlane.commit(cp, command);
  }

  private static VolumeRecord rec(String name) {
    return cp.map().volume(name).orElseThrow();
  }

  /** A new volume owned by n1, replicated to n2 and n3, held by this engine as a replica. */
  private static VolumeRecord newVolume() throws Exception {
    String name = "v" + volumes.incrementAndGet();
    commit(
        MapCommand.newBuilder()
            .setCreateVolume(
                MapCommand.CreateVolume.newBuilder()
                    .setName(name)
                    .setSizeBytes(1 << 20)
                    .setMode(CacheMode.WRITE_BACK)
                    .setReplicas(2)
                    .setPreferredOwner("n1"))
            .build());
    VolumeRecord rec = rec(name);
    assertThat(rec.owner()).isEqualTo("n1");
    assertThat(rec.allReplicas()).containsExactlyInAnyOrder("n2", "n3");
    engine.adoptVolume(
        new VolumeInfo(
            rec.id(), name, rec.sizeBytes(), VolumeInfo.CacheMode.WRITE_BACK, 2, Role.REPLICA),
        false);
    return rec;
  }

  /** The map's next epoch of the volume: its ownership handed to {@code newOwner}. */
  private static VolumeRecord changeOwner(VolumeRecord rec, String newOwner) throws Exception {
    commit(
        MapCommand.newBuilder()
            .setChangeOwner(
                MapCommand.ChangeOwner.newBuilder()
                    .setVolume(rec.name())
                    .setNewOwner(newOwner)
                    .setExpectedEpoch(rec.epoch()))
            .build());
    VolumeRecord next = rec(rec.name());
    assertThat(next.epoch()).isGreaterThan(rec.epoch());
    return next;
  }

  private ReplicaEpochGuard guard(BooleanSupplier inStep) {
    return new ReplicaEpochGuard(SELF, cp, engine, inStep, time);
  }

  private static ReplicaException refusal(ThrowingCallable call, ReplicaException.Code code) {
    Throwable t = catchThrowable(call);
    assertThat(t).isInstanceOf(ReplicaException.class);
    ReplicaException e = (ReplicaException) t;
    assertThat(e.code()).as(e.getMessage()).isEqualTo(code);
    return e;
  }

  private static BlockCopy copy(long block, long seq) {
    ByteBuffer data = ByteBuffer.allocate(CacheEngine.BLOCK);
    data.put(0, (byte) seq);
    return new BlockCopy(block, seq, data);
  }

  @Test
  void theOwnersCopyAtTheMapsEpochPassesWithoutAWait() throws Exception {
    VolumeRecord v = newVolume();
    ReplicaEpochGuard guard = guard(() -> true);
    long t0 = time.nowMs();

    assertThat(guard.tryCheckReplicate(v.name(), v.epoch(), "n1")).isTrue();
    guard.checkReplicate(v.name(), v.epoch(), "n1");

    assertThat(time.nowMs()).as("no wait").isEqualTo(t0);
    assertThat(guard.refusals()).isZero();
  }

  @Test
  void afterAnOwnerChangeTheOldOwnerIsRefusedAtBothEpochsAndTheNewOneTakesItsPlace()
      throws Exception {
    VolumeRecord before = newVolume();
    VolumeRecord after = changeOwner(before, "n3");
    ReplicaEpochGuard guard = guard(() -> true);
    long t0 = time.nowMs();

    // The old owner, still at its epoch (it does not know yet): a stale epoch, refused at once.
    ReplicaException stale =
        refusal(
            () -> guard.checkReplicate(before.name(), before.epoch(), "n1"),
            ReplicaException.Code.FAILED_PRECONDITION);
    assertThat(stale.getMessage()).contains("stale epoch " + before.epoch());
    refusal(
        () -> guard.tryCheckReplicate(before.name(), before.epoch(), "n1"),
        ReplicaException.Code.FAILED_PRECONDITION);
    // Claiming the new epoch does not help: at it, n3 is the owner.
    assertThat(
            refusal(
                    () -> guard.checkReplicate(after.name(), after.epoch(), "n1"),
                    ReplicaException.Code.FAILED_PRECONDITION)
                .getMessage())
        .contains("the owner is n3");
    assertThat(time.nowMs()).as("refusals do not wait").isEqualTo(t0);
    assertThat(guard.refusals()).isEqualTo(3);

    guard.checkReplicate(after.name(), after.epoch(), "n3");
    assertThat(guard.refusals()).as("passes are not counted").isEqualTo(3);
  }

  @Test
  void aNodeTakenOutOfTheReplicasRefusesEvenTheOwner() throws Exception {
    VolumeRecord before = newVolume();
    commit(
        MapCommand.newBuilder()
            .setRemoveReplica(
                MapCommand.RemoveReplica.newBuilder()
                    .setVolume(before.name())
                    .setMember(SELF)
                    .setExpectedEpoch(before.epoch()))
            .build());
    VolumeRecord after = rec(before.name());
    assertThat(after.allReplicas()).containsExactly("n3");
    ReplicaEpochGuard guard = guard(() -> true);

    // The engine still holds its copies (not reconciled yet); the map alone decides.
    assertThat(engine.getVolume(after.name()).role()).isEqualTo(Role.REPLICA);
    assertThat(
            refusal(
                    () -> guard.checkReplicate(after.name(), after.epoch(), "n1"),
                    ReplicaException.Code.FAILED_PRECONDITION)
                .getMessage())
        .contains("the replicas are [n3]");
    refusal(
        () -> guard.checkReplicate(before.name(), before.epoch(), "n1"),
        ReplicaException.Code.FAILED_PRECONDITION);
    assertThat(guard.refusals()).isEqualTo(2);
  }

  @Test
  void aSenderAheadOfThisNodesMapWaitsAndPassesOnceTheMapCatchesUp() throws Exception {
    VolumeRecord v = newVolume();
    long next = v.epoch() + 1;
    // The map change arrives while the guard sleeps between two looks.
    AtomicInteger sleeps = new AtomicInteger();
    Time clock =
        new Time() {
          @Override
          public long nowMs() {
            return time.nowMs();
          }

          @Override
          public long nanoTime() {
            return time.nanoTime();
          }

          @Override
          public void sleepMs(long ms) throws InterruptedException {
            if (sleeps.incrementAndGet() == 3) {
              try {
                changeOwner(v, "n3");
              } catch (Exception e) {
                throw new IllegalStateException(e);
              }
            }
            time.sleepMs(ms);
          }

          @Override
          public Timer schedule(long delayMs, Runnable task) {
            return time.schedule(delayMs, task);
          }
        };
    ReplicaEpochGuard guard = new ReplicaEpochGuard(SELF, cp, engine, () -> true, clock);
    long t0 = time.nowMs();

    // A caller that must not wait is told so at once, with nothing refused.
    assertThat(guard.tryCheckReplicate(v.name(), next, "n3")).isFalse();
    assertThat(time.nowMs()).isEqualTo(t0);

    guard.checkReplicate(v.name(), next, "n3");

    assertThat(sleeps).as("looked again after each sleep until the map had it").hasValue(3);
    assertThat(time.nowMs() - t0).isLessThan(ReplicaEpochGuard.MAP_CATCH_UP_MS);
    assertThat(guard.refusals()).isZero();
  }

  @Test
  void aMapThatStaysBehindIsUnavailableAfterTheCatchUpTimeWithoutCountingARefusal()
      throws Exception {
    VolumeRecord v = newVolume();
    ReplicaEpochGuard guard = guard(() -> true);

    long t0 = time.nowMs();
    ReplicaException e =
        refusal(
            () -> guard.checkReplicate(v.name(), v.epoch() + 5, "n1"),
            ReplicaException.Code.UNAVAILABLE);
    assertThat(e.getMessage()).contains("has not caught up with epoch " + (v.epoch() + 5));
    long waited = time.nowMs() - t0;
    assertThat(waited)
        .as("waited the whole catch-up time, no more")
        .isBetween(ReplicaEpochGuard.MAP_CATCH_UP_MS, ReplicaEpochGuard.MAP_CATCH_UP_MS + 20);

    // A volume this node's map does not have yet (just created elsewhere) waits the same way.
    refusal(() -> guard.checkReplicate("unknown", 1, "n1"), ReplicaException.Code.UNAVAILABLE);
    assertThat(guard.refusals()).as("the sender was not wrong: no refusal").isZero();
  }

  @Test
  void untilTheNodeIsInStepAndItsEngineHoldsTheVolumeAsAReplicaTheGuardWaits() throws Exception {
    VolumeRecord v = newVolume();
    // Not in step with the map yet; it is 300 ms (of the guard's clock) from now.
    long t0 = time.nowMs();
    ReplicaEpochGuard guard = guard(() -> time.nowMs() >= t0 + 300);
    assertThat(guard.tryCheckReplicate(v.name(), v.epoch(), "n1")).isFalse();
    guard.checkReplicate(v.name(), v.epoch(), "n1");
    assertThat(time.nowMs() - t0).isBetween(300L, 310L);

    // The engine holds the volume as its owner (not reconciled with this map yet), or not at all.
    ReplicaEpochGuard inStep = guard(() -> true);
    engine.setRole(v.name(), Role.OWNER);
    assertThat(inStep.tryCheckReplicate(v.name(), v.epoch(), "n1")).isFalse();
    engine.setRole(v.name(), Role.REPLICA);
    assertThat(inStep.tryCheckReplicate(v.name(), v.epoch(), "n1")).isTrue();
    engine.dropLocalVolume(v.name());
    assertThat(inStep.tryCheckReplicate(v.name(), v.epoch(), "n1")).isFalse();
    assertThat(guard.refusals() + inStep.refusals()).isZero();
  }

  @Test
  void theReplicaStoreDecidesTheGuardsCheckAgainTogetherWithTheStore() throws Exception {
    VolumeRecord before = newVolume();
    ReplicaEpochGuard guard = guard(() -> true);
    ReplicaSink sink = engine.replicaSink();
    String name = before.name();

    sink.apply(
        name, List.of(copy(0, 5)), () -> guard.tryCheckReplicate(name, before.epoch(), "n1"));
    assertThat(engine.describeCopies(name)).containsExactly(5, 1);

    // The replication service waited for the map outside (it passed at this epoch); the map then
    // moves on before the copy reaches the store, which refuses it and stores nothing.
    guard.checkReplicate(name, before.epoch(), "n1");
    VolumeRecord after = changeOwner(before, "n3");
    refusal(
        () ->
            sink.apply(
                name,
                List.of(copy(1, 6)),
                () -> guard.tryCheckReplicate(name, before.epoch(), "n1")),
        ReplicaException.Code.FAILED_PRECONDITION);
    assertThat(engine.describeCopies(name)).containsExactly(5, 1);

    sink.apply(name, List.of(copy(1, 8)), () -> guard.tryCheckReplicate(name, after.epoch(), "n3"));
    assertThat(engine.describeCopies(name)).as("the new owner's copy").containsExactly(8, 2);
  }

  @Test
  void aCheckThatStillNeedsAWaitInsideTheStoreIsUnavailableAndChangesNothing() throws Exception {
    // The replication service's wait outside ran out of luck (or the map moved back behind, e.g.
    // a re-read): inside the store the guard says "wait", which the store answers UNAVAILABLE
    // (retryable), for a copy, a release and a reset alike.
    VolumeRecord v = newVolume();
    ReplicaEpochGuard guard = guard(() -> true);
    ReplicaSink sink = engine.replicaSink();
    String name = v.name();
    sink.apply(name, List.of(copy(0, 5)), () -> guard.tryCheckReplicate(name, v.epoch(), "n1"));
    ReplicaSink.EpochCheck ahead = () -> guard.tryCheckReplicate(name, v.epoch() + 1, "n1");

    refusal(() -> sink.apply(name, List.of(copy(1, 6)), ahead), ReplicaException.Code.UNAVAILABLE);
    refusal(
        () -> sink.release(name, new long[] {0}, new long[] {5}, ahead),
        ReplicaException.Code.UNAVAILABLE);
    refusal(() -> sink.reset(name, 100, ahead), ReplicaException.Code.UNAVAILABLE);
    assertThat(engine.describeCopies(name)).containsExactly(5, 1);
    assertThat(guard.refusals()).isZero();
  }
}
