package io.peerflash.node.cluster;

import static io.peerflash.node.cluster.InProcessCluster.await;
import static io.peerflash.testing.MetricsText.sample;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.peerflash.client.PeerFlashClient;
import io.peerflash.client.PeerFlashException;
import io.peerflash.node.NodeConfig;
import io.peerflash.node.PeerFlashNode;
import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.Volume;
import io.peerflash.proto.v1.VolumeState;
import io.peerflash.replication.fault.FaultPoints;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Three real nodes in one JVM (real Raft, real gRPC over loopback): volumes are placed by the
 * cluster map, writes are copied to a peer before the ack, a non-owner points clients to the owner,
 * and when the owner dies its replica takes over with every acknowledged write.
 */
class ThreeNodeClusterTest {
  private static final long VOLUME = 2 << 20;
  @TempDir Path dir;
  private InProcessCluster cluster;
  private Map<String, PeerFlashNode> nodes;
  private Map<String, String> clientAddress;
  private Map<String, NodeConfig> configs;

  @AfterEach
  void stop() {
    if (cluster != null) {
      cluster.close();
    }
  }

  private void startCluster() throws Exception {
    cluster = new InProcessCluster(dir, 3, Map.of());
    nodes = cluster.nodes;
    clientAddress = cluster.clientAddress;
    configs = cluster.configs;
  }

  private void awaitReady() throws InterruptedException {
    cluster.awaitReady();
  }

  private byte[] writeRandom(PeerFlashClient c, byte[] model, long seed, int n) {
    Random rnd = new Random(seed);
    for (int i = 0; i < n; i++) {
      int len = 512 * (1 + rnd.nextInt(16));
      long off = 512L * rnd.nextInt((int) ((VOLUME - len) / 512));
      byte[] data = new byte[len];
      rnd.nextBytes(data);
      c.write("vm1", off, data);
      System.arraycopy(data, 0, model, (int) off, len);
    }
    return model;
  }

  private static byte[] readAll(PeerFlashClient c) {
    byte[] all = new byte[(int) VOLUME];
    for (int off = 0; off < VOLUME; off += 1 << 20) {
      System.arraycopy(c.read("vm1", off, 1 << 20), 0, all, off, 1 << 20);
    }
    return all;
  }

  private PeerFlashClient client(String id) {
    return cluster.client(id);
  }

  private String replicaOf(PeerFlashClient c) {
    String detail = c.getVolume("vm1").getStateDetail();
    return detail.contains("[n2]") ? "n2" : detail.contains("[n3]") ? "n3" : null;
  }

  @Test
  void everyNodeConnectsToItsPeersBeforeTheFirstWrite() throws Exception {
    startCluster();
    // No volume, no write: the channels come up because the nodes warm them at start.
    InProcessCluster.await(
        () ->
            nodes.keySet().stream()
                .allMatch(
                    id ->
                        nodes.keySet().stream()
                            .filter(peer -> !peer.equals(id))
                            .allMatch(
                                peer ->
                                    nodes.get(id).cluster().peerChannelState(peer)
                                        == io.grpc.ConnectivityState.READY)),
        30,
        "every node's channel to each peer READY");
    // And the replica links: each node's link holds a connection from each of its two peers.
    InProcessCluster.await(
        () -> nodes.values().stream().allMatch(n -> n.replicaLinkConnections() == 2),
        30,
        "every node's replica link connected to by both peers");
  }

  @Test
  void lostReplicaIsRemovedWritesGoThroughAndAnotherPeerIsFilled() throws Exception {
    startCluster();
    byte[] model = new byte[(int) VOLUME];
    try (PeerFlashClient c = client("n1")) {
      c.createVolume("vm1", VOLUME, CacheMode.WRITE_BACK, 1);
      writeRandom(c, model, 1, 50);
      String replica = replicaOf(c);
      assertThat(replica).isNotNull();
      nodes.remove(replica).close();
      byte[] data = new byte[4096];
      Arrays.fill(data, (byte) 3);
      long start = System.nanoTime();
      c.write("vm1", 8192, data);
      long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
      System.arraycopy(data, 0, model, 8192, 4096);
      // Acknowledged only once on shared storage, in bounded time; the lost replica is gone
      // from the map, so it can never win a failover without this write.
      byte[] shared = Files.readAllBytes(dir.resolve("shared").resolve("vm1"));
      assertThat(Arrays.copyOfRange(shared, 8192, 8192 + 4096)).isEqualTo(data);
      assertThat(ms).isLessThan(5000);
      assertThat(c.getVolume("vm1").getStateDetail()).doesNotContain(replica);
      assertThat(c.getVolume("vm1").getEpoch()).isGreaterThan(1);
      // Re-protection makes the third node the new replica.
      String third = replica.equals("n2") ? "n3" : "n2";
      await(
          () -> c.getVolume("vm1").getStateDetail().contains("replicas [" + third + "]"),
          30,
          "re-protection to " + third);
      // The owner destages what had fewer copies than wanted: nothing stays at risk.
      await(() -> c.getVolume("vm1").getAtRiskBytes() == 0, 20, "at-risk data destaged");
      assertThat(Arrays.equals(readAll(c), model)).isTrue();
    }
  }

  @Test
  void aReplicaAskedForAgainIsAddedAtOnceNotAfterAPause() throws Exception {
    startCluster();
    try (PeerFlashClient c = client("n1")) {
      c.createVolume("vm1", VOLUME, CacheMode.WRITE_BACK, 1);
      await(() -> c.getVolume("vm1").getState() == VolumeState.HEALTHY, 30, "vm1 protected");
      // Each round takes the replica away and asks for one again: the owner asks the map for a
      // peer. The second ask used to wait out the pause the first one started (2 s), as if the map
      // had refused it a peer, although the volume's record had changed since.
      for (int round = 1; round <= 2; round++) {
        c.setPolicy("vm1", CacheMode.WRITE_BACK, 0);
        await(() -> c.getVolume("vm1").getReplicasCount() == 0, 30, "vm1's replica dropped");
        long start = System.nanoTime();
        c.setPolicy("vm1", CacheMode.WRITE_BACK, 1);
        await(
            () -> c.getVolume("vm1").getState() == VolumeState.HEALTHY, 30, "vm1 protected again");
        long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
        assertThat(ms)
            .as("round %d: ms from asking for a replica until vm1 is protected again", round)
            .isLessThan(1200);
      }
    }
  }

  @Test
  void theOwnersMetricsShowEachReplicasLagWhileACopyIsOutstanding() throws Exception {
    // A patient ack timeout: the copy is held at the replica on purpose.
    cluster =
        new InProcessCluster(
            dir, 3, Map.of("http", "127.0.0.1:0", "replication-ack-timeout-ms", "30000"));
    nodes = cluster.nodes;
    try (PeerFlashClient c = client("n1")) {
      c.createVolume("vm1", VOLUME, CacheMode.WRITE_BACK, 1);
      await(() -> c.getVolume("vm1").getState() == VolumeState.HEALTHY, 30, "vm1 protected");
      Volume v = c.getVolume("vm1");
      String owner = v.getOwner();
      String replica = v.getReplicas(0).getNode();
      byte[] data = new byte[4096];
      c.write("vm1", 0, data);
      String lag = "peerflash_replication_lag_seconds{peer=\"" + replica + "\"}";
      String inFlight = "peerflash_replication_in_flight_batches{peer=\"" + replica + "\"}";
      assertThat(sample(metrics(owner), lag)).isZero();
      assertThat(sample(metrics(owner), inFlight)).isZero();
      // A cluster member's families (Raft, lease, failovers, fencing, replication) pass promtool.
      String members = metrics(owner);
      assertThat(members).contains("peerflash_raft_term ", "peerflash_lease_remaining_seconds ");
      assertThat(sample(members, "peerflash_failovers_total")).isZero();
      io.peerflash.testing.Promtool.checkMetrics(members);

      FaultPoints replicaFaults = cluster.node(replica).faults();
      replicaFaults.arm(FaultPoints.REPLICA_APPLY, "vm1", FaultPoints.Action.HOLD, 30_000, 1);
      CompletableFuture<Void> held = CompletableFuture.runAsync(() -> c.write("vm1", 4096, data));
      await(
          () -> replicaFaults.fired(FaultPoints.REPLICA_APPLY) == 1,
          30,
          "the copy held at the replica");
      await(() -> sample(metrics(owner), inFlight) == 1, 30, "one batch in flight");
      await(() -> sample(metrics(owner), lag) >= 0.05, 30, "a lag of at least 50 ms");
      // The status page's data says the same: the owner, and the replica's outstanding batch.
      com.google.gson.JsonObject page =
          com.google.gson.JsonParser.parseString(get(owner, "/api/status")).getAsJsonObject();
      com.google.gson.JsonObject vm1 = null;
      for (com.google.gson.JsonElement e : page.getAsJsonArray("volumes")) {
        if (e.getAsJsonObject().get("name").getAsString().equals("vm1")) {
          vm1 = e.getAsJsonObject();
        }
      }
      assertThat(vm1).as("vm1 on the status page of %s: %s", owner, page).isNotNull();
      assertThat(vm1.get("owner").getAsString()).isEqualTo(owner);
      com.google.gson.JsonObject onPage = vm1.getAsJsonArray("replicas").get(0).getAsJsonObject();
      assertThat(onPage.get("node").getAsString()).isEqualTo(replica);
      assertThat(onPage.get("inFlightBatches").getAsInt()).isEqualTo(1);
      assertThat(onPage.get("lagMs").getAsLong()).isGreaterThanOrEqualTo(50);
      replicaFaults.releaseHolds();
      held.get(30, TimeUnit.SECONDS);
      await(
          () -> sample(metrics(owner), inFlight) == 0 && sample(metrics(owner), lag) == 0,
          30,
          "the copy acked");
    }
  }

  private String metrics(String id) {
    return get(id, "/metrics");
  }

  private String get(String id, String path) {
    try {
      return java.net.http.HttpClient.newHttpClient()
          .send(
              java.net.http.HttpRequest.newBuilder(
                      java.net.URI.create("http://127.0.0.1:" + cluster.node(id).httpPort() + path))
                  .build(),
              java.net.http.HttpResponse.BodyHandlers.ofString())
          .body();
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  @Test
  void wholeClusterRestartWithDirtyDataLosesNothing() throws Exception {
    startCluster();
    byte[] model = new byte[(int) VOLUME];
    try (PeerFlashClient c = client("n1")) {
      c.createVolume("vm1", VOLUME, CacheMode.WRITE_BACK, 1);
      writeRandom(c, model, 2, 200);
    }
    for (PeerFlashNode n : nodes.values()) {
      n.close();
    }
    nodes.clear();
    for (String id : configs.keySet()) {
      nodes.put(id, PeerFlashNode.start(configs.get(id)));
    }
    awaitReady();
    try (PeerFlashClient c = client("n1")) {
      byte[] served = null;
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
      while (served == null) {
        try {
          served = readAll(c);
        } catch (PeerFlashException e) {
          if (System.nanoTime() > deadline) {
            throw e;
          }
          Thread.sleep(50);
        }
      }
      assertThat(Arrays.equals(served, model)).isTrue();
      c.flush("vm1");
      assertThat(Arrays.equals(Files.readAllBytes(dir.resolve("shared").resolve("vm1")), model))
          .isTrue();
    }
  }

  @Test
  void ownerFailureLosesNoAcknowledgedWrite() throws Exception {
    startCluster();
    byte[] model = new byte[(int) VOLUME];
    String owner;
    String replica;
    try (PeerFlashClient c = client("n1")) {
      Volume v = c.createVolume("vm1", VOLUME, CacheMode.WRITE_BACK, 1);
      assertThat(v.getStateDetail()).contains("owner n1");
      owner = "n1";
      Random rnd = new Random(7);
      for (int i = 0; i < 300; i++) {
        int len = 512 * (1 + rnd.nextInt(16));
        long off = 512L * rnd.nextInt((int) ((VOLUME - len) / 512));
        byte[] data = new byte[len];
        rnd.nextBytes(data);
        c.write("vm1", off, data);
        System.arraycopy(data, 0, model, (int) off, len);
      }
      String detail = c.getVolume("vm1").getStateDetail();
      replica = detail.contains("[n2]") ? "n2" : "n3";
      assertThat(detail).contains("replicas [" + replica + "]");
    }
    // The replica holds exactly the owner's dirty data.
    long ownerDirty = nodes.get(owner).engine().volumeStatus("vm1").dirtyBytes();
    assertThat(ownerDirty).isPositive();
    assertThat(nodes.get(replica).engine().volumeStatus("vm1").dirtyBytes()).isEqualTo(ownerDirty);
    // A non-owner sends the client to the owner.
    String other = replica.equals("n2") ? "n3" : "n2";
    io.grpc.ManagedChannel raw = cluster.certs.adminSecurity().open(clientAddress.get(other));
    try (PeerFlashClient c = new PeerFlashClient(raw)) {
      assertThatThrownBy(() -> c.read("vm1", 0, 4096))
          .isInstanceOf(PeerFlashException.class)
          .hasMessageContaining("owned by n1")
          .satisfies(e -> assertThat(((PeerFlashException) e).owner()).startsWith("n1@"));
    } finally {
      raw.shutdownNow();
    }
    // ... and the client library follows it transparently.
    try (PeerFlashClient c =
        PeerFlashClient.connect(clientAddress.get(other), cluster.certs.adminSecurity())) {
      assertThat(c.read("vm1", 0, 4096)).isEqualTo(Arrays.copyOfRange(model, 0, 4096));
    }
    // The owner dies with everything dirty.
    long killed = System.nanoTime();
    nodes.remove(owner).close();
    try (PeerFlashClient c =
        PeerFlashClient.builder()
            .target(clientAddress.get(replica))
            .security(cluster.certs.adminSecurity())
            .deadline(Duration.ofSeconds(5))
            .build()) {
      byte[] served = null;
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
      while (served == null) {
        try {
          served = c.read("vm1", 0, (int) VOLUME / 2);
        } catch (PeerFlashException e) {
          if (System.nanoTime() > deadline) {
            throw e;
          }
          Thread.sleep(50);
        }
      }
      long failoverMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - killed);
      System.out.printf("failover: %s took over vm1 in %d ms%n", replica, failoverMs);
      byte[] all = new byte[(int) VOLUME];
      System.arraycopy(served, 0, all, 0, served.length);
      byte[] rest = c.read("vm1", VOLUME / 2, (int) VOLUME / 2);
      System.arraycopy(rest, 0, all, (int) VOLUME / 2, rest.length);
      assertThat(Arrays.equals(all, model))
          .as("new owner serves every acknowledged write")
          .isTrue();
      // Writes continue on the new owner, then everything reaches shared storage.
      byte[] more = new byte[4096];
      Arrays.fill(more, (byte) 5);
      c.write("vm1", 0, more);
      System.arraycopy(more, 0, model, 0, 4096);
      c.flush("vm1");
      assertThat(Arrays.equals(Files.readAllBytes(dir.resolve("shared").resolve("vm1")), model))
          .as("shared storage equals the model after Flush")
          .isTrue();
      assertThat(failoverMs).isLessThan(15_000);
    }
    // The old owner comes back: it discards its superseded copies and destages nothing.
    byte[] sharedBefore = Files.readAllBytes(dir.resolve("shared").resolve("vm1"));
    nodes.put(owner, PeerFlashNode.start(configs.get(owner)));
    awaitReady();
    PeerFlashNode back = nodes.get(owner);
    await(
        () -> back.engine().listVolumes().stream().noneMatch(v -> v.name().equals("vm1")),
        20,
        "old owner to drop its superseded copies");
    // No wait needed past the drop: the destager writes a volume only under its gate and stops
    // at the drop, so nothing of vm1 reaches shared storage from this node after it.
    assertThat(Files.readAllBytes(dir.resolve("shared").resolve("vm1"))).isEqualTo(sharedBefore);
  }

  /**
   * In a cluster too, a file already on shared storage under a new volume's name is refused, never
   * emptied, unless the request adopts it; and sizes are checked before the map records anything.
   */
  @Test
  void createRefusesAnExistingFileAndAdoptsItOnRequest() throws Exception {
    startCluster();
    byte[] image = new byte[(int) VOLUME];
    new Random(3).nextBytes(image);
    Path file = dir.resolve("shared").resolve("img");
    Files.write(file, image);
    try (PeerFlashClient c = client("n2")) {
      assertThatThrownBy(() -> c.createVolume("img", VOLUME, CacheMode.WRITE_BACK, 1))
          .isInstanceOfSatisfying(
              PeerFlashException.class,
              e -> {
                assertThat(e.status().getCode()).isEqualTo(io.grpc.Status.Code.ALREADY_EXISTS);
                assertThat(e.status().getDescription()).contains(file.toString());
              });
      assertThat(Files.readAllBytes(file)).isEqualTo(image);
      assertThatThrownBy(() -> c.getVolume("img")).isInstanceOf(PeerFlashException.class);
      assertThatThrownBy(() -> c.createVolume("big", 1L << 62, CacheMode.WRITE_BACK, 1))
          .isInstanceOfSatisfying(
              PeerFlashException.class,
              e ->
                  assertThat(e.status().getCode()).isEqualTo(io.grpc.Status.Code.INVALID_ARGUMENT));
      assertThat(Files.exists(dir.resolve("shared").resolve("big"))).isFalse();

      Volume v =
          c.createVolume(
              "img",
              0,
              io.peerflash.proto.v1.VolumePolicy.newBuilder()
                  .setMode(CacheMode.WRITE_BACK)
                  .setReplicas(1)
                  .build(),
              true);
      assertThat(v.getSizeBytes()).isEqualTo(VOLUME);
      assertThat(c.read("img", 0, 1 << 20)).isEqualTo(Arrays.copyOf(image, 1 << 20));
      c.write("img", 0, new byte[4096]);
      c.flush("img");
      byte[] expected = image.clone();
      Arrays.fill(expected, 0, 4096, (byte) 0);
      assertThat(Files.readAllBytes(file)).isEqualTo(expected);
    }
  }
}
