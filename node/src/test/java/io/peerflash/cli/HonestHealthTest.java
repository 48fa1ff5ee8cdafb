package io.peerflash.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.peerflash.client.PeerFlashClient;
import io.peerflash.client.PeerFlashException;
import io.peerflash.node.cluster.InProcessCluster;
import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.VolumeState;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.io.TempDir;

/**
 * The CLI against three real nodes (Raft, gRPC over loopback, mutual TLS) while one is down: volume
 * states say what is wrong and why, a replica count the cluster cannot hold is refused unless asked
 * for, a volume no copy can take over fails at once, and {@code cluster health} sums it up. One
 * cluster for the class: the steps build on each other.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class HonestHealthTest {
  private static final long VOLUME = 1 << 20;

  @TempDir static Path dir;
  static InProcessCluster cluster;

  private ByteArrayOutputStream out;
  private ByteArrayOutputStream err;

  @BeforeAll
  static void start() throws Exception {
    cluster = new InProcessCluster(dir, 3, Map.of());
    try (PeerFlashClient n3 = cluster.client("n3");
        PeerFlashClient n1 = cluster.client("n1")) {
      // Owned by n3 with no replica: nothing can take it over once n3 is gone.
      n3.createVolume("solo", VOLUME, CacheMode.WRITE_BACK, 0);
      n3.write("solo", 0, new byte[4096]);
      n1.createVolume("pair", VOLUME, CacheMode.WRITE_BACK, 2);
    }
    cluster.crash("n3");
    InProcessCluster.await(
        () -> cluster.volume("solo").getState() == VolumeState.OFFLINE, 30, "n3 marked DOWN");
  }

  @AfterAll
  static void stop() {
    if (cluster != null) {
      cluster.close();
    }
  }

  private int run(String... args) {
    out = new ByteArrayOutputStream();
    err = new ByteArrayOutputStream();
    String[] all = new String[args.length + 4];
    System.arraycopy(args, 0, all, 0, args.length);
    all[args.length] = "--target";
    all[args.length + 1] = cluster.clientAddress.get("n1");
    all[args.length + 2] = "--certs";
    all[args.length + 3] = cluster.certs.admin().toString();
    return new PeerFlashCli(
            null,
            new PrintStream(out, true, StandardCharsets.UTF_8),
            new PrintStream(err, true, StandardCharsets.UTF_8))
        .execute(all);
  }

  private String out() {
    return out.toString(StandardCharsets.UTF_8);
  }

  private String err() {
    return err.toString(StandardCharsets.UTF_8);
  }

  @Test
  @Order(1)
  void aReadOfAVolumeNoCopyCanTakeOverFailsAtOnceSayingWhy() {
    long start = System.nanoTime();
    int exit = run("read", "solo", "--offset", "0", "--length", "4096", "--out", "/dev/null");
    long elapsedMs = (System.nanoTime() - start) / 1_000_000;

    assertThat(exit).isEqualTo(1);
    assertThat(err())
        .contains("UNAVAILABLE")
        .contains(
            "volume 'solo' is OFFLINE: its owner n3 is DOWN and no in-sync replica can take over");
    // Without the state trailer the client retried for its whole budget (about 18 s).
    assertThat(elapsedMs).as("read answered after %d ms", elapsedMs).isLessThan(5_000);
  }

  @Test
  @Order(1)
  void aWriteToAVolumeNoCopyCanTakeOverFailsAtOnceToo() throws Exception {
    Path in = dir.resolve("block.bin");
    java.nio.file.Files.write(in, new byte[4096]);
    long start = System.nanoTime();
    int exit = run("write", "solo", "--offset", "0", "--in", in.toString());
    long elapsedMs = (System.nanoTime() - start) / 1_000_000;

    assertThat(exit).isEqualTo(1);
    assertThat(err()).contains("UNAVAILABLE").contains("volume 'solo' is OFFLINE");
    assertThat(elapsedMs).as("write answered after %d ms", elapsedMs).isLessThan(5_000);
  }

  @Test
  @Order(1)
  void aWriteThatWentThroughToSharedStorageIsReported() throws Exception {
    // "pair" wants two replicas; with n3 gone it has one, so its writes go through.
    Path in = dir.resolve("one-chunk.bin");
    java.nio.file.Files.write(in, new byte[1 << 20]);
    int exit = run("write", "pair", "--offset", "0", "--in", in.toString());

    assertThat(exit).as(err()).isZero();
    assertThat(out()).contains("wrote 1.0 MiB to pair");
    assertThat(err())
        .contains("warning: 1 of 1 chunks went through to shared storage")
        .contains("a replica could not take its copy")
        .contains("peerflash volume stat pair");
  }

  @Test
  @Order(2)
  void statAndListShowTheStateAndTheReason() {
    assertThat(run("volume", "stat", "pair")).as(err()).isZero();
    assertThat(out())
        .contains("DEGRADED")
        .contains(
            "1 of 2 wanted replicas in sync, and the cluster has only 1 other UP member to hold"
                + " them: writes go through to shared storage");

    assertThat(run("volume", "list")).as(err()).isZero();
    assertThat(out()).containsPattern("solo .* OFFLINE .* its owner n3 is DOWN");

    assertThat(run("volume", "list", "-o", "json")).as(err()).isZero();
    assertThat(out()).contains("\"name\": \"solo\"").contains("\"state\": \"OFFLINE\"");
  }

  @Test
  @Order(3)
  void aReplicaCountTheClusterCannotHoldIsRefusedUnlessDegradedIsAllowed() {
    assertThat(run("volume", "create", "wide", "--size", "1MiB", "--replicas", "2")).isEqualTo(1);
    assertThat(err())
        .contains("FAILED_PRECONDITION")
        .contains("wants 2 replicas but the cluster has 1 UP member besides its owner")
        .contains("--allow-degraded");
    assertThat(run("volume", "list")).as(err()).isZero();
    assertThat(out()).doesNotContain("wide");
    // A bad size is INVALID_ARGUMENT whatever the replica count.
    try (PeerFlashClient c = cluster.client("n1")) {
      assertThatThrownBy(() -> c.createVolume("odd", 4097, CacheMode.WRITE_BACK, 2))
          .isInstanceOfSatisfying(
              PeerFlashException.class,
              e -> assertThat(e.code()).isEqualTo(io.grpc.Status.Code.INVALID_ARGUMENT));
    }

    assertThat(
            run(
                "volume",
                "create",
                "wide",
                "--size",
                "1MiB",
                "--replicas",
                "2",
                "--allow-degraded"))
        .as(err())
        .isZero();
    assertThat(err()).contains("warning: volume wide is DEGRADED: 1 of 2 wanted replicas in sync");

    assertThat(run("volume", "create", "narrow", "--size", "1MiB", "--replicas", "0"))
        .as(err())
        .isZero();
    assertThat(run("volume", "set-policy", "narrow", "--replicas", "2")).isEqualTo(1);
    assertThat(err()).contains("FAILED_PRECONDITION").contains("--allow-degraded");
    assertThat(run("volume", "set-policy", "narrow", "--replicas", "2", "--allow-degraded"))
        .as(err())
        .isZero();
    assertThat(err()).contains("warning: volume narrow is DEGRADED");
  }

  @Test
  @Order(4)
  void clusterHealthSumsItUpErrorsFirst() {
    assertThat(run("cluster", "health")).as(err()).isZero();
    String[] lines = out().split("\n");
    assertThat(lines[0]).isEqualTo("HEALTH_ERR");
    assertThat(lines[1]).startsWith("  ERR  volume solo is OFFLINE: its owner n3 is DOWN");
    assertThat(out())
        .contains("  WARN member n3 is DOWN")
        .contains("  WARN volume pair is DEGRADED: 1 of 2 wanted replicas in sync");

    assertThat(run("cluster", "health", "-o", "json")).as(err()).isZero();
    assertThat(out())
        .contains("\"health\": \"HEALTH_ERR\"")
        .contains("{\"level\": \"HEALTH_WARN\", \"reason\": \"member n3 is DOWN\"}");
  }

  @Test
  @Order(5)
  void aDrainThatCannotFinishFailsAtOnceOrWaitsSayingWhyAndCanBeCancelled() {
    assertThat(run("cluster", "drain", "n2")).isEqualTo(1);
    assertThat(err())
        .contains("FAILED_PRECONDITION: cannot drain n2: no UP member can take another replica")
        .contains("nothing was changed");
    assertThat(run("cluster", "status")).as(err()).isZero();
    assertThat(out()).containsPattern("n2 +UP");

    assertThat(run("cluster", "drain", "n2", "--force", "--timeout", "2s")).isEqualTo(1);
    assertThat(err())
        .contains("DEADLINE_EXCEEDED")
        .contains("waiting: no UP member can take another replica of volume narrow")
        .contains("no UP member can take another replica of volume pair (it wants 2; owner n1")
        .contains("it stays DRAINING");

    ch.qos.logback.core.read.ListAppender<ch.qos.logback.classic.spi.ILoggingEvent> audit =
        new ch.qos.logback.core.read.ListAppender<>();
    audit.start();
    ch.qos.logback.classic.Logger auditLog =
        (ch.qos.logback.classic.Logger) org.slf4j.LoggerFactory.getLogger("peerflash.audit");
    auditLog.addAppender(audit);
    try {
      assertThat(run("cluster", "drain", "n2", "--cancel")).as(err()).isZero();
    } finally {
      auditLog.detachAppender(audit);
    }
    assertThat(out()).startsWith("drain of n2 cancelled: it is UP;");
    // The audit line tells a cancel from a drain.
    assertThat(audit.list)
        .extracting(ch.qos.logback.classic.spi.ILoggingEvent::getFormattedMessage)
        .anyMatch(l -> l.contains("DrainNode") && l.contains("n2 (cancel)") && l.endsWith(": OK"));
    assertThat(run("cluster", "status")).as(err()).isZero();
    assertThat(out()).containsPattern("n2 +UP");
  }

  @Test
  @Order(6)
  void aMemberThatIsGoneIsRemovedOnceItOwnsNothing() {
    assertThat(run("cluster", "remove-node", "n3")).isEqualTo(1);
    assertThat(err()).contains("FAILED_PRECONDITION").contains("solo");

    assertThat(run("volume", "delete", "solo")).as(err()).isZero();
    assertThat(run("cluster", "remove-node", "n3")).as(err()).isZero();
    assertThat(out())
        .contains("node n3 removed from the cluster map and the Raft group (voters: n1, n2)");
    assertThat(err()).contains("warning: after removing n3 the Raft group has 2 voters");
  }

  @Test
  @Order(7)
  void statusOfEveryNodeAtOnceAsTextJsonAndWatched() {
    assertThat(run("status", "--cluster")).as(err()).isZero();
    assertThat(out())
        .containsPattern("n1 +UP.*")
        .containsPattern("n2 +UP.*")
        .contains("NODE")
        .contains("HIT RATE");

    assertThat(run("status", "--cluster", "-o", "json")).as(err()).isZero();
    assertThat(out())
        .contains("\"node_id\": \"n1\"")
        .contains("\"node_id\": \"n2\"")
        .contains("\"fenced_reason\": \"\"");

    assertThat(run("status", "-o", "json")).as(err()).isZero();
    assertThat(out()).contains("\"node_id\": \"n1\"").contains("\"cache_size_bytes\"");

    assertThat(run("cluster", "health", "--watch", "100ms", "--watch-count", "2"))
        .as(err())
        .isZero();
    assertThat(out().lines().filter(l -> l.startsWith("--- ")).count()).isEqualTo(2);
    assertThat(out().lines().filter(l -> l.startsWith("HEALTH_")).count()).isEqualTo(2);
  }

  @Test
  @Order(8)
  void clusterEventsTellWhatHappenedInOrderOnEveryNode() {
    assertThat(run("cluster", "events")).as(err()).isZero();
    String history = out();
    assertThat(history.lines())
        .anyMatch(l -> l.matches("\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}.* #\\d+ .*"));
    assertThat(history)
        .containsPattern("MEMBER_DOWN member n3: member n3 DOWN: no heartbeat applied for \\d+ ms")
        .contains("left the replicas of pair")
        .contains("owns solo")
        .containsPattern("POLICY_CHANGED volume narrow epoch \\d+: policy of narrow: WRITE_BACK")
        .contains("MEMBER_DRAINING member n2")
        .contains("MEMBER_DRAIN_CANCELLED member n2")
        .contains("VOLUME_DELETED volume solo")
        .contains("MEMBER_REMOVED member n3");
    assertThat(history.indexOf("MEMBER_DRAINING member n2"))
        .isLessThan(history.indexOf("MEMBER_DRAIN_CANCELLED member n2"));

    assertThat(run("cluster", "events", "--volume", "solo")).as(err()).isZero();
    assertThat(out().lines())
        .hasSize(2)
        .allMatch(l -> l.contains("volume solo"))
        .anyMatch(l -> l.contains("VOLUME_CREATED"))
        .anyMatch(l -> l.contains("VOLUME_DELETED"));

    assertThat(run("cluster", "events", "--node", "n3", "-n", "1")).as(err()).isZero();
    assertThat(out().lines()).singleElement().asString().contains("MEMBER_REMOVED member n3");

    assertThat(run("cluster", "events", "-o", "json", "--volume", "narrow")).as(err()).isZero();
    assertThat(out())
        .contains("\"kind\": \"EVENT_VOLUME_CREATED\"")
        .contains("\"kind\": \"EVENT_POLICY_CHANGED\"")
        .contains("\"last_seq\"");

    // Every node keeps the same history.
    String[] viaN2 = {
      "cluster",
      "events",
      "--target",
      cluster.clientAddress.get("n2"),
      "--certs",
      cluster.certs.admin().toString()
    };
    ByteArrayOutputStream n2 = new ByteArrayOutputStream();
    assertThat(
            new PeerFlashCli(
                    null,
                    new PrintStream(n2, true, StandardCharsets.UTF_8),
                    new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8))
                .execute(viaN2))
        .isZero();
    assertThat(n2.toString(StandardCharsets.UTF_8)).isEqualTo(history);

    // Following: the history, then what happens next.
    assertThat(run("volume", "create", "later", "--size", "1MiB", "--replicas", "0"))
        .as(err())
        .isZero();
    assertThat(
            run(
                "cluster",
                "events",
                "-n",
                "1",
                "--follow",
                "--poll",
                "100ms",
                "--follow-polls",
                "1"))
        .as(err())
        .isZero();
    assertThat(out().lines()).singleElement().asString().contains("VOLUME_CREATED volume later");
  }
}
