package io.peerflash.faults;

import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.client.PeerFlashClient;
import io.peerflash.faults.DockerCluster.Node;
import io.peerflash.proto.v1.CacheMode;
import io.peerflash.security.Identity;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.nio.file.attribute.UserPrincipal;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * fio on this host, with its NBD engine over TLS (an io client certificate), writes a volume
 * through the published NBD port of a node that neither owns the volume nor holds its replica:
 * several jobs on disjoint ranges, crc32c in every block. The owner's container is killed while
 * they write. The node they are connected to forwards every request and follows the failover: fio
 * sees no I/O error, its verify pass (reading everything back through the same node, now from the
 * new owner) finds every block intact, and the longest request, the pause the client saw, stays
 * under 10 s.
 */
@Tag("container")
class NbdForwardingIT {
  private static final long MIB = 1 << 20;
  private static final String VOLUME = "fio";
  private static final int JOBS = 4;
  private static final long JOB_BYTES = 16 * MIB;

  private DockerCluster cluster;

  @AfterEach
  void removeCluster() {
    if (cluster != null) {
      cluster.close();
      cluster = null;
    }
  }

  @Test
  void fioThroughANonOwnerSeesNoErrorWhenTheOwnerIsKilled() throws Exception {
    cluster = DockerCluster.builder("nbd-forward").publishNbd().start();
    Node creator = cluster.nodes().get(0);
    try (PeerFlashClient c = cluster.newClient(creator, Duration.ofSeconds(30))) {
      c.createVolume(VOLUME, JOBS * JOB_BYTES, CacheMode.WRITE_BACK, 1);
    }
    Node owner = cluster.ownerOf(VOLUME);
    Node replica = awaitReplica();
    Node entry =
        cluster.nodes().stream().filter(n -> n != owner && n != replica).findFirst().orElseThrow();
    Path home = fioHome();
    List<String> cmd = new ArrayList<>(asNobody());
    cmd.addAll(
        List.of(
            "fio",
            "--name=nbd-forward",
            "--ioengine=nbd",
            "--uri=nbds://localhost:" + entry.nbdHostPort() + "/" + VOLUME,
            "--rw=randwrite",
            "--bs=4k",
            "--iodepth=8",
            "--numjobs=" + JOBS,
            "--size=" + (JOB_BYTES >> 20) + "m",
            "--offset_increment=" + (JOB_BYTES >> 20) + "m",
            // Slow enough that the kill lands in the middle of the writes.
            "--rate_iops=300",
            "--verify=crc32c",
            "--verify_fatal=1",
            "--verify_state_save=0",
            "--group_reporting",
            "--output-format=json"));
    Path output = Files.createTempFile("fio-nbd", ".json");
    ProcessBuilder b =
        new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(output.toFile());
    b.environment().put("HOME", home.toString());
    long startedAt = System.nanoTime();
    Process fio = b.start();
    try {
      // The owner dies once the jobs are writing.
      await(() -> dirtyBytes(owner) >= 2 * MIB || !fio.isAlive(), 60, "fio writing");
      assertThat(fio.isAlive()).as("fio still writing when the owner is killed").isTrue();
      long killedAt = System.nanoTime();
      cluster.kill(owner);
      long takeoverMs = -1;
      long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(3);
      try (PeerFlashClient viaEntry = cluster.newClient(entry, Duration.ofSeconds(5))) {
        while (fio.isAlive() && System.nanoTime() < deadline) {
          String seen = ownerSeenBy(viaEntry);
          if (takeoverMs < 0 && !seen.isEmpty() && !seen.equals(owner.id())) {
            takeoverMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - killedAt);
          }
          Thread.sleep(100);
        }
      }
      assertThat(fio.waitFor(1, TimeUnit.SECONDS)).as("fio finished within 3 minutes").isTrue();
      String out = Files.readString(output, StandardCharsets.UTF_8);
      assertThat(fio.exitValue()).as("fio's exit code; output:%n%s", out).isZero();
      String json = out.substring(out.indexOf('{'));
      assertThat(json).as(out).doesNotContain("verify: bad").contains("\"error\" : 0");
      long writeMaxMs = maxLatencyMs(json, "write");
      long readMaxMs = maxLatencyMs(json, "read");
      String line =
          String.format(
              "nbd-forward: fio (%d jobs, crc32c) through %s while owner %s was killed: %s took"
                  + " over after %d ms; longest write %d ms, longest verify read %d ms; no I/O"
                  + " error, verify passed, in %d s",
              JOBS,
              entry.id(),
              owner.id(),
              cluster.ownerOf(VOLUME).id(),
              takeoverMs,
              writeMaxMs,
              readMaxMs,
              TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - startedAt));
      System.out.println(line);
      ConsistencyChecker.appendSummary(line);
      assertThat(cluster.ownerOf(VOLUME)).isEqualTo(replica);
      assertThat(writeMaxMs).as("longest write across the failover, ms").isLessThan(10_000);
      assertThat(readMaxMs).as("longest read, ms").isLessThan(10_000);
    } finally {
      if (fio.isAlive()) {
        fio.destroyForcibly();
      }
      Files.deleteIfExists(output);
    }
  }

  private Node awaitReplica() throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    while (System.nanoTime() < deadline) {
      try {
        Node r = cluster.replicaOf(VOLUME);
        if (r != null) {
          return r;
        }
      } catch (RuntimeException e) {
        // not yet
      }
      Thread.sleep(100);
    }
    throw new AssertionError("no replica of " + VOLUME + " within 60 s");
  }

  /** The volume's owner in the map of the node the client asks ("" when it does not answer). */
  private static String ownerSeenBy(PeerFlashClient c) {
    try {
      return c.getVolume(VOLUME).getOwner();
    } catch (RuntimeException e) {
      return "";
    }
  }

  private long dirtyBytes(Node owner) {
    try (PeerFlashClient c = cluster.newClient(owner, Duration.ofSeconds(10))) {
      return c.getVolume(VOLUME).getDirtyBytes();
    } catch (RuntimeException e) {
      return 0;
    }
  }

  /** The largest completion latency fio reports for {@code direction}, in ms. */
  static long maxLatencyMs(String json, String direction) {
    int at = json.indexOf("\"" + direction + "\" : {");
    assertThat(at).as("fio's JSON has %s statistics", direction).isNotNegative();
    Matcher m =
        Pattern.compile("\"lat_ns\" : \\{\\s*\"min\" : \\d+,\\s*\"max\" : (\\d+)").matcher(json);
    assertThat(m.find(at)).as("lat_ns of %s", direction).isTrue();
    return TimeUnit.NANOSECONDS.toMillis(Long.parseLong(m.group(1)));
  }

  /**
   * A home directory with the client's certificates where libnbd looks for them: fio's NBD engine
   * does not let a URI name local files, so libnbd reads $HOME/.pki/libnbd (as root,
   * /etc/pki/libnbd, which a test must not touch: root runs fio as nobody).
   */
  private Path fioHome() throws IOException {
    Path client = cluster.certificates().issueClient("nbd-io", Identity.Role.IO, List.of(), false);
    Path home = Files.createTempDirectory("peerflash-fio-home");
    Files.setPosixFilePermissions(home, PosixFilePermissions.fromString("rwxr-xr-x"));
    Path pki = home.resolve(".pki/libnbd");
    Files.createDirectories(pki);
    for (String f : new String[] {"ca-cert.pem", "client-cert.pem", "client-key.pem"}) {
      Files.copy(client.resolve(f), pki.resolve(f));
    }
    if (root()) {
      UserPrincipal nobody =
          home.getFileSystem().getUserPrincipalLookupService().lookupPrincipalByName("nobody");
      for (Path p : new Path[] {home, home.resolve(".pki"), pki}) {
        Files.setOwner(p, nobody);
      }
      for (String f : new String[] {"ca-cert.pem", "client-cert.pem", "client-key.pem"}) {
        Files.setOwner(pki.resolve(f), nobody);
      }
    }
    return home;
  }

  private static boolean root() {
    return "root".equals(System.getProperty("user.name"));
  }

  private static List<String> asNobody() {
    return root()
        ? List.of("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--")
        : List.of();
  }

  private static void await(java.util.function.BooleanSupplier condition, int seconds, String what)
      throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("timed out waiting for " + what);
      }
      Thread.sleep(100);
    }
  }
}
