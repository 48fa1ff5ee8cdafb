package io.peerflash.replication.control;

import java.math.BigInteger;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.security.spec.ECGenParameterSpec;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Date;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import javax.net.ssl.KeyManager;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.TrustManager;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509ExtendedKeyManager;
import javax.net.ssl.X509ExtendedTrustManager;
import javax.security.auth.x500.X500Principal;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.ExtendedKeyUsage;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.bouncycastle.asn1.x509.KeyUsage;
import org.bouncycastle.cert.X509v3CertificateBuilder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509ExtensionUtils;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;

/**
 * A certificate authority for tests, issuing certificates by the conventions of {@code peerflash
 * certs} (EC P-256, SHA256withECDSA): node certificates {@code CN=<id>, OU=node, O=PeerFlash} with
 * SANs DNS localhost, IP 127.0.0.1 and URI {@code urn:peerflash:node:<id>}, EKU serverAuth and
 * clientAuth; client certificates {@code CN=<name>, OU=client, O=PeerFlash} with a role URI and EKU
 * clientAuth.
 */
final class TestPki {
  private static final SecureRandom RANDOM = new SecureRandom();
  private static final AtomicLong SERIALS = new AtomicLong(System.nanoTime());
  private static final char[] PASSWORD = "test".toCharArray();

  /** One identity: its key and certificate chain (leaf first), as a key manager. */
  record Identity(PrivateKey key, X509Certificate certificate, X509Certificate ca) {
    X509ExtendedKeyManager keyManager() {
      try {
        KeyStore ks = KeyStore.getInstance("PKCS12");
        ks.load(null, null);
        ks.setKeyEntry("identity", key, PASSWORD, new X509Certificate[] {certificate, ca});
        KeyManagerFactory kmf = KeyManagerFactory.getInstance("PKIX");
        kmf.init(ks, PASSWORD);
        for (KeyManager km : kmf.getKeyManagers()) {
          if (km instanceof X509ExtendedKeyManager x) {
            return x;
          }
        }
        throw new IllegalStateException("no X509ExtendedKeyManager");
      } catch (GeneralSecurityException | java.io.IOException e) {
        throw new IllegalStateException(e);
      }
    }
  }

  final KeyPair caKeys;
  final X509Certificate caCertificate;

  /** A new CA, {@code CN=<caName>, O=PeerFlash}, valid 10 years. */
  TestPki(String caName) {
    this.caKeys = ecKeys();
    X500Name subject = name("CN=" + caName + ",O=PeerFlash");
    this.caCertificate =
        sign(
            subject,
            caKeys.getPrivate(),
            subject,
            caKeys.getPublic(),
            Duration.ofDays(3650),
            true,
            KeyUsage.keyCertSign | KeyUsage.cRLSign,
            null,
            List.of());
  }

  /** A node certificate for {@code nodeId}. */
  Identity node(String nodeId) {
    return node(nodeId, "CN=" + nodeId + ",OU=node,O=PeerFlash", nodeId);
  }

  /** A node-like certificate with a given subject and node URI (null: none), to test refusals. */
  Identity node(String nodeId, String subject, String uriNodeId) {
    return node(subject, uriNodeId, true);
  }

  /** A node certificate for {@code nodeId} naming neither localhost nor 127.0.0.1. */
  Identity nodeElsewhere(String nodeId) {
    return node("CN=" + nodeId + ",OU=node,O=PeerFlash", nodeId, false);
  }

  private Identity node(String subject, String uriNodeId, boolean loopbackNames) {
    KeyPair keys = ecKeys();
    List<GeneralName> sans = new ArrayList<>();
    if (loopbackNames) {
      sans.add(new GeneralName(GeneralName.dNSName, "localhost"));
      sans.add(new GeneralName(GeneralName.iPAddress, "127.0.0.1"));
    } else {
      sans.add(new GeneralName(GeneralName.dNSName, "elsewhere.invalid"));
    }
    if (uriNodeId != null) {
      sans.add(
          new GeneralName(
              GeneralName.uniformResourceIdentifier,
              RaftPeerCertificates.NODE_URI_PREFIX + uriNodeId));
    }
    X509Certificate cert =
        sign(
            caName(),
            caKeys.getPrivate(),
            name(subject),
            keys.getPublic(),
            Duration.ofDays(365),
            false,
            KeyUsage.digitalSignature | KeyUsage.keyAgreement,
            new KeyPurposeId[] {KeyPurposeId.id_kp_serverAuth, KeyPurposeId.id_kp_clientAuth},
            sans);
    return new Identity(keys.getPrivate(), cert, caCertificate);
  }

  /** A client certificate {@code CN=<name>, OU=client} with the role URI. */
  Identity client(String name, String role) {
    KeyPair keys = ecKeys();
    X509Certificate cert =
        sign(
            caName(),
            caKeys.getPrivate(),
            name("CN=" + name + ",OU=client,O=PeerFlash"),
            keys.getPublic(),
            Duration.ofDays(365),
            false,
            KeyUsage.digitalSignature | KeyUsage.keyAgreement,
            new KeyPurposeId[] {KeyPurposeId.id_kp_clientAuth},
            List.of(
                new GeneralName(
                    GeneralName.uniformResourceIdentifier, "urn:peerflash:role:" + role)));
    return new Identity(keys.getPrivate(), cert, caCertificate);
  }

  /** A PKIX trust manager trusting exactly {@code cas}. */
  static X509ExtendedTrustManager trusting(X509Certificate... cas) {
    try {
      KeyStore ks = KeyStore.getInstance("PKCS12");
      ks.load(null, null);
      for (int i = 0; i < cas.length; i++) {
        ks.setCertificateEntry("ca-" + i, cas[i]);
      }
      TrustManagerFactory tmf = TrustManagerFactory.getInstance("PKIX");
      tmf.init(ks);
      for (TrustManager tm : tmf.getTrustManagers()) {
        if (tm instanceof X509ExtendedTrustManager x) {
          return x;
        }
      }
      throw new IllegalStateException("no X509ExtendedTrustManager");
    } catch (GeneralSecurityException | java.io.IOException e) {
      throw new IllegalStateException(e);
    }
  }

  X509ExtendedTrustManager trustManager() {
    return trusting(caCertificate);
  }

  /** The Raft TLS setting of a node of this CA. */
  RaftTls raftTls(String nodeId) {
    return new RaftTls(node(nodeId).keyManager(), trustManager());
  }

  /** An RFC 2253 name as the JDK reads it (most specific first, so O is the first RDN). */
  private static X500Name name(String rfc2253) {
    return X500Name.getInstance(new X500Principal(rfc2253).getEncoded());
  }

  private X500Name caName() {
    return X500Name.getInstance(caCertificate.getSubjectX500Principal().getEncoded());
  }

  private static KeyPair ecKeys() {
    try {
      KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
      g.initialize(new ECGenParameterSpec("secp256r1"), RANDOM);
      return g.generateKeyPair();
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException(e);
    }
  }

  private static X509Certificate sign(
      X500Name issuer,
      PrivateKey issuerKey,
      X500Name subject,
      PublicKey subjectKey,
      Duration validity,
      boolean ca,
      int keyUsage,
      KeyPurposeId[] extendedKeyUsage,
      List<GeneralName> sans) {
    try {
      Instant now = Instant.now();
      X509v3CertificateBuilder b =
          new JcaX509v3CertificateBuilder(
              issuer,
              BigInteger.valueOf(SERIALS.incrementAndGet()),
              Date.from(now.minus(Duration.ofMinutes(5))),
              Date.from(now.plus(validity)),
              subject,
              subjectKey);
      JcaX509ExtensionUtils utils = new JcaX509ExtensionUtils();
      b.addExtension(Extension.basicConstraints, true, new BasicConstraints(ca));
      b.addExtension(Extension.keyUsage, true, new KeyUsage(keyUsage));
      b.addExtension(
          Extension.subjectKeyIdentifier, false, utils.createSubjectKeyIdentifier(subjectKey));
      if (extendedKeyUsage != null) {
        b.addExtension(Extension.extendedKeyUsage, false, new ExtendedKeyUsage(extendedKeyUsage));
      }
      if (!sans.isEmpty()) {
        b.addExtension(
            Extension.subjectAlternativeName,
            false,
            new GeneralNames(sans.toArray(GeneralName[]::new)));
      }
      return new JcaX509CertificateConverter()
          .getCertificate(b.build(new JcaContentSignerBuilder("SHA256withECDSA").build(issuerKey)));
    } catch (Exception e) {
      throw new IllegalStateException("signing " + subject + " failed", e);
    }
  }
}
