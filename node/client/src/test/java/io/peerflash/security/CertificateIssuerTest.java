package io.peerflash.security;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.peerflash.security.CertificateIssuer.IssuedCertificate;
import io.peerflash.security.CertificateIssuer.Validity;
import java.io.IOException;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.GeneralSecurityException;
import java.security.PrivateKey;
import java.security.cert.CertificateException;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Certificates and identity directories as {@code peerflash certs} lays them out, checked by
 * parsing them back and by the openssl command line tool.
 */
class CertificateIssuerTest {
  static CertificateIssuer ca;
  @TempDir Path tmp;

  @BeforeAll
  static void createCa() throws Exception {
    ca =
        CertificateIssuer.createCa(null, Validity.days(CertificateIssuer.DEFAULT_CA_VALIDITY_DAYS));
  }

  @Test
  void aKeyIsMatchedToItsCertificateWithoutSigningWhereItsPublicHalfIsAtHand() throws Exception {
    IssuedCertificate a = ca.issueNode("a", List.of(), Validity.days(1));
    IssuedCertificate b = ca.issueNode("b", List.of(), Validity.days(1));
    Path file = tmp.resolve("a-key.pem");
    PemFiles.writePrivateKey(file, a.privateKey());
    java.security.PrivateKey written = PemFiles.readPrivateKey(file);
    assertThat(CertificateIssuer.sameKeyPair(written, a.certificate().getPublicKey())).isTrue();
    assertThat(CertificateIssuer.sameKeyPair(written, b.certificate().getPublicKey())).isFalse();
    assertThatThrownBy(
            () ->
                CertificateIssuer.checkKeyMatches(
                    written, b.certificate().getPublicKey(), "a's key is not b's"))
        .hasMessage("a's key is not b's");
    // A PKCS#8 EC key without its public point (other tools write them): a sample is signed.
    org.bouncycastle.asn1.pkcs.PrivateKeyInfo info =
        org.bouncycastle.asn1.pkcs.PrivateKeyInfo.getInstance(a.privateKey().getEncoded());
    byte[] bareEncoding =
        new org.bouncycastle.asn1.pkcs.PrivateKeyInfo(
                info.getPrivateKeyAlgorithm(),
                new org.bouncycastle.asn1.sec.ECPrivateKey(
                    256,
                    org.bouncycastle.asn1.sec.ECPrivateKey.getInstance(info.parsePrivateKey())
                        .getKey()))
            .getEncoded();
    java.security.PrivateKey bare =
        java.security.KeyFactory.getInstance("EC")
            .generatePrivate(new java.security.spec.PKCS8EncodedKeySpec(bareEncoding));
    assertThat(CertificateIssuer.sameKeyPair(bare, a.certificate().getPublicKey())).isNull();
    CertificateIssuer.checkKeyMatches(bare, a.certificate().getPublicKey(), "no match");
    assertThatThrownBy(
            () ->
                CertificateIssuer.checkKeyMatches(
                    bare, b.certificate().getPublicKey(), "a's key is not b's"))
        .hasMessage("a's key is not b's");
    java.security.KeyPairGenerator rsa = java.security.KeyPairGenerator.getInstance("RSA");
    rsa.initialize(2048);
    java.security.KeyPair r1 = rsa.generateKeyPair();
    java.security.KeyPair r2 = rsa.generateKeyPair();
    assertThat(CertificateIssuer.sameKeyPair(r1.getPrivate(), r1.getPublic())).isTrue();
    assertThat(CertificateIssuer.sameKeyPair(r1.getPrivate(), r2.getPublic())).isFalse();
    assertThat(CertificateIssuer.sameKeyPair(r1.getPrivate(), a.certificate().getPublicKey()))
        .isFalse();
    assertThat(CertificateIssuer.sameKeyPair(written, r1.getPublic())).isFalse();
  }

  @Test
  void caDirectoryRoundTripsWithOwnerOnlyKey() throws Exception {
    Path caDir = tmp.resolve("certs/ca");
    ca.writeCaDirectory(caDir);
    assertThat(mode(caDir)).isEqualTo("rwx------");
    assertThat(mode(caDir.resolve("ca-key.pem"))).isEqualTo("rw-------");
    assertThat(mode(caDir.resolve("ca-cert.pem"))).isEqualTo("rw-r--r--");
    assertThat(listNames(caDir)).containsExactlyInAnyOrder("ca-cert.pem", "ca-key.pem");

    CertificateIssuer loaded = CertificateIssuer.loadCa(caDir);
    assertThat(loaded.caCertificate()).isEqualTo(ca.caCertificate());
    // The loaded key signs certificates the original CA certificate verifies.
    IssuedCertificate n = loaded.issueNode("n1", List.of(), Validity.days(1));
    n.certificate().verify(ca.caCertificate().getPublicKey());

    assertThatThrownBy(() -> loaded.writeCaDirectory(caDir))
        .isInstanceOf(FileAlreadyExistsException.class)
        .hasMessageContaining("refusing to replace");

    X509Certificate c = ca.caCertificate();
    assertThat(c.getSubjectX500Principal().getName()).isEqualTo("CN=PeerFlash CA,O=PeerFlash");
    assertThat(c.getBasicConstraints()).isEqualTo(Integer.MAX_VALUE);
    assertThat(validityDays(c)).isEqualTo(3650);

    String text =
        openssl("x509", "-in", caDir.resolve("ca-cert.pem").toString(), "-noout", "-text");
    assertThat(text)
        .contains("Subject: O = PeerFlash, CN = PeerFlash CA")
        .contains("CA:TRUE")
        .contains("Certificate Sign, CRL Sign")
        .contains("prime256v1")
        .contains("ecdsa-with-SHA256");
    // The key is PKCS#8, as written.
    assertThat(Files.readString(caDir.resolve("ca-key.pem")))
        .startsWith("-----BEGIN PRIVATE KEY-----");
    openssl("pkey", "-in", caDir.resolve("ca-key.pem").toString(), "-noout");
  }

  @Test
  void caWithClusterNameCarriesIt() throws Exception {
    CertificateIssuer named = CertificateIssuer.createCa("prod-1", Validity.days(10));
    assertThat(named.caCertificate().getSubjectX500Principal().getName())
        .isEqualTo("CN=PeerFlash CA,OU=prod-1,O=PeerFlash");
  }

  @Test
  void nodeDirectoryHoldsServerAndClientPairThatOpensslAccepts() throws Exception {
    IssuedCertificate node =
        ca.issueNode("n1", List.of("node1.example", "10.0.0.5", "::1"), Validity.days(365));
    Path dir = tmp.resolve("certs/n1");
    ca.writeIdentityDirectory(dir, node);

    assertThat(listNames(dir))
        .containsExactlyInAnyOrder(
            "ca-cert.pem",
            "server-cert.pem",
            "server-key.pem",
            "client-cert.pem",
            "client-key.pem");
    assertThat(mode(dir)).isEqualTo("rwx------");
    assertThat(mode(dir.resolve("server-key.pem"))).isEqualTo("rw-------");
    assertThat(mode(dir.resolve("client-key.pem"))).isEqualTo("rw-------");
    assertThat(mode(dir.resolve("server-cert.pem"))).isEqualTo("rw-r--r--");

    // Round trip: the same certificate and key come back, under both names.
    X509Certificate server = PemFiles.readCertificates(dir.resolve("server-cert.pem")).get(0);
    assertThat(server).isEqualTo(node.certificate());
    assertThat(PemFiles.readCertificates(dir.resolve("client-cert.pem"))).containsExactly(server);
    PrivateKey key = PemFiles.readPrivateKey(dir.resolve("server-key.pem"));
    assertThat(key.getEncoded()).isEqualTo(node.privateKey().getEncoded());
    assertThat(PemFiles.readPrivateKey(dir.resolve("client-key.pem")).getEncoded())
        .isEqualTo(key.getEncoded());
    assertThat(PemFiles.readCertificates(dir.resolve("ca-cert.pem")))
        .containsExactly(ca.caCertificate());

    Identity id = Identity.of(server);
    assertThat(id.kind()).isEqualTo(Identity.Kind.NODE);
    assertThat(id.name()).isEqualTo("n1");
    assertThat(id.role()).isEqualTo(Identity.Role.NODE);
    assertThat(id.serial()).isEqualTo(server.getSerialNumber());
    assertThat(id.notAfter()).isEqualTo(server.getNotAfter().toInstant());
    assertThat(validityDays(server)).isEqualTo(365);

    String caFile = dir.resolve("ca-cert.pem").toString();
    String certFile = dir.resolve("server-cert.pem").toString();
    assertThat(openssl("verify", "-CAfile", caFile, certFile)).contains(": OK");
    assertThat(openssl("verify", "-CAfile", caFile, "-purpose", "sslserver", certFile))
        .contains(": OK");
    assertThat(openssl("verify", "-CAfile", caFile, "-purpose", "sslclient", certFile))
        .contains(": OK");
    String text = openssl("x509", "-in", certFile, "-noout", "-text");
    assertThat(text)
        .contains("Subject: O = PeerFlash, OU = node, CN = n1")
        .contains("Issuer: O = PeerFlash, CN = PeerFlash CA")
        .contains(
            "DNS:localhost, IP Address:127.0.0.1, DNS:node1.example, IP Address:10.0.0.5,"
                + " IP Address:0:0:0:0:0:0:0:1, URI:urn:peerflash:node:n1")
        .contains("TLS Web Server Authentication, TLS Web Client Authentication")
        .contains("Digital Signature, Key Agreement")
        .contains("CA:FALSE")
        .contains("prime256v1")
        .contains("ecdsa-with-SHA256");
    openssl("pkey", "-in", dir.resolve("server-key.pem").toString(), "-noout");
  }

  @Test
  void clientDirectoryHoldsClientPairWithRoleAndScope() throws Exception {
    IssuedCertificate alice =
        ca.issueClient(
            "alice",
            Identity.Role.IO,
            List.of("vol-a", "vol-b"),
            List.of("team1-"),
            true,
            Validity.days(30));
    Path dir = tmp.resolve("certs/alice");
    ca.writeIdentityDirectory(dir, alice);
    assertThat(listNames(dir))
        .containsExactlyInAnyOrder("ca-cert.pem", "client-cert.pem", "client-key.pem");
    assertThat(mode(dir.resolve("client-key.pem"))).isEqualTo("rw-------");

    Identity id = Identity.of(PemFiles.readCertificates(dir.resolve("client-cert.pem")).get(0));
    assertThat(id.kind()).isEqualTo(Identity.Kind.CLIENT);
    assertThat(id.name()).isEqualTo("alice");
    assertThat(id.role()).isEqualTo(Identity.Role.IO);
    assertThat(id.volumeNames()).containsExactly("vol-a", "vol-b");
    assertThat(id.volumePrefixes()).containsExactly("team1-");
    assertThat(id.dataReadOnly()).isTrue();
    assertThat(id.describe()).isEqualTo("client 'alice'");
    assertThat(id.volumeInScope("vol-a")).isTrue();
    assertThat(id.volumeInScope("team1-x")).isTrue();
    assertThat(id.volumeInScope("vol-c")).isFalse();

    String caFile = dir.resolve("ca-cert.pem").toString();
    String certFile = dir.resolve("client-cert.pem").toString();
    assertThat(openssl("verify", "-CAfile", caFile, "-purpose", "sslclient", certFile))
        .contains(": OK");
    // A client certificate cannot serve.
    assertThat(opensslStatus("verify", "-CAfile", caFile, "-purpose", "sslserver", certFile))
        .isNotEqualTo(0);
    String text = openssl("x509", "-in", certFile, "-noout", "-text");
    assertThat(text)
        .contains("Subject: O = PeerFlash, OU = client, CN = alice")
        .contains(
            "URI:urn:peerflash:role:io, URI:urn:peerflash:volume:vol-a,"
                + " URI:urn:peerflash:volume:vol-b, URI:urn:peerflash:volume-prefix:team1-,"
                + " URI:urn:peerflash:data:read-only")
        .contains("TLS Web Client Authentication")
        .doesNotContain("TLS Web Server Authentication");

    IssuedCertificate admin =
        ca.issueClient("root", Identity.Role.ADMIN, List.of(), List.of(), false, Validity.days(1));
    Identity adminId = Identity.of(admin.certificate());
    assertThat(adminId.role()).isEqualTo(Identity.Role.ADMIN);
    assertThat(adminId.volumeInScope("anything")).isTrue();
    IssuedCertificate reader =
        ca.issueClient(
            "ro", Identity.Role.READ_ONLY, List.of(), List.of(), false, Validity.days(1));
    assertThat(Identity.of(reader.certificate()).role()).isEqualTo(Identity.Role.READ_ONLY);
  }

  @Test
  void issuerRefusesArgumentsOutsideTheConventions() {
    assertThatThrownBy(
            () ->
                ca.issueClient(
                    "a", Identity.Role.ADMIN, List.of("v"), List.of(), false, Validity.days(1)))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("role io only");
    assertThatThrownBy(
            () ->
                ca.issueClient(
                    "a", Identity.Role.NODE, List.of(), List.of(), false, Validity.days(1)))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("issueNode");
    assertThatThrownBy(() -> ca.issueNode("bad id", List.of(), Validity.days(1)))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("node id is not a valid name");
    assertThatThrownBy(() -> ca.issueNode("n1", List.of("bad host!"), Validity.days(1)))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("neither an IP address nor a DNS name");
    assertThatThrownBy(() -> Validity.days(0)).isInstanceOf(IllegalArgumentException.class);
  }

  @Test
  void serialsAreRandomPositiveAndAtMost128Bits() throws Exception {
    Set<BigInteger> serials = new HashSet<>();
    for (int i = 0; i < 20; i++) {
      BigInteger s =
          ca.issueNode("n" + i, List.of(), Validity.days(1)).certificate().getSerialNumber();
      assertThat(s.signum()).isEqualTo(1);
      assertThat(s.bitLength()).isLessThanOrEqualTo(128);
      serials.add(s);
    }
    assertThat(serials).hasSize(20);
  }

  @Test
  void identityRefusesCertificatesOutsideTheConventions() throws Exception {
    Validity v = Validity.days(1);
    KeyPurposeId[] both = {KeyPurposeId.id_kp_serverAuth, KeyPurposeId.id_kp_clientAuth};
    KeyPurposeId[] client = {KeyPurposeId.id_kp_clientAuth};
    assertRefused(
        ca.issue(
            new X500Name("O=PeerFlash,CN=x"), List.of(uri("urn:peerflash:role:io")), client, v),
        "needs exactly one OU, it has 0");
    assertRefused(
        ca.issue(
            CertificateIssuer.subject("x", "admin"),
            List.of(uri("urn:peerflash:role:io")),
            client,
            v),
        "its OU is 'admin'");
    assertRefused(
        ca.issue(
            new X500Name("O=Other,OU=client,CN=x"),
            List.of(uri("urn:peerflash:role:io")),
            client,
            v),
        "its O is 'Other'");
    assertRefused(
        ca.issue(
            CertificateIssuer.subject("x", "client"),
            List.of(uri("urn:peerflash:role:root")),
            client,
            v),
        "unknown client role 'root'");
    assertRefused(
        ca.issue(CertificateIssuer.subject("x", "client"), List.of(), client, v),
        "exactly one SAN URI 'urn:peerflash:role:<admin|io|read-only>', it has 0");
    assertRefused(
        ca.issue(
            CertificateIssuer.subject("x", "client"),
            List.of(uri("urn:peerflash:role:io"), uri("urn:peerflash:role:admin")),
            client,
            v),
        "it has 2");
    assertRefused(
        ca.issue(
            CertificateIssuer.subject("x", "client"),
            List.of(uri("urn:peerflash:role:admin"), uri("urn:peerflash:volume:v1")),
            client,
            v),
        "for role io only");
    assertRefused(
        ca.issue(
            CertificateIssuer.subject("x", "client"),
            List.of(uri("urn:peerflash:role:io"), uri("urn:peerflash:superuser")),
            client,
            v),
        "unknown PeerFlash URI 'urn:peerflash:superuser'");
    assertRefused(
        ca.issue(
            CertificateIssuer.subject("x", "client"),
            List.of(uri("urn:peerflash:role:io")),
            new KeyPurposeId[] {KeyPurposeId.id_kp_serverAuth},
            v),
        "needs extended key usage clientAuth");
    assertRefused(
        ca.issue(CertificateIssuer.subject("n1", "node"), List.of(), both, v),
        "a node certificate needs exactly one SAN URI 'urn:peerflash:node:<node-id>', it has 0");
    assertRefused(
        ca.issue(
            CertificateIssuer.subject("n1", "node"),
            List.of(uri("urn:peerflash:node:n2")),
            both,
            v),
        "its node URI names 'n2' but its CN is 'n1'");
    assertRefused(
        ca.issue(
            CertificateIssuer.subject("n1", "node"),
            List.of(uri("urn:peerflash:node:n1")),
            client,
            v),
        "needs extended key usage serverAuth and clientAuth");
    assertRefused(
        ca.issue(
            CertificateIssuer.subject("n1", "node"),
            List.of(uri("urn:peerflash:node:n1"), uri("urn:peerflash:role:admin")),
            both,
            v),
        "a node certificate carries a client role");
    assertThatThrownBy(() -> Identity.of(ca.caCertificate()))
        .isInstanceOf(CertificateException.class)
        .hasMessageContaining("it is a CA certificate");
  }

  @Test
  void pemReadersNameTheFileOfBrokenContent() throws Exception {
    IssuedCertificate node = ca.issueNode("n1", List.of(), Validity.days(1));
    String pem = PemFiles.certificatesPem(List.of(node.certificate()));
    Path half = tmp.resolve("half.pem");
    Files.writeString(half, pem.substring(0, pem.length() / 2));
    assertThatThrownBy(() -> PemFiles.readCertificates(half)).hasMessageContaining(half.toString());
    Path empty = tmp.resolve("empty.pem");
    Files.writeString(empty, "");
    assertThatThrownBy(() -> PemFiles.readCertificates(empty))
        .isInstanceOf(CertificateException.class)
        .hasMessageContaining("holds no PEM certificate");
    Path certAsKey = tmp.resolve("cert-as-key.pem");
    Files.writeString(certAsKey, pem);
    assertThatThrownBy(() -> PemFiles.readPrivateKey(certAsKey))
        .isInstanceOf(GeneralSecurityException.class)
        .hasMessageContaining("where a private key belongs");

    // A key in OpenSSL's traditional EC form (what `openssl ec` writes) reads too.
    Path pkcs8 = tmp.resolve("key.pem");
    PemFiles.writePrivateKey(pkcs8, node.privateKey());
    Path traditional = tmp.resolve("key-ec.pem");
    openssl("ec", "-in", pkcs8.toString(), "-out", traditional.toString());
    assertThat(Files.readString(traditional)).startsWith("-----BEGIN EC PRIVATE KEY-----");
    // (The encodings differ: the traditional form also carries the public key.)
    CertificateIssuer.checkKeyMatches(
        PemFiles.readPrivateKey(traditional),
        node.certificate().getPublicKey(),
        "the traditional key read does not match");
    // An encrypted key is refused with a reason.
    Path encrypted = tmp.resolve("key-enc.pem");
    openssl(
        "pkcs8",
        "-topk8",
        "-in",
        pkcs8.toString(),
        "-out",
        encrypted.toString(),
        "-passout",
        "pass:secret");
    assertThatThrownBy(() -> PemFiles.readPrivateKey(encrypted))
        .hasMessageContaining("encrypted private key");
  }

  @Test
  void atomicWriteReplacesContentAndLeavesNoTemporaryFile() throws Exception {
    Path file = tmp.resolve("f.pem");
    PemFiles.writeAtomically(
        file, "one".getBytes(StandardCharsets.US_ASCII), PemFiles.KEY_FILE_PERMISSIONS);
    Object firstInode =
        Files.readAttributes(file, java.nio.file.attribute.BasicFileAttributes.class).fileKey();
    PemFiles.writeAtomically(
        file, "two".getBytes(StandardCharsets.US_ASCII), PemFiles.KEY_FILE_PERMISSIONS);
    assertThat(Files.readString(file)).isEqualTo("two");
    assertThat(mode(file)).isEqualTo("rw-------");
    // Replaced by a rename, not rewritten in place: a reader holding the old file keeps it whole.
    assertThat(
            Files.readAttributes(file, java.nio.file.attribute.BasicFileAttributes.class).fileKey())
        .isNotEqualTo(firstInode);
    assertThat(listNames(tmp)).containsExactly("f.pem");
  }

  @Test
  void denyListReadsHexSerialsInTheUsualSpellings() throws Exception {
    Path dir = tmp;
    CertificateIssuer.writeRevokedSerials(dir, Set.of(BigInteger.valueOf(0x3fa2), BigInteger.TEN));
    assertThat(TlsMaterial.readRevokedSerials(dir.resolve(TlsDirectory.REVOKED_SERIALS_FILE)))
        .containsExactlyInAnyOrder(BigInteger.valueOf(0x3fa2), BigInteger.TEN);

    Path file = dir.resolve("other.txt");
    Files.writeString(
        file,
        "# revoked by ops\n3F:A2\n\n0x10  # old laptop\nserial=0B\n  abcdef0123456789abcdef0123456789  \n");
    assertThat(TlsMaterial.readRevokedSerials(file))
        .containsExactlyInAnyOrder(
            BigInteger.valueOf(0x3fa2),
            BigInteger.valueOf(0x10),
            BigInteger.valueOf(0x0b),
            new BigInteger("abcdef0123456789abcdef0123456789", 16));
    Files.writeString(file, "3fa2\nnot-a-serial\n");
    assertThatThrownBy(() -> TlsMaterial.readRevokedSerials(file))
        .isInstanceOf(GeneralSecurityException.class)
        .hasMessageContaining("line 2 is not a hex serial: 'not-a-serial'");
    assertThat(TlsMaterial.readRevokedSerials(dir.resolve("absent.txt"))).isEmpty();
  }

  private static void assertRefused(IssuedCertificate issued, String reason) {
    assertThatThrownBy(() -> Identity.of(issued.certificate()))
        .isInstanceOf(CertificateException.class)
        .hasMessageContaining("is not a PeerFlash identity")
        .hasMessageContaining(reason);
  }

  private static GeneralName uri(String uri) {
    return new GeneralName(GeneralName.uniformResourceIdentifier, uri);
  }

  private static long validityDays(X509Certificate c) {
    // notBefore is backdated by CertificateIssuer.BACKDATE.
    Instant from = c.getNotBefore().toInstant().plus(CertificateIssuer.BACKDATE);
    return Math.round(
        Duration.between(from, c.getNotAfter().toInstant()).toMinutes() / (24.0 * 60));
  }

  private static String mode(Path p) throws IOException {
    return PosixFilePermissions.toString(Files.getPosixFilePermissions(p));
  }

  private static List<String> listNames(Path dir) throws IOException {
    try (Stream<Path> s = Files.list(dir)) {
      return s.map(p -> p.getFileName().toString()).toList();
    }
  }

  /** Runs openssl and returns its output; fails the test when it exits non-zero. */
  static String openssl(String... args) throws Exception {
    List<String> cmd = new ArrayList<>();
    cmd.add("openssl");
    cmd.addAll(List.of(args));
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertThat(p.waitFor(30, TimeUnit.SECONDS)).isTrue();
    assertThat(p.exitValue()).as("openssl %s: %s", String.join(" ", args), out).isEqualTo(0);
    return out;
  }

  static int opensslStatus(String... args) throws Exception {
    List<String> cmd = new ArrayList<>();
    cmd.add("openssl");
    cmd.addAll(List.of(args));
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    p.getInputStream().readAllBytes();
    assertThat(p.waitFor(30, TimeUnit.SECONDS)).isTrue();
    return p.exitValue();
  }
}
