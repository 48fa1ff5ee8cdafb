package io.peerflash.faults;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.Status;
import io.peerflash.client.PeerFlashClient;
import io.peerflash.client.PeerFlashException;
import io.peerflash.faults.ConsistencyChecker.Report;
import io.peerflash.faults.DockerCluster.Node;
import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.ClusterVolume;
import io.peerflash.proto.v1.Volume;
import io.peerflash.proto.v1.VolumeState;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * Real faults against real PeerFlash clusters in Docker containers, with writes running through
 * every fault on three volumes at once, owned by different nodes at the start (the faults aim at
 * the first one's owner). After the faults heal, {@link ConsistencyChecker} checks every volume: no
 * acknowledged write lost, no multi-block write seen in part, no read stale, gone back in time or
 * returning data never written, and shared storage equal to the model byte for byte after Flush;
 * each scenario prints one summary line (also collected in {@code
 * it-tests/target/fault-summary.txt}).
 */
@Tag("container")
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class FaultInjectionIT {
  private static final long MIB = 1 << 20;
  private static final String VOLUME = "vm";

  /**
   * Written alongside {@link #VOLUME}, created through the second and third node (their owners).
   */
  private static final List<String> OTHER_VOLUMES = List.of("vm-b", "vm-c");

  private DockerCluster cluster;

  @AfterEach
  void removeCluster() {
    if (cluster != null) {
      cluster.close();
      cluster = null;
    }
  }

  // ----------------------------------------------------------------------------------------------
  // Scenarios

  @Test
  @org.junit.jupiter.api.Order(1)
  void killOwner() {
    cluster = DockerCluster.builder("kill-owner").start();
    Workload w = startWorkload(16 * MIB, 1);
    Node owner = protectedOwner();
    long faultAt = System.nanoTime();
    cluster.kill(owner);
    Node newOwner = awaitNewOwner(owner, Duration.ofSeconds(60));
    awaitAcksSince(w, faultAt, Duration.ofSeconds(60));
    cluster.restart(owner);
    cluster.awaitAllUp(Duration.ofMinutes(2));
    runFor(3);
    Report r = ConsistencyChecker.check("kill-owner", cluster, w, faultAt);
    assertConsistent(r);
    assertThat(newOwner).isNotEqualTo(owner);
  }

  @Test
  @org.junit.jupiter.api.Order(2)
  void killPeer() {
    cluster = DockerCluster.builder("kill-peer").start();
    Workload w = startWorkload(16 * MIB, 1);
    Node owner = protectedOwner();
    Node replica = cluster.replicaOf(VOLUME);
    long faultAt = System.nanoTime();
    cluster.kill(replica);
    // Writes go on once the owner has taken the dead peer out of the map (a Raft commit, after an
    // election when the peer was also the Raft leader) and destaged what only that peer held: a
    // pause of a few seconds, bounded here at 10 s; the report gives the measured one.
    awaitAcksSince(w, faultAt, Duration.ofSeconds(10));
    runFor(3);
    assertThat(w.primary().acknowledgedSince(faultAt))
        .as("writes acknowledged with the peer dead")
        .isPositive();
    cluster.restart(replica);
    cluster.awaitAllUp(Duration.ofMinutes(2));
    runFor(3);
    Report r = ConsistencyChecker.check("kill-peer", cluster, w, faultAt);
    assertConsistent(r);
    // The volume's history, not a look after a wait: no failover or move at any time.
    assertThat(cluster.events(VOLUME))
        .as("the volume's events")
        .extracting(e -> e.getKind())
        .contains(io.peerflash.proto.v1.ClusterEventKind.EVENT_VOLUME_CREATED)
        .doesNotContain(
            io.peerflash.proto.v1.ClusterEventKind.EVENT_FAILOVER,
            io.peerflash.proto.v1.ClusterEventKind.EVENT_VOLUME_MOVED);
    assertThat(cluster.ownerOf(VOLUME)).as("the owner keeps the volume").isEqualTo(owner);
  }

  @Test
  @org.junit.jupiter.api.Order(3)
  void disconnectOwner() {
    // Eager destage: an isolated owner still reaches shared storage; unfenced, it would write.
    cluster = DockerCluster.builder("disconnect-owner").set("max-dirty-age-ms", "300").start();
    Workload w = startWorkload(16 * MIB, 1);
    Node owner = protectedOwner();
    long faultAt = System.nanoTime();
    cluster.disconnect(owner);
    Node newOwner = awaitNewOwner(owner, Duration.ofSeconds(60));
    awaitAcksSince(w, faultAt, Duration.ofSeconds(60));
    runFor(2);
    cluster.reconnect(owner); // it comes back with dirty blocks and an old epoch
    cluster.awaitAllUp(Duration.ofMinutes(2));
    runFor(4);
    Report r = ConsistencyChecker.check("disconnect-owner", cluster, w, faultAt);
    assertConsistent(r);
    assertThat(newOwner).isNotEqualTo(owner);
  }

  @Test
  @org.junit.jupiter.api.Order(4)
  void partitionOwnerFromPeersButNotFromClients() {
    // The owner loses every peer but still answers clients (and still reaches shared storage):
    // after its lease it must refuse them, and never serve or destage stale data.
    cluster = DockerCluster.builder("partition-owner").set("max-dirty-age-ms", "300").start();
    Workload w = startWorkload(16 * MIB, 1);
    Node owner = protectedOwner();
    long faultAt = System.nanoTime();
    for (Node n : cluster.nodes()) {
      if (n != owner) {
        cluster.network().cutLink(owner, n);
      }
    }
    Node newOwner = awaitNewOwner(owner, Duration.ofSeconds(60));
    awaitAcksSince(w, faultAt, Duration.ofSeconds(60));
    runFor(4);
    assertThat(cluster.answers(owner)).as("the partitioned owner still answers clients").isTrue();
    cluster.network().healNetwork(owner);
    cluster.awaitAllUp(Duration.ofMinutes(2));
    runFor(3);
    Report r = ConsistencyChecker.check("partition-owner", cluster, w, faultAt);
    assertConsistent(r);
    assertThat(newOwner).isNotEqualTo(owner);
  }

  @Test
  @org.junit.jupiter.api.Order(5)
  void cutLinkBetweenOwnerAndReplica() {
    cluster = DockerCluster.builder("cut-link").start();
    Workload w = startWorkload(16 * MIB, 1);
    Node owner = protectedOwner();
    Node replica = cluster.replicaOf(VOLUME);
    long faultAt = System.nanoTime();
    cluster.network().cutLink(owner, replica);
    runFor(8);
    assertThat(cluster.network().droppedPackets(owner))
        .as("packets dropped on the cut link")
        .isPositive();
    assertThat(w.primary().acknowledgedSince(faultAt))
        .as("writes acknowledged with the link cut")
        .isPositive();
    cluster.network().healNetwork(owner);
    cluster.awaitAllUp(Duration.ofMinutes(2));
    runFor(3);
    Report r = ConsistencyChecker.check("cut-link", cluster, w, faultAt);
    assertConsistent(r);
  }

  @Test
  @org.junit.jupiter.api.Order(6)
  void freezeOwnerPastItsLease() {
    // Eager destage: an owner that woke up unfenced would write its old blocks at once.
    cluster = DockerCluster.builder("freeze-owner").set("max-dirty-age-ms", "300").start();
    Workload w = startWorkload(16 * MIB, 1);
    Node owner = protectedOwner();
    long faultAt = System.nanoTime();
    cluster.pause(owner);
    Node newOwner = awaitNewOwner(owner, Duration.ofSeconds(60));
    awaitAcksSince(w, faultAt, Duration.ofSeconds(60));
    runFor(2);
    cluster.unpause(owner); // wakes up with an expired lease and old dirty blocks
    runFor(4);
    cluster.awaitAllUp(Duration.ofMinutes(2));
    Report r = ConsistencyChecker.check("freeze-owner", cluster, w, faultAt);
    assertConsistent(r);
    assertThat(newOwner).isNotEqualTo(owner);
  }

  @Test
  @org.junit.jupiter.api.Order(7)
  void rollingRestart() {
    // The image's own health check (GET /healthz over bash's /dev/tcp, no JVM): each node must
    // turn healthy again after its restart.
    cluster =
        DockerCluster.builder("rolling-restart")
            .healthCheckInterval(Duration.ofSeconds(10))
            .start();
    Workload w = startWorkload(16 * MIB, 1);
    protectedOwner();
    long faultAt = System.nanoTime();
    for (Node n : cluster.nodes()) {
      awaitTrue(n + " healthy", Duration.ofMinutes(2), () -> cluster.health(n).equals("healthy"));
      int code = cluster.stop(n, Duration.ofSeconds(30));
      assertThat(code)
          .as(n + " exit code after SIGTERM (143: clean stop, 137: killed)")
          .isEqualTo(143);
      cluster.restart(n);
      awaitTrue(n + " healthy", Duration.ofMinutes(2), () -> cluster.health(n).equals("healthy"));
      cluster.awaitAllUp(Duration.ofMinutes(2));
      runFor(2);
    }
    Report r = ConsistencyChecker.check("rolling-restart", cluster, w, faultAt);
    assertConsistent(r);
    for (Node n : cluster.nodes()) {
      assertThat(cluster.logs(n))
          .as(n + " log")
          .contains("stopped; dirty data kept for the next start");
    }
  }

  @Test
  @org.junit.jupiter.api.Order(8)
  void restartAllNodesWithDirtyData() {
    // Nothing is destaged by age: the cluster goes down with its dirty data.
    cluster = DockerCluster.builder("restart-all-dirty").set("max-dirty-age-ms", "600000").start();
    Workload w = startWorkload(16 * MIB, 1);
    protectedOwner();
    Volume before = cluster.client().getVolume(VOLUME);
    assertThat(before.getDirtyBytes()).as("dirty bytes before the restart").isPositive();
    long faultAt = System.nanoTime();
    List<Node> all = cluster.nodes();
    all.forEach(cluster::kill);
    runFor(1);
    cluster.restartAll(all);
    cluster.awaitAllUp(Duration.ofMinutes(2));
    awaitAcksSince(w, faultAt, Duration.ofSeconds(60));
    runFor(3);
    Report r = ConsistencyChecker.check("restart-all-dirty", cluster, w, faultAt);
    assertConsistent(r);
    System.out.println("  dirty before kill -9 of every node: " + before.getDirtyBytes() + " B");
  }

  @Test
  @org.junit.jupiter.api.Order(9)
  void packetLossOnReplicationLinks() {
    cluster = DockerCluster.builder("packet-loss").start();
    Workload w = startWorkload(16 * MIB, 1);
    Node owner = protectedOwner();
    long faultAt = System.nanoTime();
    cluster.network().replicationPacketLoss(owner, 0.3);
    runFor(10);
    assertThat(cluster.network().droppedPackets(owner))
        .as("replication packets dropped")
        .isPositive();
    assertThat(w.primary().acknowledgedSince(faultAt))
        .as("writes acknowledged during the loss")
        .isPositive();
    cluster.network().healNetwork(owner);
    cluster.awaitAllUp(Duration.ofMinutes(2));
    runFor(3);
    Report r = ConsistencyChecker.check("packet-loss", cluster, w, faultAt);
    assertConsistent(r);
  }

  @Test
  @org.junit.jupiter.api.Order(10)
  void sharedStorageFailing() {
    cluster =
        DockerCluster.builder("storage-failing")
            .sharedStorageLimit(96 * MIB)
            .set("max-dirty-age-ms", "300")
            .set("storage-failing-after-ms", "2000")
            .set("storage-retry-max-backoff-ms", "1000")
            .start();
    Workload w = startWorkload(64 * MIB, 8 * MIB, 1, Workload.Options.defaults());
    Node owner = protectedOwner();
    long faultAt = System.nanoTime();
    cluster.fillSharedStorage(owner); // ENOSPC for every write that needs new space
    awaitTrue(
        "volume reported STORAGE_FAILING",
        Duration.ofSeconds(60),
        () -> volumeState().filter(s -> s == VolumeState.STORAGE_FAILING).isPresent());
    runFor(4);
    assertThat(w.primary().acknowledgedSince(faultAt))
        .as("writes acknowledged while shared storage fails")
        .isPositive();
    cluster.freeSharedStorage(owner);
    awaitTrue(
        "volume HEALTHY again",
        Duration.ofSeconds(60),
        () -> volumeState().filter(s -> s == VolumeState.HEALTHY).isPresent());
    runFor(3);
    Report r = ConsistencyChecker.check("storage-failing", cluster, w, faultAt);
    assertConsistent(r);
  }

  @Test
  @org.junit.jupiter.api.Order(11)
  void cacheFullOfDirtyData() {
    // A small cache, and shared storage full so the destager cannot free it: the cache fills up
    // with dirty data; writes must then be refused within the backpressure wait, never hang, and
    // go through again once shared storage has space.
    cluster =
        DockerCluster.builder("cache-full")
            .cacheSize("8MiB")
            .sharedStorageLimit(96 * MIB)
            .set("max-dirty-age-ms", "300")
            .set("write-backpressure-timeout-ms", "2000")
            .set("storage-retry-max-backoff-ms", "1000")
            .start();
    Workload w = startWorkload(64 * MIB, 8 * MIB, 1, Workload.Options.defaults().withWritePause(0));
    Node owner = protectedOwner();
    long faultAt = System.nanoTime();
    cluster.fillSharedStorage(owner);
    awaitTrue(
        "writes refused with RESOURCE_EXHAUSTED (cache full of dirty data)",
        Duration.ofSeconds(90),
        () -> w.errors().getOrDefault(Status.Code.RESOURCE_EXHAUSTED.name(), 0L) > 0);
    runFor(3);
    long healAt = System.nanoTime();
    cluster.freeSharedStorage(owner);
    awaitAcksSince(w, healAt, Duration.ofSeconds(60));
    runFor(4);
    Report r = ConsistencyChecker.check("cache-full", cluster, w, faultAt);
    assertConsistent(r);
    assertThat(w.longestWriteCallMs()).as("longest write call (no hang)").isLessThan(30_000);
  }

  @Test
  @org.junit.jupiter.api.Order(12)
  void fiveNodesKillOwnerAndAReplica() {
    cluster = DockerCluster.builder("five-nodes-kill-two").nodes(5).start();
    Workload w = startWorkload(16 * MIB, 2);
    Node owner = protectedOwner();
    ClusterVolume v = cluster.volume(VOLUME).orElseThrow();
    assertThat(v.getReplicaSetCount()).as("replicas of " + v).isEqualTo(2);
    Node replica = cluster.node(v.getReplicaSet(0));
    Node survivor = cluster.node(v.getReplicaSet(1));
    long faultAt = System.nanoTime();
    cluster.kill(owner);
    cluster.kill(replica);
    Node newOwner = awaitNewOwner(owner, Duration.ofSeconds(60));
    awaitAcksSince(w, faultAt, Duration.ofSeconds(60));
    runFor(2);
    cluster.restartAll(List.of(owner, replica));
    cluster.awaitAllUp(Duration.ofMinutes(2));
    runFor(3);
    Report r = ConsistencyChecker.check("five-nodes-kill-two", cluster, w, faultAt);
    assertConsistent(r);
    assertThat(newOwner).as("the only replica left takes over").isEqualTo(survivor);
  }

  // ----------------------------------------------------------------------------------------------
  // Helpers

  private Workload startWorkload(long bytes, int replicas) {
    return startWorkload(bytes, bytes, replicas, Workload.Options.defaults());
  }

  /**
   * Creates {@link #VOLUME} ({@code bytes}) through the cluster's client and the other volumes
   * ({@code otherBytes} each; smaller where shared storage is size-limited) each through another
   * node, which becomes its owner, then starts the load on all of them.
   */
  private Workload startWorkload(long bytes, long otherBytes, int replicas, Workload.Options o) {
    Map<String, Long> sizes = new LinkedHashMap<>();
    sizes.put(VOLUME, bytes);
    createVolume(cluster.client(), VOLUME, bytes, replicas);
    List<Node> nodes = cluster.nodes();
    for (int i = 0; i < OTHER_VOLUMES.size(); i++) {
      String name = OTHER_VOLUMES.get(i);
      try (PeerFlashClient via =
          cluster.newClient(nodes.get((i + 1) % nodes.size()), Duration.ofSeconds(10))) {
        createVolume(via, name, otherBytes, replicas);
      }
      sizes.put(name, otherBytes);
    }
    Workload w = new Workload(cluster, sizes, o).start();
    runFor(4);
    return w;
  }

  private static void createVolume(PeerFlashClient c, String name, long bytes, int replicas) {
    ConsistencyChecker.retry(
        "create volume " + name,
        Duration.ofMinutes(1),
        () -> {
          try {
            return c.createVolume(name, bytes, CacheMode.WRITE_BACK, replicas);
          } catch (PeerFlashException e) {
            if (e.code() == Status.Code.ALREADY_EXISTS) {
              return null; // an earlier attempt went through
            }
            throw e;
          }
        });
  }

  /** {@link #VOLUME}'s owner, once the map shows every volume with every replica it asked for. */
  private Node protectedOwner() {
    for (String name : allVolumes()) {
      awaitTrue(
          "volume " + name + " protected by its replicas",
          Duration.ofSeconds(30),
          () ->
              cluster
                  .volume(name)
                  .filter(
                      v ->
                          v.getReplicaSetCount() == v.getRequestedReplicas()
                              && !v.getOwner().isEmpty())
                  .isPresent());
    }
    return cluster.ownerOf(VOLUME);
  }

  private static List<String> allVolumes() {
    List<String> all = new ArrayList<>();
    all.add(VOLUME);
    all.addAll(OTHER_VOLUMES);
    return all;
  }

  private Node awaitNewOwner(Node old, Duration timeout) {
    awaitTrue(
        "a new owner for " + VOLUME,
        timeout,
        () -> cluster.volume(VOLUME).filter(v -> !v.getOwner().equals(old.id())).isPresent());
    return cluster.ownerOf(VOLUME);
  }

  private void awaitAcksSince(Workload w, long since, Duration timeout) {
    try {
      awaitTrue(
          "writes to " + VOLUME + " acknowledged again",
          timeout,
          () -> w.primary().acknowledgedSince(since) > 0);
    } catch (AssertionError e) {
      // What the writers saw meanwhile, to tell a stalled call from failing ones.
      throw new AssertionError(
          e.getMessage()
              + "; write errors "
              + w.errors()
              + ", longest write call "
              + w.longestWriteCallMs()
              + " ms, first errors "
              + w.errorSamples(),
          e);
    }
  }

  private Optional<VolumeState> volumeState() {
    try (PeerFlashClient c = cluster.newClient(Duration.ofSeconds(5))) {
      return Optional.of(c.getVolume(VOLUME).getState());
    } catch (RuntimeException e) {
      return Optional.empty();
    }
  }

  private static void awaitTrue(String what, Duration timeout, BooleanSupplier condition) {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("timed out after " + timeout + " waiting for: " + what);
      }
      DockerCluster.sleep(250);
    }
  }

  private static void runFor(int seconds) {
    DockerCluster.sleep(TimeUnit.SECONDS.toMillis(seconds));
  }

  private void assertConsistent(Report r) {
    assertThat(r.problems()).as("problems found (node logs in " + cluster.logDir() + ")").isEmpty();
    assertThat(r.lost()).as("acknowledged writes lost").isZero();
    assertThat(r.tornWrites()).as("writes seen in part").isZero();
    assertThat(r.staleReads()).as("stale reads").isZero();
    assertThat(r.timeTravelReads()).as("reads gone back in time").isZero();
    assertThat(r.neverWritten()).as("reads of data never written").isZero();
    assertThat(r.sharedMismatches()).as("blocks of shared storage unlike the model").isZero();
    assertThat(r.changedAfterFlush()).as("blocks changed by Flush").isZero();
    assertThat(r.acknowledged()).as("acknowledged writes").isPositive();
    assertThat(r.failoverMs()).as("failover time (ms)").isBetween(0L, 60_000L);
    assertThat(r.worstFailoverMs())
        .as("longest stall of any volume from the fault on (ms)")
        .isBetween(0L, 60_000L);
    assertThat(r.volumes()).as("volumes checked").isEqualTo(1 + OTHER_VOLUMES.size());
  }
}
