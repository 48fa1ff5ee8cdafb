package io.peerflash.node.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.grpc.Status;
import io.peerflash.client.PeerFlashClient;
import io.peerflash.client.PeerFlashException;
import io.peerflash.node.NodeConfig;
import io.peerflash.node.PeerFlashNode;
import io.peerflash.proto.v1.AddNodeResponse;
import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.ClusterMember;
import io.peerflash.proto.v1.DrainNodeResponse;
import io.peerflash.proto.v1.MemberState;
import io.peerflash.proto.v1.MoveVolumeResponse;
import io.peerflash.proto.v1.RemoveNodeResponse;
import io.peerflash.replication.control.ClusterMap;
import io.peerflash.replication.control.Member;
import io.peerflash.replication.control.VolumeRecord;
import io.peerflash.replication.fault.FaultPoints;
import io.peerflash.testing.TestCertificates;
import io.peerflash.testing.TestPorts;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BooleanSupplier;
import org.apache.ratis.util.ExitUtils;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Online moves, drains and additions on real in-process nodes (real Raft, real gRPC on loopback): a
 * volume moves under a concurrent writer without losing or reordering an acknowledged write, a
 * drained node leaves the map and the Raft group with nothing lost, and an added node takes
 * placements.
 */
class MoveAndDrainTest {
  static {
    // A Raft server that cannot start (its port taken) must fail its test, not exit the test JVM.
    ExitUtils.disableSystemExit();
  }

  private static final int VOLUME = 2 << 20;
  private static final Duration WAIT = Duration.ofSeconds(45);

  @TempDir Path dir;
  private final TestCertificates certs = TestCertificates.shared();
  private final Map<String, PeerFlashNode> nodes = new LinkedHashMap<>();
  private final Map<String, String> clientAddress = new HashMap<>();
  private final Map<String, String> raftAddress = new LinkedHashMap<>();

  @AfterEach
  void stop() {
    nodes.values().forEach(PeerFlashNode::close);
  }

  private static int freePort() throws Exception {
    return TestPorts.free();
  }

  private NodeConfig config(String id, Map<String, String> peers) {
    Map<String, String> c = new HashMap<>();
    c.put("id", id);
    c.put("listen", clientAddress.get(id));
    c.put("raft", raftAddress.get(id));
    c.put(
        "peers",
        String.join(
            ",", peers.entrySet().stream().map(e -> e.getKey() + "=" + e.getValue()).toList()));
    c.put("fault-domain", "rack-" + id);
    c.put("data-dir", dir.resolve(id).toString());
    c.put("shared-dir", dir.resolve("shared").toString());
    c.put("cache-size", "16MiB");
    // Long enough that a loaded machine does not mark a live target DOWN in the middle of a move.
    c.put("lease-timeout-ms", "3000");
    c.put("clock-skew-margin-ms", "500");
    c.put("replication-ack-timeout-ms", "1000");
    c.put("storage-retry-initial-backoff-ms", "20");
    c.put("storage-retry-max-backoff-ms", "200");
    c.put("flush-storage-failure-timeout-ms", "1500");
    c.putAll(certs.nodeSettings(id));
    return NodeConfig.fromMap(c);
  }

  private void allocate(String id) throws Exception {
    raftAddress.put(id, "127.0.0.1:" + freePort());
    clientAddress.put(id, "127.0.0.1:" + freePort());
  }

  private void startCluster(int n) throws Exception {
    for (int i = 1; i <= n; i++) {
      allocate("n" + i);
    }
    Map<String, String> peers = new LinkedHashMap<>(raftAddress);
    for (String id : peers.keySet()) {
      nodes.put(id, PeerFlashNode.start(config(id, peers)));
    }
    await(() -> nodes.values().stream().allMatch(x -> x.cluster().ready()), "cluster ready");
  }

  private PeerFlashClient client(String... ids) {
    String targets = String.join(",", Arrays.stream(ids).map(clientAddress::get).toList());
    return PeerFlashClient.builder()
        .target(targets)
        .security(certs.adminSecurity())
        .deadline(Duration.ofSeconds(20))
        .build();
  }

  private PeerFlashClient clientOfAll() {
    return client(nodes.keySet().toArray(String[]::new));
  }

  private ClusterMap map(String id) {
    return nodes.get(id).cluster().controlPlane().map();
  }

  private VolumeRecord record(String id, String volume) {
    return map(id).volume(volume).orElseThrow();
  }

  private Path shared(String volume) {
    return dir.resolve("shared").resolve(volume);
  }

  private static void await(BooleanSupplier condition, String what) throws InterruptedException {
    long deadline = System.nanoTime() + WAIT.toNanos();
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("timed out waiting for " + what);
      }
      Thread.sleep(20);
    }
  }

  /** One acknowledged write of the model. */
  private record Write(long offset, byte[] data) {}

  private static Write randomWrite(Random rnd) {
    int len = 512 * (1 + rnd.nextInt(16));
    long off = 512L * rnd.nextInt((VOLUME - len) / 512);
    byte[] data = new byte[len];
    rnd.nextBytes(data);
    return new Write(off, data);
  }

  private static byte[] replay(List<Write> writes, int count) {
    byte[] model = new byte[VOLUME];
    for (int i = 0; i < count; i++) {
      Write w = writes.get(i);
      System.arraycopy(w.data(), 0, model, (int) w.offset(), w.data().length);
    }
    return model;
  }

  private static byte[] writeSome(
      PeerFlashClient c, String volume, byte[] model, long seed, int n) {
    Random rnd = new Random(seed);
    for (int i = 0; i < n; i++) {
      Write w = randomWrite(rnd);
      c.write(volume, w.offset(), w.data());
      System.arraycopy(w.data(), 0, model, (int) w.offset(), w.data().length);
    }
    return model;
  }

  private static byte[] readAll(PeerFlashClient c, String volume) {
    byte[] all = new byte[VOLUME];
    for (int off = 0; off < VOLUME; off += 1 << 20) {
      System.arraycopy(c.read(volume, off, 1 << 20), 0, all, off, 1 << 20);
    }
    return all;
  }

  private boolean holds(String id, String volume) {
    return nodes.get(id).engine().listVolumes().stream().anyMatch(v -> v.name().equals(volume));
  }

  /**
   * A single writer that retries each write until it is acknowledged, logging acknowledged writes
   * in order (the order they were applied: the next write starts only after the previous ack).
   */
  private static final class Writer extends Thread {
    final List<Write> acked = new ArrayList<>();
    final AtomicBoolean stop = new AtomicBoolean();
    final AtomicReference<Throwable> failure = new AtomicReference<>();
    volatile int retries;
    private final PeerFlashClient client;
    private final String volume;

    Writer(PeerFlashClient client, String volume) {
      super("test-writer");
      this.client = client;
      this.volume = volume;
    }

    synchronized int ackedCount() {
      return acked.size();
    }

    synchronized List<Write> ackedCopy() {
      return List.copyOf(acked);
    }

    @Override
    public void run() {
      Random rnd = new Random(99);
      long giveUp = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
      try {
        while (!stop.get()) {
          Write w = randomWrite(rnd);
          while (true) {
            try {
              client.write(volume, w.offset(), w.data());
              break;
            } catch (PeerFlashException e) {
              retries++;
              if (System.nanoTime() > giveUp) {
                throw e;
              }
              Thread.sleep(10);
            }
          }
          synchronized (this) {
            acked.add(w);
          }
        }
      } catch (Throwable t) {
        failure.set(t);
      }
    }
  }

  @Test
  void moveUnderConcurrentWriterLosesNothingAndTheOldOwnerStopsWriting() throws Exception {
    startCluster(3);
    try (PeerFlashClient admin = client("n2");
        PeerFlashClient writerClient = clientOfAll()) {
      admin.createVolume("vm1", VOLUME, CacheMode.WRITE_BACK, 1);
      assertThat(record("n2", "vm1").owner()).isEqualTo("n2");
      VolumeRecord before = record("n2", "vm1");
      String replica = before.replicaSet().get(0);
      // The target holds no copy: it serves everything from shared storage after the move.
      String target =
          List.of("n1", "n3").stream().filter(x -> !x.equals(replica)).findFirst().orElseThrow();
      PeerFlashNode oldOwner = nodes.get("n2");
      // Counts every run of blocks the old owner's destager is about to write to shared storage.
      oldOwner
          .faults()
          .arm(
              FaultPoints.DESTAGE_STORAGE_WRITE,
              "vm1",
              FaultPoints.Action.DELAY,
              0,
              Long.MAX_VALUE);

      Writer writer = new Writer(writerClient, "vm1");
      // At the first apply of the ChangeOwner anywhere (the commit precedes it): what shared
      // storage holds, how many writes were acknowledged, and the old owner's storage writes.
      AtomicReference<byte[]> sharedAtCommit = new AtomicReference<>();
      AtomicReference<Integer> ackedAtCommit = new AtomicReference<>();
      AtomicReference<Long> oldOwnerWritesAtCommit = new AtomicReference<>();
      for (PeerFlashNode n : nodes.values()) {
        n.cluster()
            .controlPlane()
            .addCommandListener(
                (index, cmd, result, map) -> {
                  if (cmd.hasChangeOwner() && result.getOk()) {
                    synchronized (sharedAtCommit) {
                      if (sharedAtCommit.get() == null) {
                        oldOwnerWritesAtCommit.set(
                            oldOwner.faults().fired(FaultPoints.DESTAGE_STORAGE_WRITE));
                        ackedAtCommit.set(writer.ackedCount());
                        try {
                          sharedAtCommit.set(Files.readAllBytes(shared("vm1")));
                        } catch (java.io.IOException e) {
                          throw new java.io.UncheckedIOException(e);
                        }
                      }
                    }
                  }
                });
      }

      writer.start();
      await(() -> writer.ackedCount() >= 200, "writes before the move");
      MoveVolumeResponse moved = admin.moveVolume("vm1", target); // n2 is asked: it owns vm1
      assertThat(moved.getMoved()).isTrue();
      assertThat(moved.getPreviousOwner()).isEqualTo("n2");
      assertThat(moved.getOwner()).isEqualTo(target);
      assertThat(moved.getEpoch()).isGreaterThan(before.epoch());
      int ackedAtMove = writer.ackedCount();
      await(() -> writer.ackedCount() >= ackedAtMove + 200, "writes after the move");
      writer.stop.set(true);
      writer.join(30_000);
      assertThat(writer.failure.get()).isNull();
      List<Write> acked = writer.ackedCopy();
      byte[] model = replay(acked, acked.size());

      // Every acknowledged write reads back from the new owner.
      assertThat(record(target, "vm1").owner()).isEqualTo(target);
      assertThat(record(target, "vm1").epoch()).isEqualTo(moved.getEpoch());
      assertThat(readAll(writerClient, "vm1")).isEqualTo(model);
      assertThat(writerClient.ownerOf("vm1")).isEqualTo(clientAddress.get(target));
      // The old owner holds no copy.
      await(() -> !holds("n2", "vm1"), "the old owner to drop its copy");

      // When the ChangeOwner committed, shared storage held every acknowledged write: exactly
      // the first k of them, or k + 1 when the last ack had not been logged by the writer yet.
      int k = ackedAtCommit.get();
      byte[] atCommit = sharedAtCommit.get();
      assertThat(
              Arrays.equals(atCommit, replay(acked, k))
                  || (k < acked.size() && Arrays.equals(atCommit, replay(acked, k + 1))))
          .as("shared storage at the commit holds the %d writes acknowledged before it", k)
          .isTrue();
      // The old owner destaged before the handover, and never after the commit.
      long oldWrites = oldOwner.faults().fired(FaultPoints.DESTAGE_STORAGE_WRITE);
      assertThat(oldOwnerWritesAtCommit.get()).isPositive();
      // Checked after the old owner dropped its copy (awaited above): the destager writes a
      // volume only under its gate and stops at the drop, so no later write can show up.
      writerClient.flush("vm1");
      assertThat(oldOwner.faults().fired(FaultPoints.DESTAGE_STORAGE_WRITE))
          .isEqualTo(oldWrites)
          .isEqualTo(oldOwnerWritesAtCommit.get());
      assertThat(Files.readAllBytes(shared("vm1"))).isEqualTo(model);

      // Moving to the owner is a no-op; asking a non-owner forwards to the owner.
      MoveVolumeResponse again = admin.moveVolume("vm1", target);
      assertThat(again.getMoved()).isFalse();
      assertThat(again.getEpoch()).isEqualTo(moved.getEpoch());
      MoveVolumeResponse back = admin.moveVolume("vm1", "n2");
      assertThat(back.getMoved()).isTrue();
      assertThat(back.getPreviousOwner()).isEqualTo(target);
      assertThat(readAll(writerClient, "vm1")).isEqualTo(model);
    }
  }

  @Test
  void badMovesFailClearlyAndFailingStorageLeavesTheVolumeWithItsOwner() throws Exception {
    startCluster(3);
    try (PeerFlashClient c = client("n1")) {
      c.createVolume("vm1", VOLUME, CacheMode.WRITE_BACK, 1);
      byte[] model = writeSome(c, "vm1", new byte[VOLUME], 3, 100);
      VolumeRecord before = record("n1", "vm1");

      assertThatThrownBy(() -> c.moveVolume("nope", "n2"))
          .isInstanceOf(PeerFlashException.class)
          .hasMessageContaining("NOT_FOUND")
          .hasMessageContaining("volume 'nope' does not exist");
      assertThatThrownBy(() -> c.moveVolume("vm1", "n9"))
          .hasMessageContaining("NOT_FOUND")
          .hasMessageContaining("node 'n9' is not a member");
      assertThatThrownBy(() -> c.moveVolume("vm1", "")).hasMessageContaining("INVALID_ARGUMENT");
      assertThatThrownBy(() -> c.drainNode("n9")).hasMessageContaining("NOT_FOUND");
      assertThatThrownBy(() -> c.removeNode("n2"))
          .hasMessageContaining("FAILED_PRECONDITION")
          .hasMessageContaining("drain it first");
      assertThatThrownBy(() -> c.addNode("n4", "nonsense", Duration.ofSeconds(5)))
          .hasMessageContaining("INVALID_ARGUMENT");
      int closedPort = freePort();
      assertThatThrownBy(() -> c.addNode("n4", "127.0.0.1:" + closedPort, Duration.ofSeconds(5)))
          .satisfies(
              e -> assertThat(((PeerFlashException) e).code()).isEqualTo(Status.Code.UNAVAILABLE))
          .hasMessageContaining("nothing answers at 127.0.0.1:" + closedPort);

      // Shared storage fails: the move gives up, the old owner keeps serving at the same epoch.
      nodes
          .get("n1")
          .faults()
          .arm(FaultPoints.DESTAGE_STORAGE_WRITE, "vm1", FaultPoints.Action.DROP);
      writeSome(c, "vm1", model, 11, 20); // dirty data that cannot reach shared storage now
      String to = before.replicaSet().get(0);
      long start = System.nanoTime();
      assertThatThrownBy(() -> c.moveVolume("vm1", to, Duration.ofSeconds(20)))
          .satisfies(
              e -> assertThat(((PeerFlashException) e).code()).isEqualTo(Status.Code.UNAVAILABLE))
          .hasMessageContaining("moving volume 'vm1' from n1 to " + to)
          .hasMessageContaining("shared storage");
      assertThat(TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - start)).isLessThan(15);
      assertThat(record("n1", "vm1").owner()).isEqualTo("n1");
      assertThat(record("n1", "vm1").epoch()).isEqualTo(before.epoch());
      assertThat(nodes.get("n1").engine().handingOver("vm1")).isFalse();
      writeSome(c, "vm1", model, 4, 20);
      assertThat(readAll(c, "vm1")).isEqualTo(model);

      // A move that runs out of time says which limit it hit; the owner still serves.
      nodes.get("n1").faults().disarmAll();
      nodes
          .get("n1")
          .faults()
          .arm(
              FaultPoints.DESTAGE_STORAGE_WRITE,
              "vm1",
              FaultPoints.Action.DELAY,
              1000,
              Long.MAX_VALUE);
      writeSome(c, "vm1", model, 12, 20);
      assertThatThrownBy(() -> c.moveVolume("vm1", to, Duration.ofMillis(300)))
          .satisfies(
              e ->
                  assertThat(((PeerFlashException) e).code())
                      .isEqualTo(Status.Code.DEADLINE_EXCEEDED))
          .hasMessageContaining("move timeout 300 ms");
      assertThat(record("n1", "vm1").owner()).isEqualTo("n1");

      // Storage heals: the move goes through with nothing lost.
      nodes.get("n1").faults().disarmAll();
      MoveVolumeResponse moved = c.moveVolume("vm1", to);
      assertThat(moved.getOwner()).isEqualTo(to);
      assertThat(readAll(c, "vm1")).isEqualTo(model);
      assertThat(Files.readAllBytes(shared("vm1"))).isEqualTo(model);

      // A DOWN member cannot take a volume.
      String down =
          List.of("n2", "n3").stream().filter(x -> !x.equals(to)).findFirst().orElseThrow();
      nodes.remove(down).close();
      await(
          () -> map("n1").member(down).map(m -> m.state() == Member.State.DOWN).orElse(false),
          down + " marked DOWN");
      // Refused by the node asked or, when its map lags, by the map at the commit: either way the
      // owner serves the volume again.
      assertThatThrownBy(() -> c.moveVolume("vm1", down))
          .hasMessageContaining("FAILED_PRECONDITION")
          .hasMessageContaining(down + " is DOWN");
      assertThat(record("n1", "vm1").owner()).isEqualTo(to);
      assertThat(nodes.get(to).engine().handingOver("vm1")).isFalse();
      assertThat(readAll(c, "vm1")).isEqualTo(model);
      assertThatThrownBy(() -> c.drainNode(down))
          .hasMessageContaining("FAILED_PRECONDITION")
          .hasMessageContaining("DOWN");
    }
  }

  @Test
  void drainedNodeLeavesTheMapAndTheRaftGroupWithNothingLost() throws Exception {
    startCluster(4);
    try (PeerFlashClient viaN1 = client("n1");
        PeerFlashClient viaN2 = client("n2");
        PeerFlashClient c = clientOfAll()) {
      // a: owned by n1, replicated on n2; b: owned by n2, replicated on n3 (least loaded, by id).
      viaN1.createVolume("a", VOLUME, CacheMode.WRITE_BACK, 1);
      viaN2.createVolume("b", VOLUME, CacheMode.WRITE_BACK, 1);
      assertThat(record("n1", "a").owner()).isEqualTo("n1");
      assertThat(record("n1", "a").replicaSet()).containsExactly("n2");
      assertThat(record("n1", "b").owner()).isEqualTo("n2");
      assertThat(record("n1", "b").replicaSet()).containsExactly("n3");
      byte[] modelA = writeSome(c, "a", new byte[VOLUME], 5, 150);
      byte[] modelB = writeSome(c, "b", new byte[VOLUME], 6, 150);
      assertThat(nodes.get("n2").engine().volumeStatus("a").dirtyBytes()).isPositive();

      DrainNodeResponse r = c.drainNode("n2");
      assertThat(r.getMember().getState()).isEqualTo(MemberState.MEMBER_DRAINING);
      long deadline = System.nanoTime() + WAIT.toNanos();
      while (r.getOwnedVolumesCount() > 0 || r.getReplicaOfCount() > 0) {
        assertThat(System.nanoTime()).as("drain progress: %s", r).isLessThan(deadline);
        Thread.sleep(200);
        r = c.drainNode("n2");
      }
      // b went to its in-sync replica; a's owner replaced n2 with a replica that is in sync.
      VolumeRecord a = record("n1", "a");
      VolumeRecord b = record("n1", "b");
      assertThat(b.owner()).isEqualTo("n3");
      assertThat(a.owner()).isEqualTo("n1");
      assertThat(a.replicaSet()).hasSize(1).doesNotContain("n2");
      assertThat(a.syncing()).isEmpty();
      await(() -> !holds("n2", "a") && !holds("n2", "b"), "n2 to drop its copies");

      RemoveNodeResponse removed = c.removeNode("n2");
      assertThat(removed.getVotersList()).containsExactlyInAnyOrder("n1", "n3", "n4");
      for (String id : List.of("n1", "n3", "n4")) {
        await(() -> !map(id).members().containsKey("n2"), id + " to drop n2 from the map");
        await(
            () -> !nodes.get(id).cluster().controlPlane().raftPeers().containsKey("n2"),
            id + " to drop n2 from the Raft group");
      }
      // The removed node, still running, says so instead of answering as a member.
      await(
          () -> nodes.get("n2").cluster().fencedReason().contains("not a member of the cluster"),
          "n2 to say it is no longer a member");
      try (PeerFlashClient removedNode = client("n2")) {
        assertThat(removedNode.status().getFencedReason()).contains("it was removed");
      }
      nodes.remove("n2").close();

      // Nothing lost: served, and after Flush on shared storage.
      try (PeerFlashClient rest = client("n1", "n3", "n4")) {
        assertThat(readAll(rest, "a")).isEqualTo(modelA);
        assertThat(readAll(rest, "b")).isEqualTo(modelB);
        writeSome(rest, "b", modelB, 7, 20);
        rest.flush("a");
        rest.flush("b");
      }
      assertThat(Files.readAllBytes(shared("a"))).isEqualTo(modelA);
      assertThat(Files.readAllBytes(shared("b"))).isEqualTo(modelB);
    }
  }

  @Test
  void addedNodeRegistersAndTakesPlacements() throws Exception {
    startCluster(3);
    try (PeerFlashClient c = client("n1")) {
      c.createVolume("r", VOLUME, CacheMode.WRITE_BACK, 2);
      assertThat(record("n1", "r").replicaSet()).containsExactlyInAnyOrder("n2", "n3");
      byte[] modelR = writeSome(c, "r", new byte[VOLUME], 8, 100);

      // n4 starts with the current voters as peers; until added it stays out of the map.
      allocate("n4");
      Map<String, String> voters = new LinkedHashMap<>(raftAddress);
      voters.remove("n4");
      nodes.put("n4", PeerFlashNode.start(config("n4", voters)));
      await(
          () -> nodes.get("n4").cluster().controlPlane().registrationsPutOff() >= 3,
          "n4 to look for itself in the Raft group 3 times");
      assertThat(map("n1").members()).doesNotContainKey("n4");
      assertThat(nodes.get("n4").cluster().ready()).isFalse();

      AddNodeResponse added = c.addNode("n4", raftAddress.get("n4"), Duration.ofSeconds(30));
      ClusterMember m = added.getMember();
      assertThat(m.getId()).isEqualTo("n4");
      assertThat(m.getState()).isEqualTo(MemberState.MEMBER_UP);
      assertThat(m.getGrpcAddress()).isEqualTo(clientAddress.get("n4"));
      assertThat(added.getVotersList()).containsExactlyInAnyOrder("n1", "n2", "n3", "n4");
      await(() -> nodes.get("n4").cluster().ready(), "n4 serving");
      await(() -> map("n4").volume("r").isPresent(), "n4 following the map");

      // A new volume created through n4 is owned and served by it.
      try (PeerFlashClient viaN4 = client("n4")) {
        viaN4.createVolume("x", VOLUME, CacheMode.WRITE_BACK, 1);
        assertThat(record("n1", "x").owner()).isEqualTo("n4");
        byte[] modelX = writeSome(viaN4, "x", new byte[VOLUME], 9, 50);
        assertThat(readAll(viaN4, "x")).isEqualTo(modelX);
        assertThat(viaN4.getVolume("x").getEffectiveReplicas()).isEqualTo(1);
      }

      // A replica lost elsewhere is replaced on n4 by re-protection.
      String lost = "n3";
      nodes.remove(lost).close();
      await(
          () -> record("n1", "r").replicaSet().contains("n4"),
          "r re-protected onto n4, has " + record("n1", "r"));
      assertThat(record("n1", "r").replicaSet()).doesNotContain(lost);
      writeSome(c, "r", modelR, 10, 20);
      assertThat(readAll(c, "r")).isEqualTo(modelR);
    }
  }
}
