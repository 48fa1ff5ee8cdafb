package io.peerflash.security;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.peerflash.security.CertificateIssuer.IssuedCertificate;
import io.peerflash.security.CertificateIssuer.Validity;
import io.peerflash.util.ManualTime;
import java.math.BigInteger;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.security.GeneralSecurityException;
import java.security.cert.CertificateException;
import java.security.cert.CertificateExpiredException;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Set;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.X509ExtendedKeyManager;
import javax.net.ssl.X509ExtendedTrustManager;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Loading, reloading and the certificate checks of an identity directory, without a network. */
class TlsDirectoryTest {
  @TempDir Path tmp;
  CertificateIssuer ca;
  ManualTime clock;
  Path nodeDir;
  TlsDirectory node;
  IssuedCertificate n1;

  @BeforeEach
  void setUp() throws Exception {
    ca = CertificateIssuer.createCa(null, Validity.days(3650));
    clock = new ManualTime();
    n1 = ca.issueNode("n1", List.of("node1.example", "10.1.2.3"), Validity.days(365));
    nodeDir = tmp.resolve("n1");
    ca.writeIdentityDirectory(nodeDir, n1);
    node = TlsDirectory.open(nodeDir, clock);
  }

  @Test
  void opensNodeAndClientDirectories() throws Exception {
    assertThat(node.isNode()).isTrue();
    assertThat(node.identity().describe()).isEqualTo("node 'n1'");
    assertThat(node.certificate()).isEqualTo(n1.certificate());
    assertThat(node.caCertificates()).containsExactly(ca.caCertificate());
    assertThat(node.revokedSerials()).isEmpty();
    assertThat(node.generation()).isEqualTo(1);

    X509ExtendedKeyManager km = node.keyManager();
    String serverAlias = km.chooseEngineServerAlias("EC", null, null);
    assertThat(km.getCertificateChain(serverAlias)).containsExactly(n1.certificate());
    assertThat(km.getPrivateKey(serverAlias).getEncoded()).isEqualTo(n1.privateKey().getEncoded());
    String clientAlias = km.chooseEngineClientAlias(new String[] {"RSA", "EC"}, null, null);
    assertThat(km.getCertificateChain(clientAlias)).containsExactly(n1.certificate());
    // An EC key is not offered for an RSA-only handshake.
    assertThat(km.chooseEngineServerAlias("RSA", null, null)).isNull();

    Path clientDir = tmp.resolve("alice");
    IssuedCertificate alice =
        ca.issueClient("alice", Identity.Role.ADMIN, List.of(), List.of(), false, Validity.days(9));
    ca.writeIdentityDirectory(clientDir, alice);
    TlsDirectory client = TlsDirectory.open(clientDir, clock);
    assertThat(client.isNode()).isFalse();
    assertThat(client.identity().describe()).isEqualTo("client 'alice'");
    assertThat(client.keyManager().chooseEngineServerAlias("EC", null, null)).isNull();
    assertThatThrownBy(() -> GrpcTls.serverContext(client))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("has no server certificate");

    assertThatThrownBy(() -> TlsDirectory.open(tmp.resolve("missing"), clock))
        .hasMessageContaining("no such TLS identity directory");
  }

  @Test
  void rotatedKeyPairIsLoadedAtTheNextCheckAndOldAliasesStayWhole() throws Exception {
    X509ExtendedKeyManager km = node.keyManager();
    String oldAlias = km.chooseEngineServerAlias("EC", null, null);

    IssuedCertificate rotated = ca.issueNode("n1", List.of(), Validity.days(365));
    ca.writeIdentityDirectory(nodeDir, rotated);
    // Within the check interval the files in force stay (simulated time: nothing elapsed).
    assertThat(node.certificate()).isEqualTo(n1.certificate());
    assertThat(km.chooseEngineServerAlias("EC", null, null)).isEqualTo(oldAlias);

    clock.advanceMs(TlsDirectory.RELOAD_CHECK_INTERVAL_MS);
    String newAlias = km.chooseEngineServerAlias("EC", null, null);
    assertThat(newAlias).isNotEqualTo(oldAlias);
    assertThat(km.getCertificateChain(newAlias)).containsExactly(rotated.certificate());
    assertThat(node.certificate()).isEqualTo(rotated.certificate());
    assertThat(node.generation()).isEqualTo(2);
    // A handshake that chose its alias before the reload still gets the matching old pair.
    assertThat(km.getCertificateChain(oldAlias)).containsExactly(n1.certificate());
    assertThat(km.getPrivateKey(oldAlias).getEncoded()).isEqualTo(n1.privateKey().getEncoded());
    assertThat(node.reloadIfChanged()).isFalse();
  }

  @Test
  void keyWithoutItsCertificateIsNotLoadedUntilTheCertificateFollows() throws Exception {
    IssuedCertificate rotated = ca.issueNode("n1", List.of(), Validity.days(365));
    // Half a rotation: only the key replaced.
    PemFiles.writePrivateKey(nodeDir.resolve(TlsDirectory.SERVER_KEY_FILE), rotated.privateKey());
    assertThatThrownBy(() -> node.reloadIfChanged())
        .isInstanceOf(GeneralSecurityException.class)
        .hasMessageContaining("server-key.pem does not match")
        .hasMessageContaining("still using those loaded before");
    assertThat(node.lastReloadError()).get().asString().contains("does not match");
    assertThat(node.certificate()).isEqualTo(n1.certificate());
    String alias = node.keyManager().chooseEngineServerAlias("EC", null, null);
    assertThat(node.keyManager().getPrivateKey(alias).getEncoded())
        .isEqualTo(n1.privateKey().getEncoded());
    clock.advanceMs(TlsDirectory.RELOAD_CHECK_INTERVAL_MS);
    assertThat(node.certificate()).isEqualTo(n1.certificate());

    PemFiles.writeCertificates(
        nodeDir.resolve(TlsDirectory.SERVER_CERT_FILE), List.of(rotated.certificate()));
    PemFiles.writePrivateKey(nodeDir.resolve(TlsDirectory.CLIENT_KEY_FILE), rotated.privateKey());
    PemFiles.writeCertificates(
        nodeDir.resolve(TlsDirectory.CLIENT_CERT_FILE), List.of(rotated.certificate()));
    clock.advanceMs(TlsDirectory.RELOAD_CHECK_INTERVAL_MS);
    assertThat(node.certificate()).isEqualTo(rotated.certificate());
    assertThat(node.lastReloadError()).isEmpty();
  }

  @Test
  void certificateFromAnotherCaOrBrokenDenyListIsNotLoaded() throws Exception {
    CertificateIssuer other = CertificateIssuer.createCa(null, Validity.days(10));
    IssuedCertificate foreign = other.issueNode("n1", List.of(), Validity.days(10));
    PemFiles.writePrivateKey(nodeDir.resolve(TlsDirectory.SERVER_KEY_FILE), foreign.privateKey());
    PemFiles.writeCertificates(
        nodeDir.resolve(TlsDirectory.SERVER_CERT_FILE), List.of(foreign.certificate()));
    assertThatThrownBy(() -> node.reloadIfChanged())
        .hasMessageContaining("server-cert.pem is not signed by a CA of");
    ca.writeIdentityDirectory(nodeDir, n1);
    assertThat(node.reloadIfChanged()).isTrue();

    Files.writeString(nodeDir.resolve(TlsDirectory.REVOKED_SERIALS_FILE), "12ab\nzz\n");
    assertThatThrownBy(() -> node.reloadIfChanged())
        .hasMessageContaining("line 2 is not a hex serial");
  }

  /**
   * Files that failed to load are tried again when their inode changes, not only their contents: a
   * key written by root and then given to the node's user ({@code chown}) keeps its inode, mtime
   * and size, and would otherwise stay refused until the node restarts.
   */
  @Test
  void filesThatFailedAreTriedAgainWhenOnlyTheirInodeChanges() throws Exception {
    Path list = nodeDir.resolve(TlsDirectory.REVOKED_SERIALS_FILE);
    Files.writeString(list, "zz\n");
    assertThatThrownBy(() -> node.reloadIfChanged()).hasMessageContaining("not a hex serial");
    FileTime modified = Files.getLastModifiedTime(list);
    Object changed = Files.getAttribute(list, "unix:ctime");
    // The same inode, size and mtime with other contents, as after a change of owner or mode.
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
    do {
      Files.writeString(list, "1a\n");
      Files.setLastModifiedTime(list, modified);
    } while (Files.getAttribute(list, "unix:ctime").equals(changed)
        && System.nanoTime() < deadline);
    assertThat(Files.getLastModifiedTime(list)).isEqualTo(modified);
    assertThat(Files.size(list)).isEqualTo(3);

    assertThat(node.reloadIfChanged()).isTrue();
    assertThat(node.revokedSerials()).containsExactly(BigInteger.valueOf(0x1a));
    assertThat(node.lastReloadError()).isEmpty();
  }

  @Test
  void denyListChangesAreLoadedLikeTheRest() throws Exception {
    IssuedCertificate alice = client("alice", Validity.days(30));
    X509Certificate[] chain = {alice.certificate()};
    assertThat(node.verifyClient(chain).describe()).isEqualTo("client 'alice'");

    CertificateIssuer.writeRevokedSerials(nodeDir, Set.of(alice.certificate().getSerialNumber()));
    clock.advanceMs(TlsDirectory.RELOAD_CHECK_INTERVAL_MS);
    String serial = alice.certificate().getSerialNumber().toString(16);
    assertThatThrownBy(() -> node.verifyClient(chain))
        .isInstanceOf(CertificateException.class)
        .hasMessageStartingWith("certificate serial " + serial + " of client 'alice' is revoked")
        .hasMessageContaining(TlsDirectory.REVOKED_SERIALS_FILE);
    assertThat(node.revokedSerials()).containsExactly(alice.certificate().getSerialNumber());

    // Taken off the list again: accepted again.
    CertificateIssuer.writeRevokedSerials(nodeDir, Set.of(BigInteger.ONE));
    clock.advanceMs(TlsDirectory.RELOAD_CHECK_INTERVAL_MS);
    assertThat(node.verifyClient(chain).name()).isEqualTo("alice");
  }

  @Test
  void clientChecksNameWhatIsRefused() throws Exception {
    LinkedBlockingQueue<String> refusals = new LinkedBlockingQueue<>();
    node.onRefusal(refusals::add);

    assertThatThrownBy(() -> node.verifyClient(new X509Certificate[0]))
        .hasMessage("no client certificate presented");

    CertificateIssuer other = CertificateIssuer.createCa(null, Validity.days(10));
    IssuedCertificate foreign =
        other.issueClient(
            "alice", Identity.Role.ADMIN, List.of(), List.of(), false, Validity.days(1));
    assertThatThrownBy(() -> node.verifyClient(new X509Certificate[] {foreign.certificate()}))
        .hasMessageContaining("of 'CN=alice,OU=client,O=PeerFlash' is not issued by the CA of");

    Instant now = Instant.ofEpochMilli(clock.nowMs());
    IssuedCertificate expired =
        client("old", new Validity(now.minus(Duration.ofDays(2)), now.minus(Duration.ofDays(1))));
    assertThatThrownBy(() -> node.verifyClient(new X509Certificate[] {expired.certificate()}))
        .isInstanceOf(CertificateExpiredException.class)
        .hasMessageContaining(
            "certificate serial "
                + expired.certificate().getSerialNumber().toString(16)
                + " of client 'old' expired at");
    IssuedCertificate future =
        client("early", new Validity(now.plus(Duration.ofDays(1)), now.plus(Duration.ofDays(2))));
    assertThatThrownBy(() -> node.verifyClient(new X509Certificate[] {future.certificate()}))
        .hasMessageContaining("of client 'early' is not valid before");

    assertThatThrownBy(() -> node.verifyClient(new X509Certificate[] {ca.caCertificate()}))
        .hasMessageContaining("presented the CA certificate itself");

    // A node calling its peer presents its node certificate: it is a NODE identity.
    IssuedCertificate n2 = ca.issueNode("n2", List.of(), Validity.days(1));
    Identity peer = node.verifyClient(new X509Certificate[] {n2.certificate(), ca.caCertificate()});
    assertThat(peer.kind()).isEqualTo(Identity.Kind.NODE);
    assertThat(peer.name()).isEqualTo("n2");

    // The trust manager is what a handshake calls: it reports refusals to the listener.
    assertThatThrownBy(
            () ->
                node.clientVerifier()
                    .checkClientTrusted(
                        new X509Certificate[] {expired.certificate()}, "UNKNOWN", (SSLEngine) null))
        .isInstanceOf(CertificateExpiredException.class);
    assertThat(refusals.poll()).contains("of client 'old' expired at");
  }

  /**
   * A refused certificate is one audit line and one count: the client and server verifiers report
   * it, the peer verifier does not (Raft's trust manager wraps it and reports each refusal once,
   * throttled for peers that keep reconnecting).
   */
  @Test
  void aRefusalIsReportedOnceAndNotByTheVerifierRaftWraps() throws Exception {
    CertificateIssuer other = CertificateIssuer.createCa(null, Validity.days(10));
    X509Certificate[] foreign = {other.issueNode("n2", List.of(), Validity.days(10)).certificate()};
    long before = Audit.refusals();
    assertThatThrownBy(() -> node.clientVerifier().checkClientTrusted(foreign, "UNKNOWN"))
        .isInstanceOf(CertificateException.class);
    assertThat(Audit.refusals() - before).isEqualTo(1);
    assertThatThrownBy(() -> node.peerVerifier().checkClientTrusted(foreign, "UNKNOWN"))
        .isInstanceOf(CertificateException.class);
    assertThat(Audit.refusals() - before).isEqualTo(1);
  }

  @Test
  void eachTrustManagerChecksOnlyItsSidesWhicheverOverloadTheHandshakeCalls() throws Exception {
    X509Certificate[] chain = {n1.certificate(), ca.caCertificate()};
    X509ExtendedTrustManager clients = node.clientVerifier();
    X509ExtendedTrustManager servers = node.serverVerifier();
    X509ExtendedTrustManager serverN1 = node.serverVerifier("n1");
    X509ExtendedTrustManager peers = node.peerVerifier();

    for (X509ExtendedTrustManager tm : List.of(clients, peers)) {
      tm.checkClientTrusted(chain, "UNKNOWN");
      tm.checkClientTrusted(chain, "UNKNOWN", (Socket) null);
      tm.checkClientTrusted(chain, "UNKNOWN", (SSLEngine) null);
    }
    for (X509ExtendedTrustManager tm : List.of(servers, serverN1)) {
      assertThatThrownBy(() -> tm.checkClientTrusted(chain, "UNKNOWN"))
          .hasMessage("this trust manager verifies servers, not clients");
      assertThatThrownBy(() -> tm.checkClientTrusted(chain, "UNKNOWN", (Socket) null))
          .hasMessage("this trust manager verifies servers, not clients");
      assertThatThrownBy(() -> tm.checkClientTrusted(chain, "UNKNOWN", (SSLEngine) null))
          .hasMessage("this trust manager verifies servers, not clients");
    }

    assertThatThrownBy(() -> clients.checkServerTrusted(chain, "UNKNOWN"))
        .hasMessage("this trust manager verifies clients, not servers");
    assertThatThrownBy(() -> clients.checkServerTrusted(chain, "UNKNOWN", (Socket) null))
        .hasMessage("this trust manager verifies clients, not servers");
    assertThatThrownBy(() -> clients.checkServerTrusted(chain, "UNKNOWN", (SSLEngine) null))
        .hasMessage("this trust manager verifies clients, not servers");
    // Without a handshake there is no host dialled: only a server of a named node can be matched.
    for (X509ExtendedTrustManager tm : List.of(servers, peers)) {
      assertThatThrownBy(() -> tm.checkServerTrusted(chain, "UNKNOWN"))
          .hasMessageContaining("the TLS engine does not know it");
      assertThatThrownBy(() -> tm.checkServerTrusted(chain, "UNKNOWN", (Socket) null))
          .hasMessageContaining("the TLS engine does not know it");
      assertThatThrownBy(() -> tm.checkServerTrusted(chain, "UNKNOWN", (SSLEngine) null))
          .hasMessageContaining("the TLS engine does not know it");
    }
    serverN1.checkServerTrusted(chain, "UNKNOWN");
    serverN1.checkServerTrusted(chain, "UNKNOWN", (Socket) null);
    serverN1.checkServerTrusted(chain, "UNKNOWN", (SSLEngine) null);
    assertThatThrownBy(() -> node.serverVerifier("n2").checkServerTrusted(chain, "UNKNOWN"))
        .hasMessageContaining("not to the node dialled, 'n2'");

    for (X509ExtendedTrustManager tm : List.of(clients, servers, serverN1, peers)) {
      assertThat(tm.getAcceptedIssuers()).containsExactly(ca.caCertificate());
    }
  }

  @Test
  void serverChecksWantANodeCarryingTheDialledHost() throws Exception {
    X509Certificate[] chain = {n1.certificate()};
    for (String host :
        List.of("localhost", "LOCALHOST.", "127.0.0.1", "node1.example", "10.1.2.3")) {
      assertThat(node.verifyServer(chain, host, null).name()).as(host).isEqualTo("n1");
    }
    assertThatThrownBy(() -> node.verifyServer(chain, "elsewhere.example", null))
        .hasMessageContaining(
            "server certificate of node 'n1' does not carry the host dialled, 'elsewhere.example'"
                + " (its DNS and IP SANs: localhost, node1.example, 127.0.0.1, 10.1.2.3)");
    assertThatThrownBy(() -> node.verifyServer(chain, "127.0.0.2", null))
        .hasMessageContaining("does not carry the host dialled, '127.0.0.2'");
    assertThatThrownBy(() -> node.verifyServer(chain, null, null))
        .hasMessageContaining("the TLS engine does not know it");
    assertThat(node.verifyServer(chain, "elsewhere.example", "n1").name()).isEqualTo("n1");
    assertThatThrownBy(() -> node.verifyServer(chain, "localhost", "n2"))
        .hasMessageContaining("belongs to node 'n1', not to the node dialled, 'n2'");

    IssuedCertificate alice = client("alice", Validity.days(1));
    assertThatThrownBy(
            () -> node.verifyServer(new X509Certificate[] {alice.certificate()}, "localhost", null))
        .hasMessageContaining("lacks extended key usage serverAuth");
  }

  @Test
  void expiryIsCountedInWholeDays() throws Exception {
    assertThat(node.daysUntilExpiry()).isEqualTo(364);
    assertThat(node.expiresSoon()).isFalse();
    assertThat(node.expiryWarning()).isEmpty();

    Instant now = Instant.ofEpochMilli(clock.nowMs());
    IssuedCertificate soon =
        ca.issueNode(
            "n1",
            List.of(),
            new Validity(
                now.minus(Duration.ofHours(1)),
                now.plus(Duration.ofDays(10)).plus(Duration.ofHours(1))));
    ca.writeIdentityDirectory(nodeDir, soon);
    clock.advanceMs(TlsDirectory.RELOAD_CHECK_INTERVAL_MS);
    assertThat(node.daysUntilExpiry()).isEqualTo(10);
    assertThat(node.expiresSoon()).isTrue();
    assertThat(node.expiryWarning())
        .get()
        .asString()
        .contains("node 'n1'")
        .contains("expires in 10 days");

    clock.advanceMs(Duration.ofDays(11).toMillis());
    assertThat(node.daysUntilExpiry()).isEqualTo(-1);
    assertThat(node.expiryWarning()).get().asString().contains("expired at");
  }

  private IssuedCertificate client(String name, Validity validity) throws Exception {
    return ca.issueClient(name, Identity.Role.IO, List.of(), List.of(), false, validity);
  }
}
