package io.peerflash.node.cluster;

import static io.peerflash.node.cluster.InProcessCluster.await;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import io.peerflash.client.PeerFlashClient;
import io.peerflash.client.PeerFlashException;
import io.peerflash.node.PeerFlashNode;
import io.peerflash.node.engine.CacheException;
import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.ClusterEvent;
import io.peerflash.proto.v1.ClusterEventKind;
import io.peerflash.proto.v1.ListClusterEventsRequest;
import io.peerflash.proto.v1.ListClusterEventsResponse;
import io.peerflash.proto.v1.OnPeerLoss;
import io.peerflash.proto.v1.ReplicaStatus;
import io.peerflash.proto.v1.Volume;
import io.peerflash.replication.fault.FaultPoints;
import io.peerflash.replication.fault.FaultPoints.Action;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.LoggerFactory;

/**
 * Failures injected at named points of real nodes (real Raft, gRPC, RocksDB, files in one JVM):
 * lost replicas and re-protection, crashes between steps, partitions, slow links, the on-peer-loss
 * policies, and rolling restarts under load. Every scenario ends with the same checks: every
 * acknowledged write reads back, no read returned older data, and after Flush shared storage equals
 * the model byte for byte.
 */
class ClusterFaultTest {
  private static final long VOLUME = 2 << 20;
  private static final int BLOCK = 4096;
  @TempDir Path dir;
  private InProcessCluster cluster;

  @AfterEach
  void stop() {
    if (cluster != null) {
      cluster.close();
    }
  }

  private InProcessCluster start(int n, Map<String, String> extra) throws Exception {
    cluster = new InProcessCluster(dir, n, extra);
    return cluster;
  }

  /** Writes {@code n} seeded random blocks, each acknowledged, into the model. */
  private static void writeBlocks(
      PeerFlashClient c, String volume, byte[] model, long seed, int n) {
    Random rnd = new Random(seed);
    for (int i = 0; i < n; i++) {
      int block = rnd.nextInt(model.length / BLOCK);
      byte[] data = new byte[BLOCK];
      rnd.nextBytes(data);
      c.write(volume, (long) block * BLOCK, data);
      System.arraycopy(data, 0, model, block * BLOCK, BLOCK);
    }
  }

  /** Reads the whole volume (retrying while a failover is in progress) and compares. */
  private void assertServes(String volume, byte[] model) throws Exception {
    try (PeerFlashClient c = cluster.client()) {
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(40);
      byte[] all = new byte[model.length];
      for (int off = 0; off < model.length; ) {
        try {
          byte[] part = c.read(volume, off, 1 << 20);
          System.arraycopy(part, 0, all, off, part.length);
          off += part.length;
        } catch (PeerFlashException e) {
          if (System.nanoTime() > deadline) {
            throw e;
          }
          Thread.sleep(50);
        }
      }
      assertThat(Arrays.equals(all, model))
          .as("%s serves every acknowledged write", volume)
          .isTrue();
    }
  }

  private void assertFlushedToStorage(String volume, byte[] model) throws Exception {
    try (PeerFlashClient c = cluster.client()) {
      c.flush(volume);
    }
    assertThat(Arrays.equals(Files.readAllBytes(dir.resolve("shared").resolve(volume)), model))
        .as("shared storage equals the model after Flush")
        .isTrue();
  }

  private String ownerOf(String volume) {
    return cluster.volume(volume).getOwner();
  }

  private List<String> inSyncReplicas(String volume) throws Exception {
    return cluster.volumeFromOwner(volume).getReplicasList().stream()
        .filter(ReplicaStatus::getInSync)
        .map(ReplicaStatus::getNode)
        .toList();
  }

  /** Waits until vm1's in-sync replicas, as its owner reports them, satisfy {@code test}. */
  private void awaitInSync(
      java.util.function.Predicate<List<String>> test, int seconds, String what)
      throws InterruptedException {
    await(
        () -> {
          try {
            return test.test(inSyncReplicas("vm1"));
          } catch (Exception e) {
            return false; // owner changing or restarting
          }
        },
        seconds,
        what);
  }

  private String otherThan(String... ids) {
    List<String> taken = List.of(ids);
    return cluster.nodes.keySet().stream().filter(id -> !taken.contains(id)).findFirst().get();
  }

  private static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /** Who holds vm1 after {@link #dirtyVolumeWithOneReplica}. */
  private record Placement(byte[] model, String owner, String replica, String spare) {}

  /**
   * Three nodes with slow shared storage (so data stays dirty long enough for re-protection to have
   * work to do); vm1 owned by n1 with one replica, and {@code writes} dirty blocks in it.
   */
  private Placement dirtyVolumeWithOneReplica(int storageLatencyUs, long seed, int writes)
      throws Exception {
    start(
        3,
        Map.of("storage-latency-us", String.valueOf(storageLatencyUs), "destage-batch", "16KiB"));
    byte[] model = new byte[(int) VOLUME];
    try (PeerFlashClient c = cluster.client("n1")) {
      c.createVolume("vm1", VOLUME, CacheMode.WRITE_BACK, 1);
      writeBlocks(c, "vm1", model, seed, writes);
    }
    String owner = ownerOf("vm1");
    String replica = cluster.volume("vm1").getStateDetail().contains("[n2]") ? "n2" : "n3";
    return new Placement(model, owner, replica, otherThan(owner, replica));
  }

  // --------------------------------------------------------------------------- re-protection

  @Test
  void lostReplicaIsReplacedAndTheNewReplicaCanTakeOver() throws Exception {
    Placement p = dirtyVolumeWithOneReplica(40000, 1, 300);
    byte[] model = p.model();
    String owner = p.owner();
    String lost = p.replica();
    String spare = p.spare();
    // The replica dies while writes run.
    try (RetryingWriter w =
        new RetryingWriter(cluster.client(), "vm1", VOLUME, 11, 30_000).start()) {
      w.awaitMore(20, 30);
      cluster.crash(lost);
      awaitInSync(r -> r.equals(List.of(spare)), 40, "re-protection to " + spare);
      long copied = cluster.node(spare).engine().volumeStatus("vm1").dirtyBytes();
      assertThat(copied).as("the new replica received the owner's dirty blocks").isPositive();
      w.awaitMore(10, 30);
      w.close();
      mergeInto(model, w);
    }

    // Writes go on, and the new replica alone is enough to take over with everything. (The lost
    // node comes back first, empty of this volume, so that Raft keeps a majority of three.)
    try (PeerFlashClient c = cluster.client()) {
      writeBlocks(c, "vm1", model, 2, 50);
    }
    cluster.nodes.put(lost, PeerFlashNode.start(cluster.configs.get(lost)));
    cluster.awaitReady();
    cluster.crash(owner);
    assertServes("vm1", model);
    assertThat(ownerOf("vm1")).isEqualTo(spare);
    assertFlushedToStorage("vm1", model);
    assertHistoryTells(owner, lost, spare);
  }

  /**
   * The event history says, in order: the replica left, re-protection filled the spare until it was
   * in sync, the owner went DOWN and the spare took over with an epoch that fences the old owner;
   * every live node keeps the same history.
   */
  private void assertHistoryTells(String owner, String lost, String spare)
      throws InterruptedException {
    ListClusterEventsResponse fromSpare;
    ListClusterEventsResponse fromLost;
    try (PeerFlashClient a = cluster.client(spare);
        PeerFlashClient b = cluster.client(lost)) {
      ListClusterEventsRequest all = ListClusterEventsRequest.getDefaultInstance();
      fromSpare = a.clusterEvents(all);
      await(
          () -> b.clusterEvents(all).getLastSeq() >= a.clusterEvents(all).getLastSeq(),
          30,
          lost + " applied the same events");
      fromLost = b.clusterEvents(ListClusterEventsRequest.newBuilder().setLimit(0).build());
    }
    List<ClusterEvent> events = fromSpare.getEventsList();
    assertThat(fromLost.getEventsList()).startsWith(events.toArray(ClusterEvent[]::new));
    List<String> story =
        events.stream()
            .filter(e -> e.getVolume().equals("vm1") || e.getVolume().isEmpty())
            .map(e -> e.getKind().name() + " " + e.getNode())
            .toList();
    // The lost replica leaves the volume's copies either when its lease lapses (DOWN) or, first,
    // when the owner takes it out for a copy it did not take.
    int reprotected = story.indexOf("EVENT_REPROTECTION_STARTED " + spare);
    assertThat(reprotected).as("%s", story).isPositive();
    assertThat(story.subList(0, reprotected))
        .containsAnyOf("EVENT_MEMBER_DOWN " + lost, "EVENT_REPLICA_REMOVED " + lost);
    assertThat(story)
        .containsSubsequence(
            "EVENT_REPROTECTION_STARTED " + spare,
            "EVENT_REPLICA_IN_SYNC " + spare,
            "EVENT_MEMBER_DOWN " + owner,
            "EVENT_FAILOVER " + spare);
    ClusterEvent failover =
        events.stream()
            .filter(e -> e.getKind() == ClusterEventKind.EVENT_FAILOVER)
            .reduce((first, second) -> second)
            .orElseThrow();
    assertThat(failover.getDetail())
        .contains("owner " + owner + " (DOWN) -> " + spare)
        .contains("fences " + owner)
        .contains("reason: owner " + owner + " is DOWN");
    assertThat(failover.getTimeMs()).isPositive();
    assertThat(failover.getEpoch()).isGreaterThan(1);
  }

  @Test
  void peerThatMissesCopiesIsRemovedAndAPeerIsFilledAgain() throws Exception {
    Placement p = dirtyVolumeWithOneReplica(20000, 3, 200);
    byte[] model = p.model();
    String owner = p.owner();
    String lost = p.replica();
    String spare = p.spare();
    FaultPoints faults = cluster.node(owner).faults();
    // Two batches to the new peer are lost on the wire (copies or new writes, whichever come
    // first): each time the peer is taken out of the map before anything is acknowledged without
    // it, and re-protection fills a peer again.
    faults.arm(FaultPoints.REPLICATE_SEND, owner + ">" + spare, Action.DROP, 0, 2);
    cluster.crash(lost);
    try (RetryingWriter w =
        new RetryingWriter(cluster.client(), "vm1", VOLUME, 4, 30_000).start()) {
      await(() -> faults.fired(FaultPoints.REPLICATE_SEND) == 2, 60, "both batches dropped");
      awaitInSync(r -> r.equals(List.of(spare)), 60, "re-protection after the lost batches");
      w.awaitMore(20, 30);
      w.close();
      mergeInto(model, w);
    }
    // The lost node returns (a Raft majority of three again), then the owner dies: the peer
    // that was filled again takes over with everything.
    cluster.nodes.put(lost, PeerFlashNode.start(cluster.configs.get(lost)));
    cluster.awaitReady();
    awaitInSync(r -> r.size() == 1, 60, "a replica in sync");
    cluster.crash(owner);
    assertServes("vm1", model);
    assertFlushedToStorage("vm1", model);
  }

  /** The writer's model starts from zeros; blocks it never wrote keep the earlier model's data. */
  private static void mergeInto(byte[] model, RetryingWriter w) {
    byte[] zero = new byte[BLOCK];
    for (int off = 0; off < model.length; off += BLOCK) {
      if (!Arrays.equals(w.model, off, off + BLOCK, zero, 0, BLOCK)) {
        System.arraycopy(w.model, off, model, off, BLOCK);
      }
    }
  }

  @Test
  void failoverNeverPicksAPeerThatIsNotInSync() throws Exception {
    Placement p = dirtyVolumeWithOneReplica(40000, 5, 200);
    byte[] model = p.model();
    String owner = p.owner();
    String lost = p.replica();
    String spare = p.spare();
    // The owner copies everything to the spare, then crashes before committing it in sync.
    cluster.node(owner).faults().arm(FaultPoints.REPROTECT_BEFORE_IN_SYNC, spare, Action.CRASH);
    cluster.crash(lost);
    FaultPoints faults = cluster.node(owner).faults();
    await(
        () -> faults.fired(FaultPoints.REPROTECT_BEFORE_IN_SYNC) > 0,
        60,
        "the owner to crash before committing in-sync");
    cluster.nodes.remove(owner);
    // The spare holds copies, but not provably all of them: it must never take over. The lost
    // node comes back (no longer a replica of this volume) so that Raft has a majority again:
    // then the owner is marked down and the leader decides on a failover, which must find no
    // replica to promote.
    ListAppender<ILoggingEvent> clusterLog = new ListAppender<>();
    clusterLog.start();
    Logger clusterNodeLog = (Logger) LoggerFactory.getLogger(LeaderFailover.class);
    clusterNodeLog.addAppender(clusterLog);
    try {
      cluster.nodes.put(lost, PeerFlashNode.start(cluster.configs.get(lost)));
      cluster.awaitReady();
      await(
          () ->
              cluster.nodes.values().stream()
                  .allMatch(
                      n ->
                          n.cluster()
                              .controlPlane()
                              .map()
                              .member(owner)
                              .map(m -> !m.isAlive())
                              .orElse(false)),
          60,
          "the crashed owner to be marked down");
      String refusal = "volume vm1: owner " + owner + " is down and no live replica holds its data";
      await(
          () -> {
            synchronized (clusterLog) { // the appender appends under its own lock
              return clusterLog.list.stream()
                  .anyMatch(e -> e.getFormattedMessage().startsWith(refusal));
            }
          },
          30,
          "the leader's failover decision on vm1");
    } finally {
      clusterNodeLog.detachAppender(clusterLog);
    }
    Volume v = cluster.volume("vm1");
    assertThat(v.getOwner()).isEqualTo(owner);
    assertThat(v.getEffectiveReplicas()).isZero();
    try (PeerFlashClient c = cluster.client(spare)) {
      assertThatThrownBy(() -> c.read("vm1", 0, BLOCK)).isInstanceOf(PeerFlashException.class);
    }
    // The owner comes back with its flash: everything acknowledged is served again.
    cluster.nodes.put(owner, PeerFlashNode.start(cluster.configs.get(owner)));
    cluster.awaitReady();
    assertServes("vm1", model);
    assertFlushedToStorage("vm1", model);
  }

  // --------------------------------------------------------------------------- partitions

  @Test
  void partitionedOwnerStopsAcknowledgingAndAReplicaTakesOver() throws Exception {
    start(3, Map.of());
    String leader = cluster.node("n1").cluster().controlPlane().leaderId().orElseThrow();
    // The owner must not be the Raft leader: cutting the leader off would stop the decisions.
    String owner = leader.equals("n1") ? "n2" : "n1";
    try (PeerFlashClient c = cluster.client(owner)) {
      c.createVolume("vm1", VOLUME, CacheMode.WRITE_BACK, 1);
    }
    long cutAt;
    try (RetryingWriter w =
        new RetryingWriter(cluster.client(), "vm1", VOLUME, 6, 30_000).start()) {
      w.awaitMore(200, 30);
      // Cut the owner off: no lease heartbeats, no Raft commands, no copies to its peers.
      FaultPoints faults = cluster.node(owner).faults();
      faults.arm(FaultPoints.LEASE_HEARTBEAT, owner, Action.DROP);
      faults.arm(FaultPoints.RAFT_SUBMIT, owner, Action.DROP);
      faults.arm(FaultPoints.REPLICATE_SEND, "*", Action.DROP);
      cutAt = System.nanoTime();
      await(() -> !ownerOf("vm1").equals(owner), 30, "failover away from the cut-off owner");
      long failoverMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - cutAt);
      w.awaitMore(200, 30);
      // Heal: the old owner rejoins, finds itself superseded and drops its copies.
      faults.disarmAll();
      await(
          () ->
              cluster.node(owner).engine().listVolumes().stream()
                  .noneMatch(v -> v.name().equals("vm1")),
          30,
          "the old owner to drop its superseded copies");
      w.awaitMore(100, 30);
      System.out.printf(
          "partition: failover in %d ms, %d writes acknowledged, longest write %d ms%n",
          failoverMs, w.acknowledged.get(), w.longestWriteMs.get());
      w.close();
      assertServes("vm1", w.model);
      assertFlushedToStorage("vm1", w.model);
    }
  }

  @Test
  void anOwnerWhoseFlashFailsAnFsyncStopsAndAReplicaTakesOver() throws Exception {
    start(3, Map.of("sync", "true"));
    String leader = cluster.node("n1").cluster().controlPlane().leaderId().orElseThrow();
    ownerWhoseFlashFailsIsReplaced(leader.equals("n1") ? "n2" : "n1");
  }

  @Test
  void aLeaderWhoseFlashFailsAnFsyncMarksItselfDownAndAReplicaTakesOver() throws Exception {
    start(3, Map.of("sync", "true"));
    // No other node judges the leader: it must mark itself DOWN once its heartbeats are held.
    String leader = cluster.node("n1").cluster().controlPlane().leaderId().orElseThrow();
    ownerWhoseFlashFailsIsReplaced(leader);
    try (PeerFlashClient c = cluster.client(otherThan(leader))) {
      ClusterEvent down =
          c.clusterEvents(ListClusterEventsRequest.getDefaultInstance()).getEventsList().stream()
              .filter(e -> e.getKind() == ClusterEventKind.EVENT_MEMBER_DOWN)
              .filter(e -> e.getNode().equals(leader))
              .findFirst()
              .orElseThrow();
      assertThat(down.getProposedBy()).as("who marked %s DOWN", leader).isEqualTo(leader);
    }
  }

  private void ownerWhoseFlashFailsIsReplaced(String owner) throws Exception {
    try (PeerFlashClient c = cluster.client(owner)) {
      c.createVolume("vm1", VOLUME, CacheMode.WRITE_BACK, 1);
    }
    try (RetryingWriter w =
        new RetryingWriter(cluster.client(), "vm1", VOLUME, 8, 30_000).start()) {
      w.awaitMore(100, 30);
      // Every fsync of the owner's cache file fails from now on, as a failing disk's would.
      cluster.node(owner).faults().arm(FaultPoints.LOCAL_FSYNC, "*", Action.DROP);
      await(
          () -> cluster.node(owner).engine().localFailure() != null,
          30,
          "a write to meet the failing fsync");
      // It acknowledges nothing more and stops renewing its lease: the replica takes over.
      await(() -> !ownerOf("vm1").equals(owner), 30, "failover away from the failed owner");
      w.awaitMore(100, 30);
      w.close();
      assertServes("vm1", w.model);
      assertFlushedToStorage("vm1", w.model);
    }
    try (PeerFlashClient c = cluster.client(owner)) {
      assertThat(c.status().getLocalFlashFailure()).contains("fsync of the cache file");
    }
  }

  @Test
  void slowLinkShowsAsLagAndALinkPastTheAckTimeoutLosesItsReplica() throws Exception {
    start(3, Map.of());
    byte[] model = new byte[(int) VOLUME];
    try (PeerFlashClient c = cluster.client("n1")) {
      c.createVolume("vm1", VOLUME, CacheMode.WRITE_BACK, 1);
      writeBlocks(c, "vm1", model, 7, 20);
    }
    String owner = ownerOf("vm1");
    String replica = cluster.volume("vm1").getStateDetail().contains("[n2]") ? "n2" : "n3";
    FaultPoints faults = cluster.node(owner).faults();
    // 300 ms on the link: writes are slower, and the lag shows in the volume's status.
    faults.arm(FaultPoints.REPLICATE_SEND, owner + ">" + replica, Action.DELAY, 300, 50);
    AtomicLong maxLag = new AtomicLong();
    Thread watcher =
        new Thread(
            () -> {
              long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(3);
              while (System.nanoTime() < end) {
                try {
                  for (ReplicaStatus r : cluster.volumeFromOwner("vm1").getReplicasList()) {
                    maxLag.accumulateAndGet(r.getLagMs(), Math::max);
                  }
                } catch (Exception e) {
                  // keep watching
                }
                sleep(20);
              }
            },
            "test-lag-watcher");
    try (PeerFlashClient c = cluster.client()) {
      long start = System.nanoTime();
      byte[] data = new byte[BLOCK];
      Arrays.fill(data, (byte) 9);
      // The delay is taken on the sending thread, so watch from another one.
      watcher.start();
      for (int i = 0; i < 4; i++) {
        c.write("vm1", (long) i * BLOCK, data);
        System.arraycopy(data, 0, model, i * BLOCK, BLOCK);
      }
      assertThat(TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start)).isGreaterThan(1000);
      watcher.join();
    }
    faults.disarmAll();
    assertThat(maxLag.get()).as("replication lag seen in the volume status").isGreaterThan(150);
    // Past the ack timeout (1 s here): the replica is removed before the write is acknowledged,
    // the write goes through to shared storage, and re-protection restores a copy.
    faults.arm(FaultPoints.REPLICATE_SEND, owner + ">" + replica, Action.DELAY, 1500, 1);
    try (PeerFlashClient c = cluster.client()) {
      byte[] data = new byte[BLOCK];
      Arrays.fill(data, (byte) 11);
      c.write("vm1", 40L * BLOCK, data);
      System.arraycopy(data, 0, model, 40 * BLOCK, BLOCK);
      byte[] shared = Files.readAllBytes(dir.resolve("shared").resolve("vm1"));
      assertThat(Arrays.copyOfRange(shared, 40 * BLOCK, 41 * BLOCK)).isEqualTo(data);
    }
    awaitInSync(r -> r.size() == 1, 40, "a replica in sync again");
    assertServes("vm1", model);
    assertFlushedToStorage("vm1", model);
  }

  // --------------------------------------------------------------------------- on-peer-loss

  @Test
  void blockPolicyWaitsBoundedThenFailsAndResumesOnceReprotected() throws Exception {
    start(3, Map.of("peer-loss-wait-ms", "1500"));
    try (PeerFlashClient c = cluster.client("n1")) {
      c.createVolume(
          "vm1",
          VOLUME,
          PeerFlashClient.policy(CacheMode.WRITE_BACK, 2).toBuilder()
              .setOnPeerLoss(OnPeerLoss.ON_PEER_LOSS_BLOCK)
              .build());
    }
    assertThat(cluster.volume("vm1").getPolicy().getOnPeerLoss())
        .isEqualTo(OnPeerLoss.ON_PEER_LOSS_BLOCK);
    cluster.crash("n3"); // no spare node: the volume stays with 1 of 2 replicas
    await(() -> cluster.volume("vm1").getEffectiveReplicas() == 1, 30, "n3 out of the set");
    ByteBuffer data = ByteBuffer.wrap(new byte[BLOCK]);
    long start = System.nanoTime();
    assertThatThrownBy(() -> cluster.node("n1").engine().write("vm1", 0, data.duplicate()))
        .isInstanceOf(CacheException.class)
        .hasMessageContaining("peer-loss-wait-ms")
        .hasMessageContaining("1 of 2 replicas in sync");
    long waited = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
    assertThat(waited).isBetween(1400L, 6000L);
    // n3 returns: re-protection fills it and writes are taken again.
    cluster.nodes.put("n3", PeerFlashNode.start(cluster.configs.get("n3")));
    await(() -> cluster.volume("vm1").getEffectiveReplicas() == 2, 60, "re-protection");
    // (Retried like a client would: n3's return can make n1's lease lapse for a moment.)
    await(
        () -> {
          try {
            cluster.node("n1").engine().write("vm1", 0, data.duplicate());
            return true;
          } catch (CacheException e) {
            return false;
          }
        },
        10,
        "a write once re-protected");
  }

  @Test
  void acceptPolicyAcknowledgesWithFewerCopiesAndReportsTheRisk() throws Exception {
    start(3, Map.of());
    try (PeerFlashClient c = cluster.client("n1")) {
      c.createVolume(
          "vm1",
          VOLUME,
          PeerFlashClient.policy(CacheMode.WRITE_BACK, 2).toBuilder()
              .setOnPeerLoss(OnPeerLoss.ON_PEER_LOSS_ACCEPT)
              .build());
    }
    cluster.crash("n3");
    await(() -> cluster.volume("vm1").getEffectiveReplicas() == 1, 30, "n3 out of the set");
    byte[] data = new byte[BLOCK];
    Arrays.fill(data, (byte) 7);
    try (PeerFlashClient c = cluster.client("n1")) {
      c.write("vm1", 0, data);
      Volume v = cluster.node("n1").cluster().routing().getVolume("vm1");
      assertThat(v.getAtRiskBytes()).isPositive();
      assertThat(v.getStateDetail()).contains("at risk");
      assertThat(c.read("vm1", 0, BLOCK)).isEqualTo(data);
    }
  }

  // --------------------------------------------------------------------------- restarts

  @Test
  void restartingEveryNodeOneByOneUnderLoadLosesNothing() throws Exception {
    start(3, Map.of());
    try (PeerFlashClient c = cluster.client("n1")) {
      c.createVolume("vm1", VOLUME, CacheMode.WRITE_BACK, 1);
    }
    try (RetryingWriter w =
        new RetryingWriter(cluster.client(), "vm1", VOLUME, 8, 40_000).start()) {
      w.awaitMore(100, 30);
      for (String id : List.copyOf(cluster.nodes.keySet())) {
        cluster.restart(id);
        cluster.awaitReady();
        awaitInSync(r -> r.size() == 1, 60, "vm1 protected again after restarting " + id);
        w.awaitMore(100, 40);
      }
      System.out.printf(
          "rolling restart: %d writes acknowledged, %d retries, longest write %d ms%n",
          w.acknowledged.get(), w.retries.get(), w.longestWriteMs.get());
      w.close();
      assertServes("vm1", w.model);
      assertFlushedToStorage("vm1", w.model);
    }
  }
}
