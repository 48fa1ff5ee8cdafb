package io.peerflash.node.nbd;

import static io.peerflash.node.cluster.InProcessCluster.await;
import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.client.PeerFlashClient;
import io.peerflash.node.cluster.InProcessCluster;
import io.peerflash.node.engine.CacheEngine;
import io.peerflash.proto.v1.CacheMode;
import io.peerflash.replication.fault.FaultPoints;
import io.peerflash.replication.fault.FaultPoints.Action;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The durability promise of an NBD FLUSH (and a FUA write) in a cluster of three real nodes running
 * without {@code --sync}: the owner's flush syncs the cache file and index of every in-sync replica
 * (counted by each replica's engine), concurrent flushes share a replica's sync, and a replica that
 * fails its sync fails the flush until it is out of the volume's replicas.
 */
class ReplicatedFlushTest {
  private static final long VOLUME = 1 << 20;
  private static final int BLOCK = 4096;

  @TempDir Path dir;
  private InProcessCluster cluster;

  @AfterEach
  void stop() {
    if (cluster != null) {
      cluster.close();
    }
  }

  private void start() throws Exception {
    start(Map.of());
  }

  private void start(Map<String, String> settings) throws Exception {
    Map<String, String> all = new java.util.HashMap<>(settings);
    all.put("nbd-socket", dir.resolve("{id}.nbd").toString());
    cluster = new InProcessCluster(dir, 3, all);
  }

  /** An NBD connection to the volume's owner, over its Unix socket. */
  private RawNbdClient connectToOwner(String volume) throws Exception {
    String owner = cluster.volume(volume).getOwner();
    RawNbdClient c = RawNbdClient.unix(dir.resolve(owner + ".nbd"));
    c.greet();
    assertThat(c.go(volume)).isEqualTo(VOLUME);
    return c;
  }

  private List<String> replicas(String volume) {
    return cluster.volume(volume).getReplicasList().stream().map(r -> r.getNode()).toList();
  }

  private CacheEngine engine(String node) {
    return cluster.node(node).engine();
  }

  private static byte[] block(int fill) {
    byte[] data = new byte[BLOCK];
    Arrays.fill(data, (byte) fill);
    return data;
  }

  @Test
  void aFlushOrFuaWriteOnTheOwnerSyncsEveryReplicaAndConcurrentFlushesShareASync()
      throws Exception {
    start();
    try (PeerFlashClient admin = cluster.client("n1")) {
      admin.createVolume("vm1", VOLUME, CacheMode.WRITE_BACK, 2);
    }
    List<String> replicas = replicas("vm1");
    assertThat(replicas).hasSize(2);
    try (RawNbdClient c = connectToOwner("vm1")) {
      c.request(0, NbdProtocol.CMD_WRITE, 1, 0, BLOCK, block(1));
      assertThat(c.simpleReply()).isEqualTo(new RawNbdClient.SimpleReply(0, 1));

      // Without --sync a replica fsyncs only when asked to: one FLUSH, one sync on each.
      long[] requests0 = new long[2];
      long[] fsyncs0 = new long[2];
      for (int i = 0; i < 2; i++) {
        requests0[i] = engine(replicas.get(i)).localSyncRequests();
        fsyncs0[i] = engine(replicas.get(i)).localFsyncs();
      }
      c.request(0, NbdProtocol.CMD_FLUSH, 2, 0, 0, null);
      assertThat(c.simpleReply()).isEqualTo(new RawNbdClient.SimpleReply(0, 2));
      for (int i = 0; i < 2; i++) {
        assertThat(engine(replicas.get(i)).localSyncRequests() - requests0[i])
            .as("sync requests on replica %s", replicas.get(i))
            .isEqualTo(1);
        assertThat(engine(replicas.get(i)).localFsyncs() - fsyncs0[i])
            .as("fsyncs on replica %s", replicas.get(i))
            .isEqualTo(1);
      }

      // A FUA write is a write, then a flush.
      c.request(NbdProtocol.CMD_FLAG_FUA, NbdProtocol.CMD_WRITE, 3, BLOCK, BLOCK, block(2));
      assertThat(c.simpleReply()).isEqualTo(new RawNbdClient.SimpleReply(0, 3));
      for (int i = 0; i < 2; i++) {
        assertThat(engine(replicas.get(i)).localFsyncs() - fsyncs0[i])
            .as("fsyncs on replica %s after the FUA write", replicas.get(i))
            .isEqualTo(2);
      }

      // Concurrent flushes: the first one's sync is held on one replica; the four sent while it
      // runs wait there together and share the next one.
      String held = replicas.get(0);
      FaultPoints faults = cluster.node(held).faults();
      long requests = engine(held).localSyncRequests();
      long fsyncs = engine(held).localFsyncs();
      faults.arm(FaultPoints.LOCAL_FSYNC, "cache.slots", Action.DELAY, 3000, 1);
      c.request(0, NbdProtocol.CMD_FLUSH, 10, 0, 0, null);
      await(() -> faults.fired(FaultPoints.LOCAL_FSYNC) == 1, 20, "the held fsync");
      for (int h = 11; h <= 14; h++) {
        c.request(0, NbdProtocol.CMD_FLUSH, h, 0, 0, null);
      }
      await(
          () -> engine(held).localSyncRequests() == requests + 5,
          20,
          "the four later flushes to reach replica " + held);
      assertThat(engine(held).localFsyncs())
          .as("the held fsync is still running when the four later ones are queued")
          .isEqualTo(fsyncs);
      Set<Long> answered = new HashSet<>();
      for (int i = 0; i < 5; i++) {
        RawNbdClient.SimpleReply r = c.simpleReply();
        assertThat(r.error()).as("flush %d", r.handle()).isZero();
        answered.add(r.handle());
      }
      assertThat(answered).containsExactlyInAnyOrder(10L, 11L, 12L, 13L, 14L);
      assertThat(engine(held).localFsyncs() - fsyncs)
          .as("the held fsync, then one for the four flushes queued behind it")
          .isEqualTo(2);
    }
  }

  @Test
  void aReplicaWhoseSyncFailsFailsTheFlushUntilItIsOutOfTheReplicas() throws Exception {
    // A front end that gives up at once (EIO) instead of holding the request while the cluster
    // recovers (nbd-forward-timeout-ms, 60 s by default: see the next test).
    start(Map.of("nbd-forward-timeout-ms", "200"));
    String replica = volumeWithOneReplica();
    try (RawNbdClient c = connectToOwner("vm1")) {
      c.request(0, NbdProtocol.CMD_WRITE, 1, 0, BLOCK, block(7));
      assertThat(c.simpleReply()).isEqualTo(new RawNbdClient.SimpleReply(0, 1));

      // The replica's disk fails its fsync: the flush cannot promise its copy.
      FaultPoints faults = cluster.node(replica).faults();
      faults.arm(FaultPoints.LOCAL_FSYNC, "*", Action.DROP);
      c.request(0, NbdProtocol.CMD_FLUSH, 2, 0, 0, null);
      assertThat(c.simpleReply()).isEqualTo(new RawNbdClient.SimpleReply(NbdProtocol.EIO, 2));
      assertThat(faults.fired(FaultPoints.LOCAL_FSYNC)).isEqualTo(1);
      assertThat(engine(replica).localFailure()).contains("fsync of the cache file");

      // A replica that failed an fsync stops renewing its lease and leaves the volume's replicas;
      // the copies that exist are then the owner's alone, fewer than the policy asks for, so the
      // flush goes through to shared storage, as a write would.
      await(() -> !replicas("vm1").contains(replica), 30, "the replica to leave the volume");
      c.request(0, NbdProtocol.CMD_FLUSH, 3, 0, 0, null);
      assertThat(c.simpleReply()).isEqualTo(new RawNbdClient.SimpleReply(0, 3));
    }
    assertDestaged(block(7));
  }

  @Test
  void withTheDefaultTimeoutTheFlushWaitsForTheFailedReplicaToLeaveThenGoesThrough()
      throws Exception {
    start();
    String replica = volumeWithOneReplica();
    try (RawNbdClient c = connectToOwner("vm1")) {
      c.request(0, NbdProtocol.CMD_WRITE, 1, 0, BLOCK, block(9));
      assertThat(c.simpleReply()).isEqualTo(new RawNbdClient.SimpleReply(0, 1));
      FaultPoints faults = cluster.node(replica).faults();
      faults.arm(FaultPoints.LOCAL_FSYNC, "*", Action.DROP);
      // A disk's FLUSH error is fatal to most file systems: the front end holds the request
      // while the cluster takes the failed replica out, then the flush goes through.
      c.request(0, NbdProtocol.CMD_FLUSH, 2, 0, 0, null);
      assertThat(c.simpleReply()).isEqualTo(new RawNbdClient.SimpleReply(0, 2));
      assertThat(faults.fired(FaultPoints.LOCAL_FSYNC)).isPositive();
      assertThat(replicas("vm1")).as("answered once the replica was out").doesNotContain(replica);
    }
    assertDestaged(block(9));
  }

  @Test
  void aFlushThroughAnyNodeCoversWritesCompletedThroughAnotherNode() throws Exception {
    start();
    String replica = volumeWithOneReplica();
    String owner = cluster.volume("vm1").getOwner();
    String third =
        java.util.stream.Stream.of("n1", "n2", "n3")
            .filter(id -> !id.equals(owner) && !id.equals(replica))
            .findFirst()
            .orElseThrow();
    // Two connections, neither to the owner: the write goes in through one node, the FLUSH
    // through the other; both are forwarded to the one owner (what CAN_MULTI_CONN promises).
    try (RawNbdClient writer = RawNbdClient.unix(dir.resolve(third + ".nbd"));
        RawNbdClient flusher = RawNbdClient.unix(dir.resolve(replica + ".nbd"))) {
      writer.greet();
      assertThat(writer.go("vm1")).isEqualTo(VOLUME);
      flusher.greet();
      assertThat(flusher.go("vm1")).isEqualTo(VOLUME);
      writer.request(0, NbdProtocol.CMD_WRITE, 1, 0, BLOCK, block(5));
      assertThat(writer.simpleReply()).isEqualTo(new RawNbdClient.SimpleReply(0, 1));

      long ownerSyncs = engine(owner).localSyncRequests();
      long replicaSyncs = engine(replica).localSyncRequests();
      long thirdSyncs = engine(third).localSyncRequests();
      flusher.request(0, NbdProtocol.CMD_FLUSH, 2, 0, 0, null);
      assertThat(flusher.simpleReply()).isEqualTo(new RawNbdClient.SimpleReply(0, 2));
      assertThat(engine(owner).localSyncRequests())
          .as("the owner synced its flash for the flush")
          .isGreaterThan(ownerSyncs);
      assertThat(engine(replica).localSyncRequests())
          .as("the replica synced its copies for the flush")
          .isGreaterThan(replicaSyncs);
      assertThat(engine(third).localSyncRequests())
          .as("the node that took the write holds no copy to sync")
          .isEqualTo(thirdSyncs);
      // And the write is readable through the flushing connection.
      flusher.request(0, NbdProtocol.CMD_READ, 3, 0, BLOCK, null);
      assertThat(flusher.simpleReplyData(BLOCK)).isEqualTo(block(5));
    }
  }

  private String volumeWithOneReplica() throws Exception {
    try (PeerFlashClient admin = cluster.client("n1")) {
      // The default on-peer-loss policy, write-through: without the replica, writes go through.
      admin.createVolume("vm1", VOLUME, CacheMode.WRITE_BACK, 1);
    }
    return replicas("vm1").get(0);
  }

  private void assertDestaged(byte[] expected) throws Exception {
    byte[] shared = Files.readAllBytes(dir.resolve("shared").resolve("vm1"));
    assertThat(Arrays.copyOf(shared, BLOCK))
        .as("the flush that went through destaged the write")
        .isEqualTo(expected);
  }
}
