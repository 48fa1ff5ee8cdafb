package io.peerflash.node.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowable;
import static org.assertj.core.api.Assertions.tuple;

import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.peerflash.node.engine.CacheEngine;
import io.peerflash.node.engine.CacheException;
import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.engine.EngineConfig;
import io.peerflash.node.index.VolumeInfo;
import io.peerflash.node.index.VolumeInfo.Role;
import io.peerflash.node.storage.FileBackingStore;
import io.peerflash.node.wire.Protos;
import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.CreateVolumeRequest;
import io.peerflash.proto.v1.MapCommand;
import io.peerflash.proto.v1.OnPeerLoss;
import io.peerflash.proto.v1.SetPolicyRequest;
import io.peerflash.proto.v1.Volume;
import io.peerflash.proto.v1.VolumePolicy;
import io.peerflash.proto.v1.VolumeState;
import io.peerflash.replication.control.ClusterMap;
import io.peerflash.replication.control.ControlPlane;
import io.peerflash.replication.control.ControlPlaneConfig;
import io.peerflash.replication.control.Member;
import io.peerflash.replication.control.VolumeRecord;
import io.peerflash.replication.fault.FaultPoints;
import io.peerflash.testing.TestPorts;
import io.peerflash.util.NamedThreadFactory;
import io.peerflash.util.Time;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.apache.ratis.util.ExitUtils;
import org.assertj.core.api.ThrowableAssert.ThrowingCallable;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Volume administration and routing through a real cluster map: node n1 is the single voter of a
 * real Raft group on loopback, with a real engine (RocksDB, files on a shared directory). What
 * ClusterNode does around it is reduced to its narrow {@link ClusterVolumes.Local} and a listener
 * that adopts this node's new volumes into the engine, as the node's reconcile does.
 */
class ClusterVolumesTest {
  static {
    ExitUtils.disableSystemExit(); // a Raft server that cannot start fails the test, not the JVM
  }

  private static final long SIZE = 1 << 20;

  @TempDir Path dir;
  private final FaultPoints faults = new FaultPoints();
  private final ScheduledExecutorService timers = Executors.newSingleThreadScheduledExecutor();
  private final ExecutorService reconciler =
      Executors.newSingleThreadExecutor(new NamedThreadFactory("test-reconcile", true));
  private ControlPlane cp;
  private CacheEngine engine;
  private ClusterVolumes volumes;
  private volatile boolean ready = true;

  @BeforeEach
  void start() throws Exception {
    String raft = "127.0.0.1:" + TestPorts.free();
    cp =
        ControlPlane.start(
            ControlPlaneConfig.of(
                "n1", raft, "127.0.0.1:7001", "rack-1", Map.of("n1", raft), dir.resolve("raft")));
    cp.useFaultPoints(faults);
    cp.registered().get(60, TimeUnit.SECONDS);
    engine =
        CacheEngine.open(
            EngineConfig.defaults(dir.resolve("n1"), 16 << 20),
            new FileBackingStore(dir.resolve("shared")),
            Time.SYSTEM);
    engine.start();
    cp.addListener(map -> reconciler.execute(() -> follow(map)));
    Reprotector reprotector =
        new Reprotector(
            "n1", engine, cp, id -> null, reconciler, timers, Time.SYSTEM, 1000, 1000, faults);
    VolumeMover mover = new VolumeMover("n1", engine, cp, m -> null, Time.SYSTEM);
    volumes =
        new ClusterVolumes(
            "n1",
            cp,
            engine,
            Time.SYSTEM,
            reprotector,
            mover,
            Map.of(),
            new ClusterVolumes.Local() {
              @Override
              public boolean ready() {
                return ready;
              }

              @Override
              public String fencedReason() {
                return "";
              }

              @Override
              public boolean held(String volume) {
                return ClusterVolumesTest.this.held(volume);
              }

              @Override
              public ManagedChannel channel(Member peer) {
                throw new AssertionError("no peer has a replica here: " + peer.id());
              }
            });
  }

  private boolean held(String volume) {
    return engine.listVolumes().stream().anyMatch(v -> v.name().equals(volume));
  }

  /** The node's reconcile, reduced to adopting the new volumes it owns. */
  private void follow(ClusterMap map) {
    try {
      for (VolumeRecord rec : map.volumes().values()) {
        if (rec.owner().equals("n1") && !held(rec.name())) {
          engine.adoptVolume(
              new VolumeInfo(
                  rec.id(),
                  rec.name(),
                  rec.sizeBytes(),
                  Protos.mode(rec.mode()),
                  rec.requestedReplicas(),
                  Role.OWNER),
              true);
        }
      }
    } catch (CacheException e) {
      throw new IllegalStateException(e);
    }
  }

  @AfterEach
  void stop() {
    faults.releaseHolds();
    if (cp != null) {
      cp.close();
    }
    reconciler.shutdownNow();
    timers.shutdownNow();
    if (engine != null) {
      engine.close();
    }
  }

  private static CreateVolumeRequest create(String name, CacheMode mode, int replicas) {
    return CreateVolumeRequest.newBuilder()
        .setName(name)
        .setSizeBytes(SIZE)
        .setPolicy(VolumePolicy.newBuilder().setMode(mode).setReplicas(replicas))
        .build();
  }

  private static SetPolicyRequest policy(String name, CacheMode mode, int replicas) {
    return SetPolicyRequest.newBuilder()
        .setName(name)
        .setPolicy(VolumePolicy.newBuilder().setMode(mode).setReplicas(replicas))
        .build();
  }

  private boolean sharedFile(String name) {
    return Files.exists(dir.resolve("shared").resolve(name));
  }

  private static void refused(ThrowingCallable call, Reason reason, String... fragments) {
    assertThatThrownBy(call)
        .isInstanceOf(CacheException.class)
        .satisfies(e -> assertThat(((CacheException) e).reason()).isEqualTo(reason))
        .hasMessageContainingAll(fragments);
  }

  @Test
  void createCommitsTheVolumeAndReturnsOnceItsOwnerHoldsIt() throws Exception {
    Volume v = volumes.createVolume(create("a", CacheMode.WRITE_BACK, 0));

    assertThat(v.getName()).isEqualTo("a");
    assertThat(v.getOwner()).isEqualTo("n1");
    assertThat(v.getSizeBytes()).isEqualTo(SIZE);
    assertThat(v.getPolicy().getMode()).isEqualTo(CacheMode.WRITE_BACK);
    assertThat(v.getState()).isEqualTo(VolumeState.HEALTHY);
    assertThat(cp.map().volume("a")).isPresent();
    // Adoption runs on the reconcile thread after the commit: create waited for it, and for this
    // node's map to show the volume.
    assertThat(engine.getVolume("a").role()).isEqualTo(Role.OWNER);
    assertThat(sharedFile("a")).isTrue();
  }

  @Test
  void createRefusesBadRequestsWithClearErrorsAndLeavesNoFileBehind() throws Exception {
    refused(
        () -> volumes.createVolume(create("a", CacheMode.CACHE_MODE_UNSPECIFIED, 0)),
        Reason.INVALID_ARGUMENT,
        "policy.mode");
    refused(
        () -> volumes.createVolume(create("../a", CacheMode.WRITE_BACK, 0)),
        Reason.INVALID_ARGUMENT,
        "'../a'",
        VolumeInfo.NAME_RULE);
    // More replicas than the cluster has members besides the owner: refused before the map.
    refused(
        () -> volumes.createVolume(create("b", CacheMode.WRITE_BACK, 1)),
        Reason.FAILED_PRECONDITION,
        "wants 1 replica but the cluster has 0 UP members besides its owner",
        "n1 UP",
        "--allow-degraded");
    // The map's own refusal (a replica count out of range) is mapped to its reason too.
    refused(
        () -> volumes.createVolume(create("c", CacheMode.WRITE_BACK, 99)),
        Reason.INVALID_ARGUMENT,
        "replicas must be");
    assertThat(cp.map().volumes()).isEmpty();
    assertThat(sharedFile("b")).as("the file made for a refused create is removed").isFalse();
    assertThat(sharedFile("c")).isFalse();

    volumes.createVolume(create("a", CacheMode.WRITE_BACK, 0));
    refused(
        () -> volumes.createVolume(create("a", CacheMode.WRITE_THROUGH, 0)),
        Reason.ALREADY_EXISTS,
        "'a' already exists");
  }

  @Test
  void aDegradedCreateIsAllowedWhenAskedAndSaysWhatFewerReplicasMean() throws Exception {
    Volume v =
        volumes.createVolume(
            create("a", CacheMode.WRITE_BACK, 1).toBuilder().setAllowDegraded(true).build());
    assertThat(v.getPolicy().getReplicas()).isEqualTo(1);
    assertThat(v.getEffectiveReplicas()).isZero();
    assertThat(v.getState()).isEqualTo(VolumeState.DEGRADED);
    assertThat(v.getPolicy().getOnPeerLoss()).isEqualTo(OnPeerLoss.ON_PEER_LOSS_WRITE_THROUGH);
    // Write-through: only write-back volumes need replicas, so no check at all.
    assertThat(volumes.createVolume(create("b", CacheMode.WRITE_THROUGH, 1)).getName())
        .isEqualTo("b");
  }

  @Test
  void setPolicyChangesTheMapAndRefusesMoreCopiesThanTheClusterCanHold() throws Exception {
    volumes.createVolume(create("a", CacheMode.WRITE_BACK, 0));
    Volume v = volumes.setPolicy(policy("a", CacheMode.WRITE_THROUGH, 0));
    assertThat(v.getPolicy().getMode()).isEqualTo(CacheMode.WRITE_THROUGH);
    // Returned only once this node's map has it: a stat right after shows the new policy.
    assertThat(volumes.getVolume("a").getPolicy().getMode()).isEqualTo(CacheMode.WRITE_THROUGH);
    assertThat(v.getPolicy().getOnPeerLoss())
        .as("an unspecified on-peer-loss keeps the current one")
        .isEqualTo(cp.map().volume("a").orElseThrow().onPeerLoss());

    refused(
        () -> volumes.setPolicy(policy("a", CacheMode.WRITE_BACK, 1)),
        Reason.FAILED_PRECONDITION,
        "wants 1 replica");
    assertThat(cp.map().volume("a").orElseThrow().mode()).isEqualTo(CacheMode.WRITE_THROUGH);
    refused(
        () -> volumes.setPolicy(policy("nope", CacheMode.WRITE_BACK, 0)), Reason.NOT_FOUND, "nope");
  }

  @Test
  void deleteRemovesTheVolumeFromTheMapAndAnUnknownNameIsNotFound() throws Exception {
    volumes.createVolume(create("a", CacheMode.WRITE_BACK, 0));
    volumes.deleteVolume("a");
    assertThat(cp.map().volume("a")).isEmpty();
    refused(() -> volumes.getVolume("a"), Reason.NOT_FOUND, "a");
    refused(() -> volumes.deleteVolume("a"), Reason.NOT_FOUND, "a");
  }

  @Test
  void getAndListShowTheMapsVolumesWithTheOwnersEngineFigures() throws Exception {
    volumes.createVolume(create("a", CacheMode.WRITE_BACK, 0));
    volumes.createVolume(create("b", CacheMode.WRITE_AROUND, 0));
    engine.write("a", 0, ByteBuffer.wrap(new byte[8192]));

    Volume a = volumes.getVolume("a");
    assertThat(a.getDirtyBytes()).isEqualTo(8192);
    assertThat(a.getCachedBytes()).isEqualTo(8192);
    assertThat(a.getEpoch()).isEqualTo(cp.map().volume("a").orElseThrow().epoch());
    assertThat(a.getStateDetail()).contains("owner n1", "epoch " + a.getEpoch());
    assertThat(volumes.listVolumes())
        .extracting(Volume::getName, v -> v.getPolicy().getMode())
        .containsExactlyInAnyOrder(
            tuple("a", CacheMode.WRITE_BACK), tuple("b", CacheMode.WRITE_AROUND));
  }

  @Test
  void routeIoLetsOnlyTheOwnerHoldingTheVolumeServeIt() throws Exception {
    assertThat(code(() -> volumes.routeIo("a"))).isEqualTo(Status.Code.NOT_FOUND);
    volumes.createVolume(create("a", CacheMode.WRITE_BACK, 0));
    volumes.routeIo("a");

    ready = false; // the map names this node, its engine is not in step yet: retry
    assertThat(code(() -> volumes.routeIo("a"))).isEqualTo(Status.Code.UNAVAILABLE);
    assertThat(catchThrowable(() -> volumes.routeIo("a"))).hasMessageContaining("taking over");
  }

  @Test
  void routeIoPointsToAnotherOwnerAndSaysOfflineOnceItIsDown() throws Exception {
    // n2 registers but never heartbeats: UP now, marked DOWN by the leader after its lease.
    submit(
        MapCommand.newBuilder()
            .setRegisterMember(
                MapCommand.RegisterMember.newBuilder()
                    .setId("n2")
                    .setGrpcAddress("127.0.0.1:7002")
                    .setRaftAddress("127.0.0.1:7003")
                    .setFaultDomain("rack-2")));
    submit(
        MapCommand.newBuilder()
            .setCreateVolume(
                MapCommand.CreateVolume.newBuilder()
                    .setName("theirs")
                    .setSizeBytes(SIZE)
                    .setMode(CacheMode.WRITE_BACK)
                    .setPreferredOwner("n2")));
    StatusRuntimeException moved =
        (StatusRuntimeException) catchThrowable(() -> volumes.routeIo("theirs"));
    assertThat(moved.getStatus().getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION);
    assertThat(moved.getTrailers().get(key(ClusterRouting.OWNER_TRAILER)))
        .isEqualTo("n2@127.0.0.1:7002");

    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    while (cp.map().member("n2").orElseThrow().isUp()) {
      assertThat(System.nanoTime() - deadline).as("n2 marked DOWN").isNegative();
      Thread.sleep(20);
    }
    StatusRuntimeException offline =
        (StatusRuntimeException) catchThrowable(() -> volumes.routeIo("theirs"));
    assertThat(offline.getStatus().getCode()).isEqualTo(Status.Code.UNAVAILABLE);
    assertThat(offline.getStatus().getDescription()).contains("OFFLINE");
    // The trailer tells clients not to retry for their whole budget: no replica can take over.
    assertThat(offline.getTrailers().get(key(ClusterRouting.VOLUME_STATE_TRAILER)))
        .isEqualTo("OFFLINE");
  }

  @Test
  void catchUpTimesOutWithoutFailingTheReadItShares() throws Exception {
    volumes.catchUp().get(10, TimeUnit.SECONDS);

    // The next read to the leader hangs; a catch-up behind it shares the read queued after it.
    faults.arm(FaultPoints.RAFT_SUBMIT, "n1", FaultPoints.Action.HOLD, 60_000, 1);
    CompletableFuture<ClusterMap> running = cp.catchUp();
    CompletableFuture<Void> mine = volumes.catchUp();
    CompletableFuture<ClusterMap> sharing = cp.catchUp();

    long start = System.nanoTime();
    assertThatThrownBy(() -> mine.get(30, TimeUnit.SECONDS))
        .isInstanceOf(ExecutionException.class)
        .hasCauseInstanceOf(TimeoutException.class);
    assertThat(TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start))
        .isLessThanOrEqualTo(ClusterRouting.CATCH_UP_TIMEOUT_MS + 2_000);
    assertThat(faults.fired(FaultPoints.RAFT_SUBMIT)).isEqualTo(1);

    faults.releaseHolds();
    assertThat(running.get(10, TimeUnit.SECONDS)).isNotNull();
    assertThat(sharing.get(10, TimeUnit.SECONDS)).as("not failed by the timeout").isNotNull();
  }

  @Test
  void aChangeTheClusterCannotCommitIsUnavailable() throws Exception {
    // The leader cannot be reached: UNAVAILABLE (retryable), not the map's NOT_FOUND.
    faults.arm(FaultPoints.RAFT_SUBMIT, "n1", FaultPoints.Action.DROP);
    refused(() -> volumes.deleteVolume("a"), Reason.UNAVAILABLE, "did not commit");
  }

  private void submit(MapCommand.Builder command) throws Exception {
    assertThat(cp.submit(command.build()).get(30, TimeUnit.SECONDS).getOk()).isTrue();
    cp.catchUp().get(10, TimeUnit.SECONDS);
  }

  private static Status.Code code(ThrowingCallable call) {
    return Status.fromThrowable(catchThrowable(call)).getCode();
  }

  private static Metadata.Key<String> key(String name) {
    return Metadata.Key.of(name, Metadata.ASCII_STRING_MARSHALLER);
  }
}
