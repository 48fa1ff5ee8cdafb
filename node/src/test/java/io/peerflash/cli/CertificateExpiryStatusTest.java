package io.peerflash.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.node.cluster.InProcessCluster;
import io.peerflash.security.CertificateIssuer.Validity;
import io.peerflash.testing.TestCertificates;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A node whose certificate ends within 30 days says so where an operator looks: in {@code status},
 * in the PROBLEMS column of {@code status --cluster}, and as a warning of {@code cluster health}; a
 * node whose certificate has long to run shows none.
 */
class CertificateExpiryStatusTest {
  @TempDir Path dir;
  private InProcessCluster cluster;
  private TestCertificates certs;
  private ByteArrayOutputStream out;

  @BeforeEach
  void start() throws Exception {
    certs = TestCertificates.in(dir.resolve("certs"));
    certs.admin();
    // n2's certificate is issued for the default year; n1's is replaced by one of 10 days.
    Path n1 = certs.node("n1");
    certs.ca().writeIdentityDirectory(n1, certs.ca().issueNode("n1", List.of(), Validity.days(10)));
    cluster = new InProcessCluster(dir.resolve("cluster"), 2, Map.of(), certs);
  }

  @AfterEach
  void stop() {
    if (cluster != null) {
      cluster.close();
    }
  }

  private String run(String node, String... args) {
    out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    String[] all = new String[args.length + 4];
    System.arraycopy(args, 0, all, 0, args.length);
    all[args.length] = "--target";
    all[args.length + 1] = cluster.clientAddress.get(node);
    all[args.length + 2] = "--certs";
    all[args.length + 3] = certs.admin().toString();
    int code =
        new PeerFlashCli(
                null,
                new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8))
            .execute(all);
    assertThat(code).as(err.toString(StandardCharsets.UTF_8)).isZero();
    return out.toString(StandardCharsets.UTF_8);
  }

  @Test
  void aCertificateEndingSoonIsAWarningInStatusAndClusterHealth() {
    assertThat(run("n1", "status"))
        .contains("CERTIFICATE")
        .contains("TLS certificate of node 'n1'")
        .containsPattern("expires in [0-9] days at ")
        .contains("issue a new one and replace the files");
    assertThat(run("n2", "status")).doesNotContain("CERTIFICATE");

    String table = run("n1", "status", "--cluster");
    assertThat(table.lines().filter(l -> l.startsWith("n1")).findFirst().orElseThrow())
        .contains("certificate");
    assertThat(table.lines().filter(l -> l.startsWith("n2")).findFirst().orElseThrow())
        .doesNotContain("certificate");

    String health = run("n2", "cluster", "health");
    assertThat(health).startsWith("HEALTH_WARN");
    assertThat(health).containsPattern("WARN node n1: certificate: TLS certificate of node 'n1'");
    assertThat(health).doesNotContain("node n2: certificate");
  }
}
