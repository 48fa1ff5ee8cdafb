package io.peerflash.security;

import io.peerflash.util.Texts;
import io.peerflash.util.Time;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.cert.CertPathValidator;
import java.security.cert.CertPathValidatorException;
import java.security.cert.CertificateException;
import java.security.cert.CertificateExpiredException;
import java.security.cert.CertificateFactory;
import java.security.cert.CertificateNotYetValidException;
import java.security.cert.PKIXParameters;
import java.security.cert.X509Certificate;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Date;
import java.util.List;
import org.bouncycastle.util.IPAddress;

/**
 * Verifies a presented certificate chain against one snapshot of a {@link TlsDirectory}: PKIX to a
 * CA of the directory (no CRL or OCSP fetching), the PeerFlash conventions ({@link Identity#of}),
 * the extended key usage of the side, the deny list and the validity period; a server also by the
 * node or host dialled.
 */
final class ChainVerifier {
  private final Path directory;
  private final Time time;

  ChainVerifier(Path directory, Time time) {
    this.directory = directory;
    this.time = time;
  }

  /** A client's chain: the identity of the client (kind CLIENT, or NODE for a node calling). */
  Identity verifyClient(TlsMaterial m, X509Certificate[] chain) throws CertificateException {
    return verify(m, chain, "client", Identity.EKU_CLIENT_AUTH, "clientAuth");
  }

  /**
   * A server's chain: a node certificate, of {@code expectedNodeId} when not null, else one
   * carrying {@code dialledHost}.
   */
  Identity verifyServer(
      TlsMaterial m, X509Certificate[] chain, String dialledHost, String expectedNodeId)
      throws CertificateException {
    Identity id = verify(m, chain, "server", Identity.EKU_SERVER_AUTH, "serverAuth");
    if (id.kind() != Identity.Kind.NODE) {
      throw new CertificateException(
          "server certificate serial "
              + id.serialHex()
              + " belongs to "
              + id.describe()
              + ", not to a node");
    }
    if (expectedNodeId != null) {
      if (!expectedNodeId.equals(id.name())) {
        throw new CertificateException(
            "server certificate serial "
                + id.serialHex()
                + " belongs to "
                + id.describe()
                + ", not to the node dialled, '"
                + expectedNodeId
                + "'");
      }
      return id;
    }
    if (dialledHost == null) {
      throw new CertificateException(
          "server certificate of "
              + id.describe()
              + " cannot be matched to the host dialled: the TLS engine does not know it");
    }
    if (!hostMatches(chain[0], dialledHost)) {
      throw new CertificateException(
          "server certificate of "
              + id.describe()
              + " does not carry the host dialled, '"
              + dialledHost
              + "' (its DNS and IP SANs: "
              + hostSans(chain[0])
              + ")");
    }
    return id;
  }

  Identity verify(
      TlsMaterial m, X509Certificate[] chain, String side, String ekuOid, String ekuName)
      throws CertificateException {
    if (chain == null || chain.length == 0) {
      throw new CertificateException("no " + side + " certificate presented");
    }
    X509Certificate leaf = chain[0];
    String serial = leaf.getSerialNumber().toString(16);
    List<X509Certificate> path = pathToAnchor(m, chain);
    if (path.isEmpty()) {
      throw new CertificateException(
          side + " presented the CA certificate itself, serial " + serial + ", not its own");
    }
    Instant now = Instant.ofEpochMilli(time.nowMs());
    // Chain check at a moment the leaf was valid: expiry is reported below, naming the identity.
    Instant checkedAt = clamp(now, leaf.getNotBefore().toInstant(), leaf.getNotAfter().toInstant());
    try {
      PKIXParameters params = new PKIXParameters(m.trustAnchors);
      params.setRevocationEnabled(false);
      params.setDate(Date.from(checkedAt));
      CertPathValidator.getInstance("PKIX")
          .validate(CertificateFactory.getInstance("X.509").generateCertPath(path), params);
    } catch (CertPathValidatorException e) {
      throw new CertificateException(
          side
              + " certificate serial "
              + serial
              + " of "
              + Texts.quote(leaf.getSubjectX500Principal().getName())
              + " is not issued by the CA of "
              + directory
              + " (its issuer: "
              + Texts.quote(leaf.getIssuerX500Principal().getName())
              + "): "
              + e.getMessage(),
          e);
    } catch (GeneralSecurityException e) {
      throw new CertificateException("cannot verify " + side + " certificate chain: " + e, e);
    }
    Identity id = Identity.of(leaf);
    if (!Identity.extendedKeyUsage(leaf).contains(ekuOid)) {
      throw new CertificateException(
          side
              + " certificate serial "
              + serial
              + " of "
              + id.describe()
              + " lacks extended key usage "
              + ekuName);
    }
    for (X509Certificate c : path) {
      if (m.revokedSerials.contains(c.getSerialNumber())) {
        throw new CertificateException(
            "certificate serial "
                + c.getSerialNumber().toString(16)
                + (c == leaf ? " of " + id.describe() : " in the chain of " + id.describe())
                + " is revoked (listed in "
                + directory.resolve(TlsDirectory.REVOKED_SERIALS_FILE)
                + ")");
      }
    }
    for (X509Certificate c : path) {
      try {
        c.checkValidity(Date.from(now));
      } catch (CertificateExpiredException e) {
        throw new CertificateExpiredException(
            "certificate serial "
                + c.getSerialNumber().toString(16)
                + " of "
                + id.describe()
                + " expired at "
                + c.getNotAfter().toInstant());
      } catch (CertificateNotYetValidException e) {
        throw new CertificateNotYetValidException(
            "certificate serial "
                + c.getSerialNumber().toString(16)
                + " of "
                + id.describe()
                + " is not valid before "
                + c.getNotBefore().toInstant()
                + " (check the clocks)");
      }
    }
    return id;
  }

  /** The presented chain without the trust anchors a peer may have appended to it. */
  private static List<X509Certificate> pathToAnchor(TlsMaterial m, X509Certificate[] chain) {
    List<X509Certificate> path = new ArrayList<>(Arrays.asList(chain));
    while (!path.isEmpty() && m.caCertificates.contains(path.get(path.size() - 1))) {
      path.remove(path.size() - 1);
    }
    return path;
  }

  private static Instant clamp(Instant t, Instant from, Instant to) {
    return t.isBefore(from) ? from : t.isAfter(to) ? to : t;
  }

  /** Whether a DNS or IP SAN of {@code cert} is {@code host} (no wildcards: none are issued). */
  static boolean hostMatches(X509Certificate cert, String host) throws CertificateException {
    String h = host;
    if (h.startsWith("[") && h.endsWith("]")) {
      h = h.substring(1, h.length() - 1);
    }
    if (IPAddress.isValid(h)) {
      InetAddress dialled = literal(h);
      for (String ip : Identity.ipSans(cert)) {
        if (IPAddress.isValid(ip) && literal(ip).equals(dialled)) {
          return true;
        }
      }
      return false;
    }
    if (h.endsWith(".")) {
      h = h.substring(0, h.length() - 1);
    }
    for (String dns : Identity.dnsSans(cert)) {
      if (dns.equalsIgnoreCase(h)) {
        return true;
      }
    }
    return false;
  }

  private static InetAddress literal(String ip) throws CertificateException {
    try {
      return InetAddress.getByName(ip); // an IP literal: no name lookup
    } catch (UnknownHostException e) {
      throw new CertificateException("bad IP address '" + ip + "'", e);
    }
  }

  private static String hostSans(X509Certificate cert) {
    try {
      List<String> all = new ArrayList<>(Identity.dnsSans(cert));
      all.addAll(Identity.ipSans(cert));
      return all.isEmpty() ? "none" : String.join(", ", all);
    } catch (CertificateException e) {
      return "unreadable";
    }
  }
}
