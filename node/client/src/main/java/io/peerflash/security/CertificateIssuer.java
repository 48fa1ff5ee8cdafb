package io.peerflash.security;

import java.io.IOException;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.SecureRandom;
import java.security.Signature;
import java.security.cert.CertificateException;
import java.security.cert.X509Certificate;
import java.security.interfaces.ECPrivateKey;
import java.security.interfaces.ECPublicKey;
import java.security.interfaces.RSAPrivateCrtKey;
import java.security.interfaces.RSAPublicKey;
import java.security.spec.ECGenParameterSpec;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Date;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.Set;
import java.util.regex.Pattern;
import org.bouncycastle.asn1.pkcs.PrivateKeyInfo;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x500.X500NameBuilder;
import org.bouncycastle.asn1.x500.style.BCStyle;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.ExtendedKeyUsage;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.bouncycastle.asn1.x509.KeyUsage;
import org.bouncycastle.asn1.x509.SubjectPublicKeyInfo;
import org.bouncycastle.cert.X509v3CertificateBuilder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509ExtensionUtils;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.operator.ContentSigner;
import org.bouncycastle.operator.OperatorCreationException;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.bouncycastle.util.IPAddress;

/**
 * The certificate authority of one PeerFlash cluster: creates the CA and issues node and client
 * certificates following the conventions {@link Identity#of} reads (EC P-256 keys, SHA256withECDSA,
 * random positive 128-bit serials), and lays out the identity directories that {@link TlsDirectory}
 * loads.
 *
 * <p>Layout: the CA in {@code DIR/certs/ca/} ({@code ca-cert.pem}, {@code ca-key.pem}; the CA key
 * never goes anywhere else); one directory per identity, named as qemu's {@code tls-creds-x509} and
 * libnbd's {@code tls-certificates} expect: a node's holds {@code ca-cert.pem}, {@code
 * server-cert.pem}, {@code server-key.pem} and the same pair as {@code client-cert.pem}, {@code
 * client-key.pem} (a node calls its peers with it); a client's holds {@code ca-cert.pem}, {@code
 * client-cert.pem}, {@code client-key.pem}. Keys are 0600, directories holding keys 0700, every
 * file is replaced atomically.
 */
public final class CertificateIssuer {
  /** Validity of a CA created without an explicit one: 10 years. */
  public static final int DEFAULT_CA_VALIDITY_DAYS = 3650;

  /** Validity of node and client certificates issued without an explicit one. */
  public static final int DEFAULT_VALIDITY_DAYS = 365;

  /**
   * How far before "now" a new certificate becomes valid, so that a machine whose clock is a bit
   * behind the issuer's accepts it right away.
   */
  public static final Duration BACKDATE = Duration.ofHours(1);

  static final String SIGNATURE_ALGORITHM = "SHA256withECDSA";
  private static final String CURVE = "secp256r1";
  private static final String CA_COMMON_NAME = "PeerFlash CA";

  /** A DNS name in a SAN: labels of letters, digits and hyphens. */
  private static final Pattern DNS_NAME =
      Pattern.compile(
          "(?i)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*");

  private static final SecureRandom RANDOM = new SecureRandom();

  /** A certificate and its private key. */
  public record IssuedCertificate(X509Certificate certificate, PrivateKey privateKey) {
    public IssuedCertificate {
      Objects.requireNonNull(certificate, "certificate");
      Objects.requireNonNull(privateKey, "privateKey");
    }
  }

  /** The period a certificate is valid in. */
  public record Validity(Instant notBefore, Instant notAfter) {
    public Validity {
      if (!notAfter.isAfter(notBefore)) {
        throw new IllegalArgumentException(
            "validity ends (" + notAfter + ") before it starts (" + notBefore + ")");
      }
    }

    /** Valid from {@link #BACKDATE} ago until {@code days} days from now. */
    public static Validity days(int days) {
      if (days < 1) {
        throw new IllegalArgumentException("validity must be at least 1 day, got " + days);
      }
      Instant now = Instant.now();
      return new Validity(now.minus(BACKDATE), now.plus(Duration.ofDays(days)));
    }
  }

  private final X509Certificate caCertificate;
  private final PrivateKey caPrivateKey;

  private CertificateIssuer(X509Certificate caCertificate, PrivateKey caPrivateKey) {
    this.caCertificate = caCertificate;
    this.caPrivateKey = caPrivateKey;
  }

  /**
   * A new CA: subject {@code CN=PeerFlash CA, O=PeerFlash} (with {@code OU=<clusterName>} when one
   * is given), basicConstraints CA:true (critical), keyUsage keyCertSign and cRLSign. Nothing is
   * written; see {@link #writeCaDirectory}.
   *
   * @param clusterName a name that tells this cluster's CA apart from others, or null
   */
  public static CertificateIssuer createCa(String clusterName, Validity validity)
      throws GeneralSecurityException {
    X500NameBuilder subject = new X500NameBuilder(BCStyle.INSTANCE);
    subject.addRDN(BCStyle.O, Identity.ORGANIZATION);
    if (clusterName != null) {
      try {
        Identity.checkName(clusterName, "cluster name");
      } catch (CertificateException e) {
        throw new IllegalArgumentException(e.getMessage(), e);
      }
      subject.addRDN(BCStyle.OU, clusterName);
    }
    subject.addRDN(BCStyle.CN, CA_COMMON_NAME);
    X500Name name = subject.build();
    KeyPair keys = newKeyPair();
    try {
      JcaX509ExtensionUtils ext = new JcaX509ExtensionUtils();
      X509v3CertificateBuilder b =
          new JcaX509v3CertificateBuilder(
              name,
              newSerial(),
              Date.from(validity.notBefore()),
              Date.from(validity.notAfter()),
              name,
              keys.getPublic());
      b.addExtension(Extension.basicConstraints, true, new BasicConstraints(true));
      b.addExtension(
          Extension.keyUsage, true, new KeyUsage(KeyUsage.keyCertSign | KeyUsage.cRLSign));
      b.addExtension(
          Extension.subjectKeyIdentifier, false, ext.createSubjectKeyIdentifier(keys.getPublic()));
      X509Certificate cert = sign(b, keys.getPrivate());
      return new CertificateIssuer(cert, keys.getPrivate());
    } catch (IOException e) {
      throw new GeneralSecurityException("cannot encode the CA certificate: " + e.getMessage(), e);
    }
  }

  /**
   * The CA of {@code caDirectory} ({@code ca-cert.pem}, {@code ca-key.pem}).
   *
   * @throws GeneralSecurityException when the certificate is no CA or the key does not match it
   */
  public static CertificateIssuer loadCa(Path caDirectory)
      throws IOException, GeneralSecurityException {
    Path certFile = caDirectory.resolve(TlsDirectory.CA_CERT_FILE);
    Path keyFile = caDirectory.resolve(TlsDirectory.CA_KEY_FILE);
    X509Certificate cert = PemFiles.readCertificates(certFile).get(0);
    PrivateKey key = PemFiles.readPrivateKey(keyFile);
    if (cert.getBasicConstraints() < 0) {
      throw new CertificateException(certFile + " is not a CA certificate");
    }
    checkKeyMatches(key, cert.getPublicKey(), keyFile + " does not match " + certFile);
    return new CertificateIssuer(cert, key);
  }

  public X509Certificate caCertificate() {
    return caCertificate;
  }

  /**
   * Writes {@code ca-cert.pem} and {@code ca-key.pem} (0600) into {@code caDirectory} (created,
   * 0700).
   *
   * @throws FileAlreadyExistsException when the directory already holds a CA key: replacing it
   *     would make every certificate issued so far untrusted
   */
  public void writeCaDirectory(Path caDirectory) throws IOException, CertificateException {
    Path keyFile = caDirectory.resolve(TlsDirectory.CA_KEY_FILE);
    if (Files.exists(keyFile)) {
      throw new FileAlreadyExistsException(
          keyFile.toString(), null, "a CA key is already there; refusing to replace it");
    }
    PemFiles.createDirectory(caDirectory, PemFiles.KEY_DIRECTORY_PERMISSIONS);
    PemFiles.writePrivateKey(keyFile, caPrivateKey);
    PemFiles.writeCertificates(
        caDirectory.resolve(TlsDirectory.CA_CERT_FILE), List.of(caCertificate));
  }

  /**
   * A node certificate: subject {@code CN=<nodeId>, OU=node, O=PeerFlash}; SANs DNS {@code
   * localhost}, IP {@code 127.0.0.1}, each of {@code hosts} (DNS names and IP literals), and URI
   * {@code urn:peerflash:node:<nodeId>}; EKU serverAuth and clientAuth; keyUsage digitalSignature
   * and keyAgreement.
   *
   * @param hosts host names and IP addresses peers and clients dial this node by
   */
  public IssuedCertificate issueNode(String nodeId, List<String> hosts, Validity validity)
      throws GeneralSecurityException {
    checkArgumentName(nodeId, "node id");
    Set<GeneralName> sans = new LinkedHashSet<>();
    sans.add(new GeneralName(GeneralName.dNSName, "localhost"));
    sans.add(new GeneralName(GeneralName.iPAddress, "127.0.0.1"));
    for (String host : hosts) {
      sans.add(hostName(host));
    }
    sans.add(new GeneralName(GeneralName.uniformResourceIdentifier, Identity.NODE_URI + nodeId));
    return issue(
        subject(nodeId, Identity.OU_NODE),
        new ArrayList<>(sans),
        new KeyPurposeId[] {KeyPurposeId.id_kp_serverAuth, KeyPurposeId.id_kp_clientAuth},
        validity);
  }

  /**
   * A client certificate: subject {@code CN=<name>, OU=client, O=PeerFlash}; SAN URIs {@code
   * urn:peerflash:role:<role>} and, for role {@code io} only, {@code urn:peerflash:volume:<name>}
   * per volume, {@code urn:peerflash:volume-prefix:<prefix>} per prefix and {@code
   * urn:peerflash:data:read-only}; EKU clientAuth.
   *
   * @param volumeNames volumes an io client is limited to (with the prefixes; none: every volume)
   * @param volumePrefixes volume name prefixes an io client is limited to
   * @param dataReadOnly an io client that may read but not write or trim
   */
  public IssuedCertificate issueClient(
      String name,
      Identity.Role role,
      List<String> volumeNames,
      List<String> volumePrefixes,
      boolean dataReadOnly,
      Validity validity)
      throws GeneralSecurityException {
    checkArgumentName(name, "client name");
    if (role == Identity.Role.NODE) {
      throw new IllegalArgumentException("role node is for node certificates (issueNode)");
    }
    if (role != Identity.Role.IO
        && (!volumeNames.isEmpty() || !volumePrefixes.isEmpty() || dataReadOnly)) {
      throw new IllegalArgumentException(
          "volume scope and data read-only are for role io only, not " + role.uriName());
    }
    List<GeneralName> sans = new ArrayList<>();
    sans.add(
        new GeneralName(GeneralName.uniformResourceIdentifier, Identity.ROLE_URI + role.uriName()));
    for (String v : volumeNames) {
      checkArgumentName(v, "volume name");
      sans.add(new GeneralName(GeneralName.uniformResourceIdentifier, Identity.VOLUME_URI + v));
    }
    for (String p : volumePrefixes) {
      checkArgumentName(p, "volume prefix");
      sans.add(
          new GeneralName(GeneralName.uniformResourceIdentifier, Identity.VOLUME_PREFIX_URI + p));
    }
    if (dataReadOnly) {
      sans.add(new GeneralName(GeneralName.uniformResourceIdentifier, Identity.DATA_READ_ONLY_URI));
    }
    return issue(
        subject(name, Identity.OU_CLIENT),
        sans,
        new KeyPurposeId[] {KeyPurposeId.id_kp_clientAuth},
        validity);
  }

  /**
   * Writes the identity directory of {@code issued} (a node's or a client's, as its certificate
   * says), trusting this issuer's CA.
   */
  public void writeIdentityDirectory(Path directory, IssuedCertificate issued)
      throws IOException, GeneralSecurityException {
    writeIdentityDirectory(directory, List.of(caCertificate), issued);
  }

  /**
   * Writes an identity directory (created, 0700): {@code ca-cert.pem} with {@code caCertificates}
   * (several while the CA is being replaced), then the key pair: for a node {@code server-key.pem},
   * {@code server-cert.pem}, {@code client-key.pem}, {@code client-cert.pem}; for a client {@code
   * client-key.pem}, {@code client-cert.pem}. Over an existing directory this is a rotation: each
   * file is replaced atomically, keys before certificates; a {@link TlsDirectory} that reloads in
   * between sees a key that does not match its certificate and keeps its old pair until the
   * certificate follows.
   */
  public static void writeIdentityDirectory(
      Path directory, List<X509Certificate> caCertificates, IssuedCertificate issued)
      throws IOException, GeneralSecurityException {
    Identity identity = Identity.of(issued.certificate());
    checkKeyMatches(
        issued.privateKey(),
        issued.certificate().getPublicKey(),
        "the private key does not match the certificate of " + identity.describe());
    PemFiles.createDirectory(directory, PemFiles.KEY_DIRECTORY_PERMISSIONS);
    PemFiles.writeCertificates(directory.resolve(TlsDirectory.CA_CERT_FILE), caCertificates);
    List<X509Certificate> chain = List.of(issued.certificate());
    if (identity.kind() == Identity.Kind.NODE) {
      PemFiles.writePrivateKey(
          directory.resolve(TlsDirectory.SERVER_KEY_FILE), issued.privateKey());
      PemFiles.writeCertificates(directory.resolve(TlsDirectory.SERVER_CERT_FILE), chain);
    }
    PemFiles.writePrivateKey(directory.resolve(TlsDirectory.CLIENT_KEY_FILE), issued.privateKey());
    PemFiles.writeCertificates(directory.resolve(TlsDirectory.CLIENT_CERT_FILE), chain);
  }

  /**
   * Replaces the deny list of an identity directory ({@code revoked-serials.txt}, one hex serial a
   * line), atomically.
   */
  public static void writeRevokedSerials(Path directory, Set<BigInteger> serials)
      throws IOException {
    StringBuilder b = new StringBuilder("# serials (hex) of revoked PeerFlash certificates\n");
    serials.stream().sorted().forEach(s -> b.append(s.toString(16)).append('\n'));
    PemFiles.writeAtomically(
        directory.resolve(TlsDirectory.REVOKED_SERIALS_FILE),
        b.toString().getBytes(StandardCharsets.US_ASCII),
        PemFiles.PUBLIC_FILE_PERMISSIONS);
  }

  /** Issues any certificate signed by this CA; the public methods fix what goes in. */
  IssuedCertificate issue(
      X500Name subject, List<GeneralName> sans, KeyPurposeId[] extendedKeyUsage, Validity validity)
      throws GeneralSecurityException {
    KeyPair keys = newKeyPair();
    try {
      JcaX509ExtensionUtils ext = new JcaX509ExtensionUtils();
      X509v3CertificateBuilder b =
          new JcaX509v3CertificateBuilder(
              caCertificate,
              newSerial(),
              Date.from(validity.notBefore()),
              Date.from(validity.notAfter()),
              subject,
              keys.getPublic());
      b.addExtension(Extension.basicConstraints, true, new BasicConstraints(false));
      b.addExtension(
          Extension.keyUsage,
          true,
          new KeyUsage(KeyUsage.digitalSignature | KeyUsage.keyAgreement));
      if (extendedKeyUsage.length > 0) {
        b.addExtension(Extension.extendedKeyUsage, false, new ExtendedKeyUsage(extendedKeyUsage));
      }
      if (!sans.isEmpty()) {
        b.addExtension(
            Extension.subjectAlternativeName,
            false,
            new GeneralNames(sans.toArray(new GeneralName[0])));
      }
      b.addExtension(
          Extension.subjectKeyIdentifier, false, ext.createSubjectKeyIdentifier(keys.getPublic()));
      b.addExtension(
          Extension.authorityKeyIdentifier, false, ext.createAuthorityKeyIdentifier(caCertificate));
      return new IssuedCertificate(sign(b, caPrivateKey), keys.getPrivate());
    } catch (IOException e) {
      throw new GeneralSecurityException("cannot encode the certificate: " + e.getMessage(), e);
    }
  }

  static X500Name subject(String commonName, String organizationalUnit) {
    return new X500NameBuilder(BCStyle.INSTANCE)
        .addRDN(BCStyle.O, Identity.ORGANIZATION)
        .addRDN(BCStyle.OU, organizationalUnit)
        .addRDN(BCStyle.CN, commonName)
        .build();
  }

  /**
   * Refuses a key that does not belong to a certificate's public key. An RSA key, and an EC key
   * whose PKCS#8 form carries its public key (as PeerFlash writes them), is compared with the
   * certificate's key directly; any other key by signing a sample, the one test that works for
   * every key type. The comparison keeps a short command from paying for two signature operations
   * in cold code at every start.
   */
  static void checkKeyMatches(PrivateKey privateKey, PublicKey publicKey, String message)
      throws GeneralSecurityException {
    Boolean same = sameKeyPair(privateKey, publicKey);
    if (same != null) {
      if (!same) {
        throw new GeneralSecurityException(message);
      }
      return;
    }
    String algorithm =
        switch (publicKey.getAlgorithm()) {
          case "EC" -> "SHA256withECDSA";
          case "RSA" -> "SHA256withRSA";
          case "Ed25519", "EdDSA" -> "Ed25519";
          default ->
              throw new GeneralSecurityException(
                  "unsupported key algorithm " + publicKey.getAlgorithm());
        };
    byte[] sample = "peerflash key check".getBytes(StandardCharsets.US_ASCII);
    boolean matches;
    try {
      Signature signer = Signature.getInstance(algorithm);
      signer.initSign(privateKey);
      signer.update(sample);
      byte[] signature = signer.sign();
      Signature verifier = Signature.getInstance(algorithm);
      verifier.initVerify(publicKey);
      verifier.update(sample);
      matches = verifier.verify(signature);
    } catch (GeneralSecurityException e) {
      matches = false; // e.g. an RSA key beside an EC certificate
    }
    if (!matches) {
      throw new GeneralSecurityException(message);
    }
  }

  /**
   * Whether the keys form a pair, where that can be read off the keys: an RSA key's modulus and
   * public exponent, an EC key's public point stored beside it. Null where it cannot.
   */
  static Boolean sameKeyPair(PrivateKey privateKey, PublicKey publicKey) {
    if (privateKey instanceof RSAPrivateCrtKey rsa) {
      return publicKey instanceof RSAPublicKey pub
          && rsa.getModulus().equals(pub.getModulus())
          && rsa.getPublicExponent().equals(pub.getPublicExponent());
    }
    if (!(privateKey instanceof ECPrivateKey) || !"PKCS#8".equals(privateKey.getFormat())) {
      return null;
    }
    if (!(publicKey instanceof ECPublicKey)) {
      return false;
    }
    try {
      org.bouncycastle.asn1.sec.ECPrivateKey inner =
          org.bouncycastle.asn1.sec.ECPrivateKey.getInstance(
              PrivateKeyInfo.getInstance(privateKey.getEncoded()).parsePrivateKey());
      if (inner.getPublicKey() == null) {
        return null;
      }
      byte[] stored = inner.getPublicKey().getOctets();
      byte[] certified =
          SubjectPublicKeyInfo.getInstance(publicKey.getEncoded()).getPublicKeyData().getOctets();
      // Both uncompressed (0x04, x, y), as PeerFlash and OpenSSL write them; else sign a sample.
      if (stored.length == 0 || stored[0] != 4 || certified.length == 0 || certified[0] != 4) {
        return null;
      }
      return java.util.Arrays.equals(stored, certified);
    } catch (java.io.IOException | RuntimeException e) {
      return null;
    }
  }

  private static GeneralName hostName(String host) {
    String h = host.trim();
    if (h.startsWith("[") && h.endsWith("]")) {
      h = h.substring(1, h.length() - 1);
    }
    if (IPAddress.isValid(h)) {
      return new GeneralName(GeneralName.iPAddress, h);
    }
    if (h.endsWith(".")) {
      h = h.substring(0, h.length() - 1);
    }
    if (h.length() > 253 || !DNS_NAME.matcher(h).matches()) {
      throw new IllegalArgumentException(
          "host '" + host + "' is neither an IP address nor a DNS name");
    }
    return new GeneralName(GeneralName.dNSName, h.toLowerCase(Locale.ROOT));
  }

  private static void checkArgumentName(String value, String what) {
    try {
      Identity.checkName(value, what);
    } catch (CertificateException e) {
      throw new IllegalArgumentException(e.getMessage(), e);
    }
  }

  private static KeyPair newKeyPair() throws GeneralSecurityException {
    KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
    g.initialize(new ECGenParameterSpec(CURVE), RANDOM);
    KeyPair pair = g.generateKeyPair();
    // The key as its file holds it (with its public key, which GnuTLS needs: see PemFiles), so
    // the key issued and the key read back have one encoding.
    java.security.PrivateKey key =
        java.security.KeyFactory.getInstance("EC")
            .generatePrivate(
                new java.security.spec.PKCS8EncodedKeySpec(
                    PemFiles.withEcPublicKey(pair.getPrivate())));
    return new KeyPair(pair.getPublic(), key);
  }

  private static BigInteger newSerial() {
    BigInteger serial;
    do {
      serial = new BigInteger(128, RANDOM);
    } while (serial.signum() == 0);
    return serial;
  }

  private static X509Certificate sign(X509v3CertificateBuilder builder, PrivateKey key)
      throws GeneralSecurityException {
    try {
      ContentSigner signer = new JcaContentSignerBuilder(SIGNATURE_ALGORITHM).build(key);
      return new JcaX509CertificateConverter().getCertificate(builder.build(signer));
    } catch (OperatorCreationException e) {
      throw new GeneralSecurityException("cannot sign: " + e.getMessage(), e);
    }
  }
}
