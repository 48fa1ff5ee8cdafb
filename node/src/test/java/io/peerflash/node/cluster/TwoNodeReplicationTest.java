package io.peerflash.node.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.peerflash.node.engine.CacheEngine;
import io.peerflash.node.engine.CacheException;
import io.peerflash.node.engine.EngineConfig;
import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.index.VolumeInfo.Role;
import io.peerflash.node.storage.FileBackingStore;
import io.peerflash.proto.v1.BlockImage;
import io.peerflash.replication.data.EpochGuard;
import io.peerflash.replication.data.PeerReplicator;
import io.peerflash.replication.data.ReplicaException;
import io.peerflash.replication.data.ReplicaGrpcService;
import io.peerflash.replication.data.TransportThreadCalls;
import io.peerflash.replication.fault.FaultPoints;
import io.peerflash.security.GrpcTls;
import io.peerflash.security.Identities;
import io.peerflash.security.TlsDirectory;
import io.peerflash.testing.TestCertificates;
import io.peerflash.util.NamedThreadFactory;
import io.peerflash.util.Time;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * An owner engine copying every write-back write to a replica engine over real gRPC sockets with
 * mutual TLS (the owner presents node "owner"'s certificate, as a node does to its peers): the
 * replica holds every acknowledged write, drops copies once the owner destaged them, serves them
 * after taking over, and a lost replica makes writes go through to shared storage.
 */
class TwoNodeReplicationTest {
  private static final long VOLUME = 4 << 20;
  @TempDir Path dir;
  private final TestCertificates certs = TestCertificates.shared();
  private final AtomicLong epoch = new AtomicLong(1);
  private ScheduledExecutorService timers;
  private CacheEngine owner;
  private CacheEngine replica;
  private Server replicaServer;
  private final ExecutorService applyPool =
      Executors.newFixedThreadPool(2, new NamedThreadFactory("test-replica-apply", true));
  private int replicaPort;
  private ManagedChannel channel;
  private PeerReplicator toReplica;
  private final byte[] model = new byte[(int) VOLUME];

  @BeforeEach
  void start() throws Exception {
    timers =
        Executors.newSingleThreadScheduledExecutor(new NamedThreadFactory("test-timers", true));
    owner = engine("owner", 0.9, 0.8);
    replica = engine("replica", 0.9, 0.8);
    replica.createVolume("v", VOLUME, CacheMode.WRITE_BACK, 1);
    replica.setRole("v", Role.REPLICA);
    startReplicaServer(0);
    channel =
        NettyChannelBuilder.forAddress("127.0.0.1", replicaPort)
            .sslContext(
                GrpcTls.peerClientContext(TlsDirectory.open(certs.node("owner")), "replica"))
            .build();
    toReplica = new PeerReplicator("replica", channel, timers, 300);
    owner.setReplicationPort(
        new PeerReplicationPort(
            v -> new PeerReplicationPort.Targets(epoch.get(), "owner", List.of(toReplica))));
    // The replica's create made the shared backing file: the owner takes it as it is.
    owner.createVolume("v", VOLUME, CacheMode.WRITE_BACK, 1, true);
  }

  private CacheEngine engine(String name, double high, double low) throws Exception {
    // Both nodes see the same shared storage.
    CacheEngine e =
        CacheEngine.open(
            EngineConfig.defaults(dir.resolve(name), 16 << 20).withDestage(high, low, 60_000),
            new FileBackingStore(dir.resolve("shared")),
            Time.SYSTEM);
    e.start();
    return e;
  }

  private void startReplicaServer(int port) throws Exception {
    EpochGuard guard =
        (volume, e, ownerId) -> {
          if (e < epoch.get()) {
            throw ReplicaException.staleEpoch(volume, e, epoch.get());
          }
        };
    TlsDirectory tls = TlsDirectory.open(certs.node("replica"));
    NettyServerBuilder builder =
        NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", port))
            .sslContext(GrpcTls.serverContext(tls))
            .intercept(Identities.interceptor(tls))
            .addService(new ReplicaGrpcService(replica.replicaSink(), guard, applyPool));
    TransportThreadCalls.serve(builder, applyPool, ReplicaGrpcService.replicateMethod());
    replicaServer = builder.build().start();
    replicaPort = replicaServer.getPort();
  }

  @AfterEach
  void stop() {
    toReplica.close();
    channel.shutdownNow();
    replicaServer.shutdownNow();
    applyPool.shutdownNow();
    if (owner != null) {
      owner.close();
    }
    replica.close();
    timers.shutdownNow();
  }

  private void write(long offset, byte[] data) throws CacheException {
    owner.write("v", offset, ByteBuffer.wrap(data));
    System.arraycopy(data, 0, model, (int) offset, data.length);
  }

  private void randomWrites(Random rnd, int n) throws CacheException {
    for (int i = 0; i < n; i++) {
      int len = 512 * (1 + rnd.nextInt(32));
      long off = 512L * rnd.nextInt((int) ((VOLUME - len) / 512));
      byte[] data = new byte[len];
      rnd.nextBytes(data);
      write(off, data);
    }
  }

  private byte[] shared() throws Exception {
    return Files.readAllBytes(dir.resolve("shared").resolve("v"));
  }

  @Test
  void replicaHoldsEveryAcknowledgedWriteAndServesItAfterTakeover() throws Exception {
    randomWrites(new Random(1), 400);
    owner.trim("v", 8192, 16384);
    Arrays.fill(model, 8192, 8192 + 16384, (byte) 0);
    long ownerDirty = owner.volumeStatus("v").dirtyBytes();
    assertThat(replica.volumeStatus("v").dirtyBytes()).isEqualTo(ownerDirty).isPositive();
    // The owner dies with everything dirty; the replica takes over (epoch + 1).
    owner.close();
    owner = null;
    epoch.incrementAndGet();
    replica.setRole("v", Role.OWNER);
    byte[] served = new byte[(int) VOLUME];
    for (int off = 0; off < VOLUME; off += 1 << 20) {
      System.arraycopy(replica.read("v", off, 1 << 20), 0, served, off, 1 << 20);
    }
    assertThat(Arrays.equals(served, model))
        .as("new owner serves every acknowledged write")
        .isTrue();
    replica.flush("v");
    assertThat(Arrays.equals(shared(), model)).as("and destages them").isTrue();
  }

  @Test
  void replicaDropsCopiesTheOwnerDestaged() throws Exception {
    randomWrites(new Random(2), 200);
    assertThat(replica.volumeStatus("v").dirtyBytes()).isPositive();
    owner.flush("v");
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (replica.volumeStatus("v").dirtyBytes() > 0 && System.nanoTime() < deadline) {
      Thread.sleep(20);
    }
    assertThat(replica.volumeStatus("v").dirtyBytes()).isZero();
    assertThat(replica.status().cacheUsedBytes()).isZero();
    assertThat(Arrays.equals(shared(), model)).isTrue();
  }

  @Test
  void lostReplicaMakesWritesGoThroughToSharedStorage() throws Exception {
    randomWrites(new Random(3), 20);
    replicaServer.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    byte[] data = new byte[4096];
    new Random(4).nextBytes(data);
    long start = System.nanoTime();
    write(1 << 20, data);
    long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
    // Acknowledged only once on shared storage, within the replication ack timeout + a destage.
    assertThat(Arrays.copyOfRange(shared(), 1 << 20, (1 << 20) + 4096)).isEqualTo(data);
    assertThat(ms).isLessThan(5000);
  }

  /**
   * A replica decides a copy's epoch check and its store as one: a copy that arrived at epoch 1 and
   * is held just before that decision while the map moves to epoch 2 and the new epoch's reset
   * drops every older copy is refused as stale, not stored after the reset (where no release of the
   * new owner would ever remove it).
   */
  @Test
  void aCopyHeldWhileANewerEpochsResetRunsIsRefusedNotStoredAfterIt() throws Exception {
    FaultPoints faults = new FaultPoints();
    replica.setFaultPoints(faults);
    faults.arm(FaultPoints.REPLICA_APPLY, "v", FaultPoints.Action.HOLD, 30_000, 1);
    // Its own replicator with a long ack timeout: the copy is held on purpose.
    PeerReplicator patient = new PeerReplicator("replica", channel, timers, 30_000);
    try {
      byte[] data = new byte[4096];
      Arrays.fill(data, (byte) 7);
      BlockImage image =
          BlockImage.newBuilder()
              .setBlock(5)
              .setSeq(1000)
              .setData(com.google.protobuf.ByteString.copyFrom(data))
              .build();
      CompletableFuture<Void> copy = patient.replicate("v", 1, "owner", List.of(image));
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
      while (faults.fired(FaultPoints.REPLICA_APPLY) == 0) {
        assertThat(System.nanoTime()).as("the copy reaches the replica").isLessThan(deadline);
        Thread.sleep(5);
      }
      epoch.set(2);
      replica.resetReplica("v", Reconciliation.sequenceFloor(2));
      faults.releaseHolds();

      assertThatThrownBy(() -> copy.get(20, TimeUnit.SECONDS))
          .hasCauseInstanceOf(ReplicaException.class)
          .hasMessageContaining("epoch");
      assertThat(((ReplicaException) failureOf(copy)).code())
          .isEqualTo(ReplicaException.Code.FAILED_PRECONDITION);
      assertThat(replica.describeCopies("v")[1]).as("copies held after the reset").isZero();
    } finally {
      patient.close();
    }
  }

  private static Throwable failureOf(CompletableFuture<Void> f) {
    try {
      f.join();
      return null;
    } catch (java.util.concurrent.CompletionException e) {
      return e.getCause();
    }
  }

  @Test
  void staleOwnerGetsNoAcknowledgement() throws Exception {
    write(0, new byte[4096]);
    epoch.set(7); // the cluster moved on; this owner still writes with its old epoch
    // As in the cluster, a stale owner cannot take the replica out of the map either (its
    // compare-and-set on the old epoch fails): whether the refusal or an ack timeout comes first
    // on a loaded machine, the write is not acknowledged.
    PeerReplicationPort stale =
        new PeerReplicationPort(
            v -> new PeerReplicationPort.Targets(6, "owner", List.of(toReplica)),
            (volume, peer, e) -> java.util.concurrent.CompletableFuture.completedFuture(false));
    owner.setReplicationPort(stale);
    byte[] data = new byte[4096];
    Arrays.fill(data, (byte) 9);
    assertThatThrownBy(() -> owner.write("v", 0, ByteBuffer.wrap(data)))
        .isInstanceOf(CacheException.class)
        .satisfies(
            e ->
                assertThat(e.getMessage())
                    .containsAnyOf("no longer its owner", "could not be removed"));
    // Nothing reached shared storage on its behalf.
    assertThat(Arrays.copyOfRange(shared(), 0, 4096)).isEqualTo(new byte[4096]);
  }

  /**
   * The replica applied an epoch change (a policy change, re-protection) a moment before the owner
   * did: the owner, still the owner, waits for its own map to catch up and resends, instead of
   * failing the write with "no longer its owner".
   */
  @Test
  void anOwnerWhoseMapIsAMomentBehindItsReplicaWaitsForItInsteadOfFailingTheWrite()
      throws Exception {
    write(0, new byte[4096]);
    epoch.set(8);
    java.util.concurrent.atomic.AtomicInteger lookups =
        new java.util.concurrent.atomic.AtomicInteger();
    // The owner's map shows epoch 7 for the first attempt and two more looks, then 8.
    owner.setReplicationPort(
        new PeerReplicationPort(
            v ->
                new PeerReplicationPort.Targets(
                    lookups.incrementAndGet() <= 3 ? 7 : 8, "owner", List.of(toReplica))));
    byte[] data = new byte[4096];
    Arrays.fill(data, (byte) 5);
    write(0, data);
    assertThat(lookups.get()).isGreaterThan(3);
    assertThat(replica.describeCopies("v")[0])
        .as("highest sequence the replica holds")
        .isPositive();
  }

  @Test
  void replicaThatCanNeitherBeReachedNorRemovedFailsTheWriteRetryably() throws Exception {
    // No Raft leader reachable: the unreachable replica stays in the map, so the write must not
    // be acknowledged at all (not even through shared storage): that replica could still take
    // the volume over without it.
    owner.setReplicationPort(
        new PeerReplicationPort(
            v -> new PeerReplicationPort.Targets(epoch.get(), "owner", List.of(toReplica)),
            (volume, peer, e) -> java.util.concurrent.CompletableFuture.completedFuture(false)));
    replicaServer.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    byte[] data = new byte[4096];
    Arrays.fill(data, (byte) 5);
    assertThatThrownBy(() -> owner.write("v", 8192, ByteBuffer.wrap(data)))
        .isInstanceOf(CacheException.class)
        .hasMessageContaining("could not be removed from the cluster map")
        .satisfies(
            e ->
                assertThat(((CacheException) e).reason())
                    .isEqualTo(CacheException.Reason.UNAVAILABLE));
    assertThat(Arrays.copyOfRange(shared(), 8192, 8192 + 4096)).isEqualTo(new byte[4096]);
  }

  // ---------------------------------------------------------------------------------------------
  // FLUSH (CacheEngine.syncVolume): the owner's sync and the replica's

  private void syncVolume() throws Exception {
    try {
      owner.syncVolume("v", applyPool).get(20, TimeUnit.SECONDS);
    } catch (ExecutionException e) {
      throw (Exception) e.getCause();
    }
  }

  @Test
  void aFlushSyncsTheReplicasFlashToo() throws Exception {
    randomWrites(new Random(5), 20);
    long replicaSyncs = replica.localSyncRequests();
    long replicaFsyncs = replica.localFsyncs();
    long ownerFsyncs = owner.localFsyncs();
    syncVolume();
    assertThat(replica.localSyncRequests() - replicaSyncs).isEqualTo(1);
    assertThat(replica.localFsyncs() - replicaFsyncs).isEqualTo(1);
    assertThat(owner.localFsyncs() - ownerFsyncs).isEqualTo(1);
    assertThat(shared()).as("nothing destaged").isEqualTo(new byte[(int) VOLUME]);
  }

  @Test
  void aFlushFailsWhileAReplicaTheMapListsCannotSync() throws Exception {
    randomWrites(new Random(6), 20);
    replicaServer.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    assertThatThrownBy(this::syncVolume)
        .isInstanceOfSatisfying(
            CacheException.class,
            e -> assertThat(e.reason()).isEqualTo(CacheException.Reason.UNAVAILABLE))
        .hasMessageContaining("replica replica did not make its copies durable");
  }

  /**
   * The replica cannot sync and is out of the volume's replicas by the time its failure is known
   * (the map listed it when the flush began, not afterwards).
   */
  private void replicaRemovedDuringTheFlush(boolean acceptFewer) throws Exception {
    java.util.concurrent.atomic.AtomicInteger lookups =
        new java.util.concurrent.atomic.AtomicInteger();
    owner.setReplicationPort(
        new PeerReplicationPort(
            v ->
                lookups.incrementAndGet() == 1
                    ? new PeerReplicationPort.Targets(
                        epoch.get(), "owner", List.of(toReplica), 1, acceptFewer)
                    : new PeerReplicationPort.Targets(
                        epoch.get(), "owner", List.of(), 0, acceptFewer)));
    replicaServer.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
  }

  @Test
  void underAcceptAFlushWhoseReplicaWasRemovedMeanwhileCoversTheCopiesThatExist() throws Exception {
    randomWrites(new Random(7), 20);
    long dirty = owner.volumeStatus("v").dirtyBytes();
    replicaRemovedDuringTheFlush(true);
    syncVolume();
    assertThat(owner.volumeStatus("v").dirtyBytes()).as("nothing destaged").isEqualTo(dirty);
  }

  @Test
  void otherwiseAFlushWhoseReplicaWasRemovedMeanwhileGoesThroughToSharedStorage() throws Exception {
    randomWrites(new Random(8), 20);
    replicaRemovedDuringTheFlush(false);
    syncVolume();
    assertThat(owner.volumeStatus("v").dirtyBytes()).isZero();
    assertThat(Arrays.equals(shared(), model)).as("shared storage has every write").isTrue();
  }

  @Test
  void aReplicaAtANewerEpochIsAskedAgainAtTheOwnersNewerOne() throws Exception {
    write(0, new byte[4096]);
    epoch.set(8);
    java.util.concurrent.atomic.AtomicInteger lookups =
        new java.util.concurrent.atomic.AtomicInteger();
    // The owner's map shows epoch 7 when the flush begins, then 8.
    owner.setReplicationPort(
        new PeerReplicationPort(
            v ->
                new PeerReplicationPort.Targets(
                    lookups.incrementAndGet() == 1 ? 7 : 8, "owner", List.of(toReplica))));
    long replicaSyncs = replica.localSyncRequests();
    syncVolume();
    assertThat(lookups.get()).isGreaterThan(1);
    assertThat(replica.localSyncRequests() - replicaSyncs).isEqualTo(1);
  }
}
