package io.peerflash.replication.control;

import io.peerflash.proto.v1.MapCommand;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;
import org.junit.jupiter.api.io.TempDir;

/**
 * Raft commit latency of a 3-node control plane in plaintext and over mutual TLS, alternated in one
 * run. A measurement, not a test: it asserts nothing and runs only when asked, e.g.
 *
 * <pre>
 * mvn -pl replication -am test -Dtest=RaftTlsLatencyMeasurement \
 *     -Dsurefire.failIfNoSpecifiedTests=false -Dpeerflash.measure=true [-Dcommits=1000 -Drounds=3]
 * </pre>
 *
 * <p>Each commit is one command submitted on the leader's control plane and waited for (queue depth
 * 1): a DeleteVolume of a volume that does not exist, so it is replicated, committed and applied
 * like any command but leaves the map as it was.
 */
@EnabledIfSystemProperty(named = "peerflash.measure", matches = "true")
class RaftTlsLatencyMeasurement {
  @TempDir Path dir;

  @Test
  void commitLatencyPlaintextAgainstTls() throws Exception {
    int commits = Integer.getInteger("commits", 1000);
    int rounds = Integer.getInteger("rounds", 3);
    int warmup = Math.max(100, commits / 5);
    TestPki pki = new TestPki("PeerFlash CA");
    List<Double> plainP50 = new ArrayList<>();
    List<Double> tlsP50 = new ArrayList<>();
    for (int round = 0; round < rounds; round++) {
      for (boolean tls : new boolean[] {false, true}) {
        try (TestCluster cluster =
            new TestCluster(dir.resolve("round-" + round + (tls ? "-tls" : "-plain")), 3)) {
          if (tls) {
            cluster.tls = pki::raftTls;
          }
          cluster.startAll();
          ControlPlane leader = cluster.awaitLeader(Duration.ofSeconds(30));
          cluster.awaitRegistered(Duration.ofSeconds(30));
          MapCommand command =
              MapCommand.newBuilder()
                  .setDeleteVolume(MapCommand.DeleteVolume.newBuilder().setName("absent"))
                  .build();
          for (int i = 0; i < warmup; i++) {
            leader.submit(command).get(30, TimeUnit.SECONDS);
          }
          long[] micros = new long[commits];
          for (int i = 0; i < commits; i++) {
            long start = System.nanoTime();
            leader.submit(command).get(30, TimeUnit.SECONDS);
            micros[i] = (System.nanoTime() - start) / 1000;
          }
          Arrays.sort(micros);
          double p50 = micros[commits / 2] / 1000.0;
          double p99 = micros[(int) (commits * 0.99)] / 1000.0;
          (tls ? tlsP50 : plainP50).add(p50);
          System.out.printf(
              Locale.ROOT,
              "raft-commit round %d %-5s: %d commits, p50 %.3f ms, p99 %.3f ms, max %.3f ms%n",
              round,
              tls ? "tls" : "plain",
              commits,
              p50,
              p99,
              micros[commits - 1] / 1000.0);
        }
      }
    }
    double plain = median(plainP50);
    double tls = median(tlsP50);
    System.out.printf(
        Locale.ROOT,
        "raft-commit median of p50s: plain %.3f ms, tls %.3f ms, tls/plain %.2fx%n",
        plain,
        tls,
        tls / plain);
  }

  private static double median(List<Double> values) {
    List<Double> sorted = new ArrayList<>(values);
    sorted.sort(null);
    int n = sorted.size();
    return n % 2 == 1 ? sorted.get(n / 2) : (sorted.get(n / 2 - 1) + sorted.get(n / 2)) / 2;
  }
}
