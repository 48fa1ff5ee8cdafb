package io.peerflash.node.nbd;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.grpc.Status;
import io.peerflash.client.PeerFlashClient;
import io.peerflash.client.PeerFlashException;
import io.peerflash.node.cluster.InProcessCluster;
import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.ReplicaStatus;
import io.peerflash.replication.fault.FaultPoints;
import io.peerflash.replication.fault.FaultPoints.Action;
import io.peerflash.security.Identity;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Any node serves any volume over NBD: three real nodes in one JVM (Raft, gRPC and NBD over TLS on
 * loopback, real RocksDB and files), an NBD client with an io certificate connected to a node that
 * does not own the volume. Reads and writes are byte-exact; when the owner is killed, I/O pauses
 * while a replica takes over and resumes without an error; an OFFLINE volume fails at once; a write
 * the owner does not finish within nbd-forward-timeout-ms is answered EIO, never success.
 */
@Timeout(value = 5, unit = TimeUnit.MINUTES)
class NbdForwardingTest {
  static final int SIZE = 8 << 20;
  static final int BLOCK = 64 << 10;

  @TempDir Path dir;
  InProcessCluster cluster;
  Path io;

  void start(Map<String, String> extra) throws Exception {
    Map<String, String> settings = new HashMap<>(extra);
    settings.put("nbd", "127.0.0.1:0");
    cluster = new InProcessCluster(dir, 3, settings);
    io = cluster.certs.client("nbd-io", Identity.Role.IO);
  }

  @AfterEach
  void stop() {
    if (cluster != null) {
      cluster.close();
    }
  }

  int nbdPort(String node) {
    return cluster.node(node).nbd().tcpPort();
  }

  /** Whether {@code node}'s replica of the map has the volume (has applied its creation). */
  boolean knownOn(String node, String volume) {
    try {
      cluster.node(node).cluster().routing().getVolume(volume);
      return true;
    } catch (Exception e) {
      return false;
    }
  }

  /** The replica in sync with the owner, once there is one. */
  String awaitInSyncReplica(String volume, String owner) throws Exception {
    AtomicLong none = new AtomicLong();
    String[] found = new String[1];
    InProcessCluster.await(
        () -> {
          try {
            for (ReplicaStatus r :
                cluster.node(owner).cluster().routing().getVolume(volume).getReplicasList()) {
              if (r.getInSync()) {
                found[0] = r.getNode();
                return true;
              }
            }
          } catch (Exception e) {
            none.incrementAndGet();
          }
          return false;
        },
        30,
        "a replica of " + volume + " in sync");
    return found[0];
  }

  static String third(String a, String b) {
    for (String n : List.of("n1", "n2", "n3")) {
      if (!n.equals(a) && !n.equals(b)) {
        return n;
      }
    }
    throw new AssertionError();
  }

  @Test
  void aNonOwnerServesByteExactAndIoPausesUnderTenSecondsWhenTheOwnerIsKilled() throws Exception {
    start(Map.of());
    try (PeerFlashClient c = cluster.client("n1")) {
      c.createVolume("vm", SIZE, CacheMode.WRITE_BACK, 1);
    }
    assertThat(cluster.volume("vm").getOwner()).isEqualTo("n1");
    String replica = awaitInSyncReplica("vm", "n1");
    String entry = third("n1", replica);
    byte[] model = new byte[SIZE];
    Random random = new Random(42);
    try (TlsNbdClient nbd = new TlsNbdClient(nbdPort(entry), io, "vm")) {
      assertThat(nbd.sizeBytes).isEqualTo(SIZE);
      // Sizes from one sector to several engine pieces (1 MiB each), unaligned to the pieces.
      int[][] writes = {
        {0, 512}, {4096, 4096}, {(1 << 20) - 512, 8192}, {(3 << 20) + 512, 3 << 20}
      };
      for (int[] w : writes) {
        byte[] d = new byte[w[1]];
        random.nextBytes(d);
        assertThat(nbd.write(w[0], d, w[0] == 0)).isZero();
        System.arraycopy(d, 0, model, w[0], d.length);
      }
      assertThat(nbd.writeZeroes(5 << 20, 4096)).isZero();
      Arrays.fill(model, 5 << 20, (5 << 20) + 4096, (byte) 0);
      assertThat(nbd.flush()).isZero();
      assertThat(readAll(nbd)).as("the volume read through " + entry).isEqualTo(model);

      // I/O goes on through the kill of the owner: every request succeeds; the longest one is
      // the pause the client sees.
      AtomicInteger done = new AtomicInteger();
      AtomicBoolean stop = new AtomicBoolean();
      AtomicLong longestNanos = new AtomicLong();
      CompletableFuture<Void> load =
          CompletableFuture.runAsync(
              () -> {
                Random r = new Random(7);
                byte[] back = new byte[BLOCK];
                try {
                  for (int i = 0; !stop.get(); i++) {
                    int at = (i % (SIZE / BLOCK)) * BLOCK;
                    byte[] d = new byte[BLOCK];
                    r.nextBytes(d);
                    long t0 = System.nanoTime();
                    int error = nbd.write(at, d, false);
                    long t1 = System.nanoTime();
                    if (error != 0) {
                      throw new AssertionError("write " + i + " at " + at + ": NBD error " + error);
                    }
                    synchronized (model) {
                      System.arraycopy(d, 0, model, at, BLOCK);
                    }
                    error = nbd.read(at, back);
                    long t2 = System.nanoTime();
                    if (error != 0 || !Arrays.equals(back, d)) {
                      throw new AssertionError("read " + i + " at " + at + ": error " + error);
                    }
                    longestNanos.accumulateAndGet(Math.max(t1 - t0, t2 - t1), Math::max);
                    done.incrementAndGet();
                  }
                } catch (java.io.IOException e) {
                  throw new java.io.UncheckedIOException(e);
                }
              });
      InProcessCluster.await(() -> done.get() >= 50 || load.isDone(), 30, "I/O before the kill");
      long killedAt = System.nanoTime();
      cluster.crash("n1");
      InProcessCluster.await(
          () -> !cluster.volume("vm").getOwner().equals("n1") || load.isDone(),
          30,
          "a new owner for vm");
      long takeoverMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - killedAt);
      int atTakeover = done.get();
      InProcessCluster.await(
          () -> done.get() >= atTakeover + 50 || load.isDone(), 30, "I/O after the takeover");
      stop.set(true);
      load.get(30, TimeUnit.SECONDS);
      long pauseMs = TimeUnit.NANOSECONDS.toMillis(longestNanos.get());
      System.out.printf(
          "NBD through %s: owner n1 killed, %s took over within %d ms; longest request %d ms%n",
          entry, cluster.volume("vm").getOwner(), takeoverMs, pauseMs);
      assertThat(cluster.volume("vm").getOwner()).isEqualTo(replica);
      assertThat(pauseMs).as("longest NBD request across the failover, ms").isLessThan(10_000);
      assertThat(nbd.flush()).isZero();
      synchronized (model) {
        assertThat(readAll(nbd)).as("the volume read through " + entry).isEqualTo(model);
      }
    }
    // The new owner serves the same bytes over its own NBD port.
    try (TlsNbdClient nbd = new TlsNbdClient(nbdPort(replica), io, "vm")) {
      assertThat(readAll(nbd)).as("the volume read through the new owner").isEqualTo(model);
    }
  }

  private static byte[] readAll(TlsNbdClient nbd) throws Exception {
    byte[] all = new byte[SIZE];
    byte[] piece = new byte[1 << 20];
    for (int at = 0; at < SIZE; at += piece.length) {
      assertThat(nbd.read(at, piece)).as("read at %d", at).isZero();
      System.arraycopy(piece, 0, all, at, piece.length);
    }
    return all;
  }

  /**
   * A volume created through one node is usable at once through another whose replica of the map
   * has not applied the creation yet (its applying held back at MAP_APPLY, as a slow follower's
   * is): the node catches up with the leader's map before it answers that there is no such volume.
   * Over NBD (the handshake) and the gRPC API (stat, list, and a write that follows the owner).
   */
  @Test
  void aNodeThatHasNotAppliedAVolumesCreationYetServesItInsteadOfDenyingIt() throws Exception {
    start(Map.of());
    String leader = cluster.node("n1").cluster().controlPlane().leaderId().orElseThrow();
    String entry = leader.equals("n1") ? "n2" : "n1";
    FaultPoints faults = cluster.node(entry).faults();
    byte[] d = new byte[8192];
    new Random(7).nextBytes(d);

    faults.arm(FaultPoints.MAP_APPLY, entry, Action.DELAY, 2_500, 1);
    try (PeerFlashClient c = cluster.client(leader)) {
      c.createVolume("fresh", SIZE, CacheMode.WRITE_BACK, 0);
    }
    assertThat(knownOn(entry, "fresh")).as("fresh applied on " + entry + " already").isFalse();
    try (TlsNbdClient nbd = new TlsNbdClient(nbdPort(entry), io, "fresh")) {
      assertThat(nbd.sizeBytes).isEqualTo(SIZE);
      assertThat(nbd.write(4096, d, true)).isZero();
      byte[] back = new byte[d.length];
      assertThat(nbd.read(4096, back)).isZero();
      assertThat(back).isEqualTo(d);
    }

    faults.arm(FaultPoints.MAP_APPLY, entry, Action.DELAY, 2_500, 1);
    try (PeerFlashClient c = cluster.client(leader)) {
      c.createVolume("fresh2", SIZE, CacheMode.WRITE_BACK, 0);
    }
    assertThat(knownOn(entry, "fresh2")).as("fresh2 applied on " + entry + " already").isFalse();
    try (PeerFlashClient c = cluster.client(entry)) {
      assertThat(c.getVolume("fresh2").getOwner()).isEqualTo(leader);
      assertThat(c.listVolumes()).extracting(v -> v.getName()).contains("fresh", "fresh2");
      c.write("fresh2", 0, d);
      assertThat(c.read("fresh2", 0, d.length)).isEqualTo(d);
    }
    // The first call a lagging node sees for a volume is a write (routed after catching up).
    faults.arm(FaultPoints.MAP_APPLY, entry, Action.DELAY, 2_500, 1);
    try (PeerFlashClient c = cluster.client(leader)) {
      c.createVolume("fresh3", SIZE, CacheMode.WRITE_BACK, 0);
    }
    assertThat(knownOn(entry, "fresh3")).as("fresh3 applied on " + entry + " already").isFalse();
    try (PeerFlashClient c = cluster.client(entry)) {
      c.write("fresh3", 8192, d);
      assertThat(c.read("fresh3", 8192, d.length)).isEqualTo(d);
    }
    // A name no node knows is still refused, once the entry node has asked the leader.
    try (PeerFlashClient c = cluster.client(entry)) {
      assertThatThrownBy(() -> c.getVolume("never"))
          .isInstanceOfSatisfying(
              PeerFlashException.class, e -> assertThat(e.code()).isEqualTo(Status.Code.NOT_FOUND));
    }
    assertThatThrownBy(() -> new TlsNbdClient(nbdPort(entry), io, "never").close())
        .hasMessageContaining("volume 'never' does not exist");

    // A change made through a lagging node shows in that node's answers at once.
    faults.arm(FaultPoints.MAP_APPLY, entry, Action.DELAY, 2_500, 1);
    try (PeerFlashClient c = cluster.client(entry)) {
      c.setPolicy("fresh3", CacheMode.WRITE_THROUGH, 0);
      assertThat(c.getVolume("fresh3").getPolicy().getMode())
          .as("fresh3's mode through " + entry + " right after it changed it")
          .isEqualTo(CacheMode.WRITE_THROUGH);
    }

    // Cut off from the leader, the node answers from its own map: a list of what it knows, and an
    // NBD refusal that says its map may lag instead of claiming the volume does not exist.
    faults.arm(FaultPoints.RAFT_SUBMIT, entry, Action.DROP);
    try (PeerFlashClient c = cluster.client(entry)) {
      assertThat(c.listVolumes())
          .extracting(v -> v.getName())
          .contains("fresh", "fresh2", "fresh3");
    }
    assertThatThrownBy(() -> new TlsNbdClient(nbdPort(entry), io, "unknown").close())
        .hasMessageContaining("volume 'unknown' is not known to this node")
        .hasMessageContaining("may lag");
    faults.disarm(FaultPoints.RAFT_SUBMIT, entry);
  }

  @Test
  void anOfflineVolumeFailsAtOnceInsteadOfWaitingOutTheGiveUpTime() throws Exception {
    start(Map.of()); // nbd-forward-timeout-ms 60000
    try (PeerFlashClient c = cluster.client("n1")) {
      c.createVolume("solo", SIZE, CacheMode.WRITE_BACK, 0);
    }
    try (TlsNbdClient nbd = new TlsNbdClient(nbdPort("n2"), io, "solo")) {
      byte[] d = new byte[4096];
      Arrays.fill(d, (byte) 9);
      assertThat(nbd.write(0, d, true)).isZero();
      cluster.crash("n1");
      long t0 = System.nanoTime();
      // Refused connections are retried until the map marks n1 DOWN; with no replica the
      // volume is then OFFLINE and the request fails without waiting any longer.
      int error = nbd.read(0, new byte[4096]);
      long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
      assertThat(error).isEqualTo(NbdProtocol.EIO);
      assertThat(ms).as("ms until EIO").isLessThan(20_000);
    }
  }

  @Test
  void aWriteTheOwnerDoesNotFinishWithinTheGiveUpTimeIsAnsweredEioNotSuccess() throws Exception {
    // Write-through: a write is acknowledged once on shared storage, 2 s away.
    start(Map.of("nbd-forward-timeout-ms", "500", "storage-latency-us", "2000000"));
    try (PeerFlashClient c = cluster.client("n1")) {
      c.createVolume("slow", SIZE, CacheMode.WRITE_THROUGH, 0);
    }
    try (TlsNbdClient nbd = new TlsNbdClient(nbdPort("n2"), io, "slow")) {
      byte[] d = new byte[4096];
      Arrays.fill(d, (byte) 1);
      long t0 = System.nanoTime();
      int error = nbd.write(0, d, false);
      long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
      assertThat(error).as("the write's NBD error").isEqualTo(NbdProtocol.EIO);
      assertThat(ms).isGreaterThanOrEqualTo(500).isLessThan(2_000);
    }
  }

  @Test
  void realClientsWriteThroughOneNonOwnerAndReadThroughAnother() throws Exception {
    start(Map.of());
    try (PeerFlashClient c = cluster.client("n1")) {
      c.createVolume("disk", SIZE, CacheMode.WRITE_BACK, 1);
    }
    String a = "n2";
    String b = "n3";
    String json = ClientTools.ok(30, "nbdinfo", "--json", uri(a, "disk"));
    assertThat(json).contains("\"export-size\": " + SIZE).contains("\"can_multi_conn\": true");
    List<String> write = new ArrayList<>(List.of("qemu-io"));
    write.addAll(qemuImage(a, "disk"));
    write.addAll(
        List.of(
            "-c", "write -f -P 0xab 0 64k",
            "-c", "write -P 0xcd 512k 1536k",
            "-c", "write -z 4m 1m",
            "-c", "flush"));
    String out = ClientTools.ok(60, write.toArray(String[]::new));
    assertThat(out).doesNotContain("failed").doesNotContain("error");
    List<String> read = new ArrayList<>(List.of("qemu-io"));
    read.addAll(qemuImage(b, "disk"));
    read.addAll(
        List.of(
            "-c", "read -P 0xab 0 64k",
            "-c", "read -P 0xcd 512k 1536k",
            "-c", "read -P 0 4m 1m"));
    out = ClientTools.ok(60, read.toArray(String[]::new));
    assertThat(out).doesNotContain("failed").doesNotContain("error").contains("read 1048576/");
    Path copy = dir.resolve("copy.img");
    ClientTools.ok(60, "nbdcopy", uri(b, "disk"), copy.toString());
    byte[] expected = new byte[SIZE];
    Arrays.fill(expected, 0, 64 << 10, (byte) 0xab);
    Arrays.fill(expected, 512 << 10, (512 << 10) + (1536 << 10), (byte) 0xcd);
    assertThat(Files.readAllBytes(copy)).isEqualTo(expected);
  }

  private String uri(String node, String volume) {
    return "nbds://localhost:" + nbdPort(node) + "/" + volume + "?tls-certificates=" + io;
  }

  private List<String> qemuImage(String node, String volume) {
    return List.of(
        "--object",
        "tls-creds-x509,id=tls0,endpoint=client,dir=" + io,
        "--image-opts",
        "driver=raw,file.driver=nbd,file.host=localhost,file.port="
            + nbdPort(node)
            + ",file.export="
            + volume
            + ",file.tls-creds=tls0");
  }
}
