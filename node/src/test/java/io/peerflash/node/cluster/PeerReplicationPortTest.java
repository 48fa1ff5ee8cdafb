package io.peerflash.node.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.peerflash.node.engine.CacheEngine;
import io.peerflash.node.engine.CacheException;
import io.peerflash.node.engine.EngineConfig;
import io.peerflash.node.engine.Placement;
import io.peerflash.node.engine.ReplicationPort.CopiesSynced;
import io.peerflash.node.engine.ReplicationPort.FencedException;
import io.peerflash.node.engine.ReplicationPort.StuckException;
import io.peerflash.node.index.VolumeInfo;
import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.index.VolumeInfo.Role;
import io.peerflash.node.storage.FileBackingStore;
import io.peerflash.proto.v1.MapCommand;
import io.peerflash.proto.v1.OnPeerLoss;
import io.peerflash.replication.control.ClusterMap;
import io.peerflash.replication.control.MapCommands;
import io.peerflash.replication.control.VolumeRecord;
import io.peerflash.replication.data.BlockCopy;
import io.peerflash.replication.data.EpochGuard;
import io.peerflash.replication.data.PeerReplicator;
import io.peerflash.replication.data.ReplicaException;
import io.peerflash.replication.data.ReplicaGrpcService;
import io.peerflash.util.ManualTime;
import io.peerflash.util.NamedThreadFactory;
import io.peerflash.util.Time;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The owner n1's replication port against two real replicas (n2, n3: each a cache engine holding
 * the volume as REPLICA behind the real replication service, reached over gRPC's in-process
 * transport through real PeerReplicators), placements resolved from real cluster maps the way
 * ClusterNode resolves them. Each replica checks copies with {@link Fencing#acceptCopy} against its
 * own map, which a test may set ahead of the owner's.
 */
class PeerReplicationPortTest {
  private static final long SIZE = 1 << 20;
  private static final ClusterMap CREATED =
      TestMaps.withVolume(TestMaps.members("n1", "n2", "n3"), "v", 2, "n1");
  private static final VolumeInfo V =
      new VolumeInfo(1, "v", SIZE, CacheMode.WRITE_BACK, 2, Role.OWNER);

  @TempDir Path dir;
  private final ScheduledExecutorService timers =
      Executors.newSingleThreadScheduledExecutor(new NamedThreadFactory("test-timers", true));
  private final ExecutorService applyPool =
      Executors.newFixedThreadPool(2, new NamedThreadFactory("test-replica-apply", true));
  private final AtomicReference<ClusterMap> ownerMap = new AtomicReference<>(CREATED);
  private final AtomicReference<ClusterMap> replicaMap = new AtomicReference<>(CREATED);
  private final Map<String, Replica> replicas = new LinkedHashMap<>();
  private final Evictions evictions = new Evictions();
  private PeerReplicationPort port;

  /** One replica node: its engine, its replication service and the owner's replicator to it. */
  private final class Replica implements AutoCloseable {
    final String id;
    final CacheEngine engine;
    final Server server;
    final ManagedChannel channel;
    final PeerReplicator replicator;
    // Epochs it refused (FAILED_PRECONDITION), in order.
    final LinkedBlockingQueue<Long> refused = new LinkedBlockingQueue<>();

    Replica(String id) throws Exception {
      this.id = id;
      engine =
          CacheEngine.open(
              EngineConfig.defaults(dir.resolve(id), 16 << 20),
              new FileBackingStore(dir.resolve("shared")),
              Time.SYSTEM);
      engine.start();
      engine.adoptVolume(
          new VolumeInfo(1, "v", SIZE, CacheMode.WRITE_BACK, 2, Role.REPLICA), false);
      EpochGuard guard =
          (volume, epoch, owner) -> {
            VolumeRecord rec = replicaMap.get().volume(volume).orElse(null);
            try {
              if (Fencing.acceptCopy(id, rec, true, () -> true, volume, epoch, owner)) {
                return;
              }
            } catch (ReplicaException e) {
              refused.add(epoch);
              throw e;
            }
            // The node's real guard waits for its map; these tests never put it behind.
            throw new ReplicaException(ReplicaException.Code.UNAVAILABLE, id + " is behind");
          };
      String name = "replica-" + id + "-" + System.nanoTime();
      server =
          InProcessServerBuilder.forName(name)
              .addService(new ReplicaGrpcService(engine.replicaSink(), guard, applyPool))
              .build()
              .start();
      channel = InProcessChannelBuilder.forName(name).build();
      replicator = new PeerReplicator(id, channel, timers, 2_000);
    }

    long dirtyBytes() {
      try {
        return engine.volumeStatus("v").dirtyBytes();
      } catch (CacheException e) {
        throw new AssertionError(e);
      }
    }

    void stopServer() throws InterruptedException {
      server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }

    @Override
    public void close() {
      replicator.close();
      channel.shutdownNow();
      server.shutdownNow();
      engine.close();
    }
  }

  /** The eviction a node commits through Raft, reduced to recording what it was asked. */
  private static final class Evictions implements PeerReplicationPort.ReplicaEviction {
    final LinkedBlockingQueue<String> asked = new LinkedBlockingQueue<>();
    volatile boolean removes = true;

    @Override
    public CompletableFuture<Boolean> evict(String volume, String peerId, long epoch) {
      asked.add(volume + "/" + peerId + "@" + epoch);
      return CompletableFuture.completedFuture(removes);
    }
  }

  // The port's clock: a refused owner's wait for its map moves only when the test moves it.
  private final ManualTime time = new ManualTime();

  /** Waits (for the event, not a sleep) until the port has scheduled its next look at its map. */
  private void awaitPendingTimer() throws InterruptedException {
    awaitPendingTimerOr(new CompletableFuture<>());
  }

  private void awaitPendingTimerOr(CompletableFuture<?> done) throws InterruptedException {
    long giveUp = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (time.pendingTimers() == 0 && !done.isDone()) {
      assertThat(System.nanoTime() - giveUp).as("a look at the map scheduled").isNegative();
      Thread.sleep(1);
    }
  }

  @BeforeEach
  void start() throws Exception {
    assertThat(CREATED.volume("v").orElseThrow().replicaSet()).containsExactly("n2", "n3");
    for (String id : List.of("n2", "n3")) {
      replicas.put(id, new Replica(id));
    }
    port = new PeerReplicationPort(this::resolve, evictions, v -> {}, time);
  }

  /** As ClusterNode.resolve: this node's plan of the owner's current map, as replicators. */
  private PeerReplicationPort.Resolved resolve(VolumeInfo v) {
    PeerReplicationPort.CopyPlan plan =
        PeerReplicationPort.CopyPlan.of("n1", ownerMap.get(), v.name());
    if (plan == null) {
      return new PeerReplicationPort.Resolved(false, true, null);
    }
    List<PeerReplicator> to = new ArrayList<>();
    plan.peers().forEach(id -> to.add(replicas.get(id).replicator));
    return new PeerReplicationPort.Resolved(
        true,
        true,
        new PeerReplicationPort.Targets(plan.epoch(), "n1", to, plan.inSync(), plan.acceptFewer()));
  }

  @AfterEach
  void stop() {
    replicas.values().forEach(Replica::close);
    applyPool.shutdownNow();
    timers.shutdownNow();
  }

  private static List<BlockCopy> block(long block, long seq) {
    return List.of(new BlockCopy(block, seq, ByteBuffer.wrap(new byte[4096])));
  }

  /** The same replicas at the next epoch (a replica-set change, as re-protection commits). */
  private static ClusterMap nextEpoch(ClusterMap map) {
    long epoch = map.volume("v").orElseThrow().epoch();
    return TestMaps.apply(map, MapCommands.setReplicaSet("v", epoch, List.of("n2", "n3")));
  }

  private static Throwable failure(CompletableFuture<?> f) {
    assertThatThrownBy(() -> f.get(10, TimeUnit.SECONDS)).isInstanceOf(ExecutionException.class);
    Throwable e = f.handle((ok, x) -> x).join();
    return e instanceof CompletionException ? e.getCause() : e;
  }

  @Test
  void theCopyPlanNamesInSyncAndSyncingReplicasAndOnlyTheOwnerHasOne() {
    // n3 lost, then picked again for re-protection: in the plan, but not counted as a copy.
    ClusterMap map = TestMaps.apply(CREATED, MapCommands.removeReplica("v", "n3", 1));
    map = TestMaps.apply(map, MapCommands.addReplicas("v", 2, List.of()));
    assertThat(map.volume("v").orElseThrow().syncing()).containsExactly("n3");

    PeerReplicationPort.CopyPlan plan = PeerReplicationPort.CopyPlan.of("n1", map, "v");
    assertThat(plan.epoch()).isEqualTo(3);
    assertThat(plan.peers()).containsExactly("n2", "n3");
    assertThat(plan.inSync()).isEqualTo(1);
    assertThat(plan.underReplicated(2)).isTrue();
    assertThat(PeerReplicationPort.CopyPlan.of("n2", map, "v")).as("not the owner").isNull();
    assertThat(PeerReplicationPort.CopyPlan.of("n1", map, "gone")).isNull();

    // On-peer-loss accept: fewer copies are fine.
    ClusterMap accepting =
        TestMaps.apply(
            map,
            MapCommand.newBuilder()
                .setSetPolicy(
                    MapCommand.SetPolicy.newBuilder()
                        .setName("v")
                        .setMode(io.peerflash.proto.v1.CacheMode.WRITE_BACK)
                        .setReplicas(2)
                        .setOnPeerLoss(OnPeerLoss.ON_PEER_LOSS_ACCEPT))
                .build());
    PeerReplicationPort.CopyPlan accept = PeerReplicationPort.CopyPlan.of("n1", accepting, "v");
    assertThat(accept.acceptFewer()).isTrue();
    assertThat(accept.underReplicated(2)).isFalse();
  }

  @Test
  void aWritesCopiesGoToTheTargetsOfItsPlacementEvenWhenTheMapMovesOnBeforeTheySend()
      throws Exception {
    Placement placement = port.place(V);
    // After the placement, the owner's map drops n3: the write placed before still copies to it
    // (re-protection's barrier relies on writes keeping the targets they were placed with).
    ownerMap.set(TestMaps.apply(CREATED, MapCommands.removeReplica("v", "n3", 1)));

    placement.replicate(V, block(7, 1)).get(10, TimeUnit.SECONDS);

    assertThat(replicas.get("n2").dirtyBytes()).isEqualTo(4096);
    assertThat(replicas.get("n3").dirtyBytes()).isEqualTo(4096);
    assertThat(evictions.asked).isEmpty();
  }

  @Test
  void thePlacementCarriesTheVerdictsOfItsReadAndAdmitAsksTheAdmission() throws Exception {
    CacheException waitedOut = new CacheException(CacheException.Reason.UNAVAILABLE, "waited");
    PeerReplicationPort refusing =
        new PeerReplicationPort(
            v -> new PeerReplicationPort.Resolved(false, false, null),
            evictions,
            v -> {
              throw waitedOut;
            });
    Placement p = refusing.place(V);
    assertThat(p.mayServe()).isFalse();
    assertThat(p.admitsNow()).isFalse();
    assertThatThrownBy(() -> refusing.admit(V)).isSameAs(waitedOut);
    // No targets (not the owner) and a volume without replicas: no copies, nothing to wait for.
    assertThat(p.replicate(V, block(1, 1))).isNull();
    VolumeInfo unreplicated = new VolumeInfo(2, "v", SIZE, CacheMode.WRITE_BACK, 0, Role.OWNER);
    assertThat(port.place(unreplicated).replicate(unreplicated, block(1, 1))).isNull();
    assertThat(port.syncCopies(unreplicated)).isNull();
  }

  @Test
  void withEveryReplicaGoneTheWriteGoesThroughUnlessThePolicyAcceptsFewer() throws Exception {
    PeerReplicationPort.Targets none =
        new PeerReplicationPort.Targets(5, "n1", List.of(), 0, false);
    PeerReplicationPort bare = new PeerReplicationPort(v -> none, evictions);
    Throwable fewer = failure(bare.place(V).replicate(V, block(1, 1)));
    assertThat(fewer).isInstanceOf(ReplicaException.class).hasMessageContaining("0 of 2 replicas");
    assertThat(((ReplicaException) fewer).code()).isEqualTo(ReplicaException.Code.UNAVAILABLE);

    PeerReplicationPort.Targets accepted =
        new PeerReplicationPort.Targets(5, "n1", List.of(), 0, true);
    assertThat(new PeerReplicationPort(v -> accepted, evictions).place(V).replicate(V, block(1, 1)))
        .as("acknowledged from the local copy alone")
        .isNull();
  }

  @Test
  void aRefusedEpochIsResentAtTheNewerEpochOfTheOwnersMap() throws Exception {
    Placement placement = port.place(V); // epoch 1
    ClusterMap newer = nextEpoch(CREATED);
    replicaMap.set(newer);
    ownerMap.set(newer);

    placement.replicate(V, block(3, 1)).get(10, TimeUnit.SECONDS);

    for (Replica r : replicas.values()) {
      assertThat(r.refused).as(r.id + " refused the stale epoch once").containsExactly(1L);
      assertThat(r.dirtyBytes()).as(r.id + " took it at epoch 2").isEqualTo(4096);
    }
    assertThat(evictions.asked).as("a refusal is no loss").isEmpty();
  }

  @Test
  void anOwnerWhoseMapIsBehindTheReplicasWaitsForItToCatchUp() throws Exception {
    replicaMap.set(nextEpoch(CREATED)); // the replicas applied epoch 2, the owner not yet
    CompletableFuture<Void> write = port.place(V).replicate(V, block(3, 1));
    assertThat(replicas.get("n2").refused.poll(10, TimeUnit.SECONDS)).isEqualTo(1L);
    awaitPendingTimer();
    // On a stopped clock nothing but a move of it can end the wait.
    assertThat(write).as("still waiting for its own map").isNotDone();

    ownerMap.set(replicaMap.get());
    time.advanceMs(PeerReplicationPort.MAP_CATCH_UP_POLL_MS);
    write.get(10, TimeUnit.SECONDS);
    assertThat(replicas.get("n2").dirtyBytes()).isEqualTo(4096);
  }

  @Test
  void anOwnerWhoseMapNeverCatchesUpFailsTheWriteAsFencedAndEvictsNoOne() throws Exception {
    replicaMap.set(nextEpoch(CREATED));
    CompletableFuture<Void> write = port.place(V).replicate(V, block(3, 1));
    long waitedMs = 0;
    while (!write.isDone()) {
      awaitPendingTimerOr(write);
      if (!write.isDone()) {
        assertThat(waitedMs).as("gives up once the window is over").isLessThan(1_000);
        time.advanceMs(PeerReplicationPort.MAP_CATCH_UP_POLL_MS);
        waitedMs += PeerReplicationPort.MAP_CATCH_UP_POLL_MS;
      }
    }
    Throwable f = failure(write);
    assertThat(f).isInstanceOf(FencedException.class).hasMessageContaining("epoch 1");
    assertThat(waitedMs)
        .as("it gave its map the catch-up window first")
        .isEqualTo(PeerReplicationPort.MAP_CATCH_UP_MS);
    assertThat(evictions.asked).isEmpty();

    // No longer the owner by its map: fenced at once, without the wait.
    ClusterMap handedOver = TestMaps.apply(replicaMap.get(), MapCommands.changeOwner("v", "n2", 2));
    replicaMap.set(handedOver);
    Placement placed = port.place(V);
    ownerMap.set(handedOver);
    assertThat(failure(placed.replicate(V, block(4, 2)))).isInstanceOf(FencedException.class);
    assertThat(evictions.asked).isEmpty();
  }

  @Test
  void anUnreachableReplicaIsEvictedAtTheWritesEpochAndTheWriteGoesThrough() throws Exception {
    replicas.get("n3").stopServer();
    Throwable f = failure(port.place(V).replicate(V, block(9, 1)));

    assertThat(f).isInstanceOf(ReplicaException.class).hasMessageContaining("removed");
    assertThat(((ReplicaException) f).code()).isEqualTo(ReplicaException.Code.UNAVAILABLE);
    assertThat(evictions.asked).containsExactly("v/n3@1");
    assertThat(replicas.get("n2").dirtyBytes()).as("the reachable one has it").isEqualTo(4096);
  }

  @Test
  void anUnreachableReplicaThatCannotBeRemovedLeavesTheWriteStuck() throws Exception {
    evictions.removes = false; // no Raft leader to commit the removal
    replicas.get("n3").stopServer();
    Throwable f = failure(port.place(V).replicate(V, block(9, 1)));
    assertThat(f).isInstanceOf(StuckException.class).hasMessageContaining("not acknowledged");
    assertThat(evictions.asked).containsExactly("v/n3@1");
  }

  @Test
  void aFlushSyncsTheInSyncReplicasOnlyAndGoesThroughWhenTheyAreTooFew() throws Exception {
    assertThat(port.syncCopies(V).get(10, TimeUnit.SECONDS)).isEqualTo(CopiesSynced.SYNCED);

    // n3 syncing and down: not asked (asked, its failure would fail the flush), and one copy of
    // two is too few.
    replicas.get("n3").stopServer();
    ClusterMap syncing = TestMaps.apply(CREATED, MapCommands.removeReplica("v", "n3", 1));
    syncing = TestMaps.apply(syncing, MapCommands.addReplicas("v", 2, List.of()));
    ownerMap.set(syncing);
    replicaMap.set(syncing);
    assertThat(port.syncCopies(V).get(10, TimeUnit.SECONDS)).isEqualTo(CopiesSynced.GO_THROUGH);

    // An in-sync replica that cannot sync while the map lists it fails the flush.
    ownerMap.set(CREATED);
    replicaMap.set(CREATED);
    Throwable f = failure(port.syncCopies(V));
    assertThat(f).isInstanceOf(ReplicaException.class).hasMessageContaining("replica n3");
    assertThat(evictions.asked).isEmpty();
  }

  @Test
  void releasesReachEveryReplicaAndOneThatMissesARelease() throws Exception {
    port.place(V).replicate(V, block(5, 1)).get(10, TimeUnit.SECONDS);
    port.released(V, new long[] {5}, new long[] {1});
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (replicas.values().stream().anyMatch(r -> r.dirtyBytes() > 0)) {
      assertThat(System.nanoTime() - deadline).as("both dropped the released copy").isNegative();
      Thread.sleep(10);
    }

    // A replica that misses a release could later write a stale copy back: it is evicted.
    port.place(V).replicate(V, block(6, 2)).get(10, TimeUnit.SECONDS);
    replicas.get("n3").stopServer();
    port.released(V, new long[] {6}, new long[] {2});
    assertThat(evictions.asked.poll(10, TimeUnit.SECONDS)).isEqualTo("v/n3@1");
  }
}
