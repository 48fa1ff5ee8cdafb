package io.peerflash.node.nbd;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.peerflash.security.CertificateIssuer;
import io.peerflash.security.CertificateIssuer.IssuedCertificate;
import io.peerflash.security.CertificateIssuer.Validity;
import io.peerflash.security.Identity;
import io.peerflash.security.TlsDirectory;
import io.peerflash.testing.TestCertificates;
import java.io.IOException;
import java.math.BigInteger;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A running node takes changed certificate files without a restart, on its NBD port as on the
 * others: a client serial added to the deny list is refused on its next connection, and a node
 * certificate replaced in place is the one the next client sees.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class NbdCertificateChangesTest {
  @TempDir Path dir;
  private NbdTestNode node;
  private TestCertificates certs;

  @BeforeEach
  void start() throws Exception {
    certs = TestCertificates.in(dir.resolve("certs"));
    node = new NbdTestNode(dir.resolve("node"), "64MiB", Map.of(), certs);
    node.createVolume("vol", 8L << 20);
  }

  @AfterEach
  void stop() {
    if (node != null) {
      node.close();
    }
  }

  /** Retries {@code attempt} until it holds (the node looks at its files once a second). */
  private static void eventually(String what, ThrowingCheck attempt) throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
    while (true) {
      try {
        attempt.run();
        return;
      } catch (AssertionError | Exception e) {
        if (System.nanoTime() > deadline) {
          throw new AssertionError(what + " did not happen within 20 s", e);
        }
        Thread.sleep(100);
      }
    }
  }

  @FunctionalInterface
  private interface ThrowingCheck {
    void run() throws Exception;
  }

  @Test
  void aRevokedClientIsRefusedOnItsNextConnection() throws Exception {
    Path alice = certs.client("alice", Identity.Role.IO);
    byte[] data = new byte[4096];
    Arrays.fill(data, (byte) 0x42);
    try (TlsNbdClient c = new TlsNbdClient(node.tcpPort(), alice, "vol")) {
      assertThat(c.write(0, data, true)).isZero();
    }
    BigInteger serial = TlsDirectory.open(alice).identity().serial();
    CertificateIssuer.writeRevokedSerials(certs.node("n1"), Set.of(serial));

    eventually(
        "a refusal of alice's revoked certificate",
        () ->
            assertThatThrownBy(() -> new TlsNbdClient(node.tcpPort(), alice, "vol").close())
                .isInstanceOf(IOException.class));
    // Others are still served, and alice's data is what she wrote before.
    try (TlsNbdClient c = new TlsNbdClient(node.tcpPort(), certs.admin(), "vol")) {
      byte[] back = new byte[data.length];
      assertThat(c.read(0, back)).isZero();
      assertThat(back).isEqualTo(data);
    }
  }

  @Test
  void aNodeCertificateReplacedInPlaceIsTheOneTheNextClientSees() throws Exception {
    Path n1 = certs.node("n1");
    BigInteger before;
    try (TlsNbdClient c = new TlsNbdClient(node.tcpPort(), certs.admin(), "vol")) {
      before = c.serverSerial();
    }
    assertThat(before).isEqualTo(TlsDirectory.open(n1).identity().serial());
    IssuedCertificate renewed = certs.ca().issueNode("n1", List.of(), Validity.days(365));
    certs.ca().writeIdentityDirectory(n1, renewed);
    BigInteger after = renewed.certificate().getSerialNumber();
    assertThat(after).isNotEqualTo(before);

    eventually(
        "the renewed certificate on a new connection",
        () -> {
          try (TlsNbdClient c = new TlsNbdClient(node.tcpPort(), certs.admin(), "vol")) {
            assertThat(c.serverSerial()).isEqualTo(after);
            byte[] block = new byte[4096];
            assertThat(c.read(0, block)).isZero();
          }
        });
  }
}
