package io.peerflash.security;

import static io.peerflash.security.TlsDirectory.CA_CERT_FILE;
import static io.peerflash.security.TlsDirectory.CLIENT_CERT_FILE;
import static io.peerflash.security.TlsDirectory.CLIENT_KEY_FILE;
import static io.peerflash.security.TlsDirectory.REVOKED_SERIALS_FILE;
import static io.peerflash.security.TlsDirectory.SERVER_CERT_FILE;
import static io.peerflash.security.TlsDirectory.SERVER_KEY_FILE;

import io.peerflash.util.Texts;
import java.io.IOException;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.security.GeneralSecurityException;
import java.security.PrivateKey;
import java.security.cert.CertificateException;
import java.security.cert.TrustAnchor;
import java.security.cert.X509Certificate;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;

/**
 * One consistent load of a {@link TlsDirectory}'s files (a snapshot: CA certificates, key pairs,
 * deny list), with the file stamps it was loaded from so that a change of the files can be told
 * cheaply.
 */
final class TlsMaterial {
  private static final List<String> NODE_FILES =
      List.of(
          CA_CERT_FILE,
          SERVER_CERT_FILE,
          SERVER_KEY_FILE,
          CLIENT_CERT_FILE,
          CLIENT_KEY_FILE,
          REVOKED_SERIALS_FILE);
  private static final List<String> CLIENT_FILES =
      List.of(CA_CERT_FILE, CLIENT_CERT_FILE, CLIENT_KEY_FILE, REVOKED_SERIALS_FILE);

  final long generation;
  final Map<String, FileStamp> stamps;
  final List<X509Certificate> caCertificates;
  final Set<TrustAnchor> trustAnchors;
  final X509Certificate[] serverChain; // null in a client's directory
  final PrivateKey serverKey;
  final X509Certificate[] clientChain;
  final PrivateKey clientKey;
  final X509Certificate[] ownChain;
  final Identity ownIdentity;
  final Set<BigInteger> revokedSerials;

  private TlsMaterial(
      long generation,
      Map<String, FileStamp> stamps,
      List<X509Certificate> caCertificates,
      X509Certificate[] serverChain,
      PrivateKey serverKey,
      X509Certificate[] clientChain,
      PrivateKey clientKey,
      Identity ownIdentity,
      Set<BigInteger> revokedSerials) {
    this.generation = generation;
    this.stamps = stamps;
    this.caCertificates = List.copyOf(caCertificates);
    Set<TrustAnchor> anchors = new HashSet<>();
    for (X509Certificate ca : caCertificates) {
      anchors.add(new TrustAnchor(ca, null));
    }
    this.trustAnchors = Set.copyOf(anchors);
    this.serverChain = serverChain;
    this.serverKey = serverKey;
    this.clientChain = clientChain;
    this.clientKey = clientKey;
    this.ownChain = serverChain != null ? serverChain : clientChain;
    this.ownIdentity = ownIdentity;
    this.revokedSerials = Set.copyOf(revokedSerials);
  }

  static TlsMaterial load(Path dir, boolean node, Map<String, FileStamp> stamps, long generation)
      throws IOException, GeneralSecurityException {
    Path caFile = dir.resolve(CA_CERT_FILE);
    List<X509Certificate> cas = PemFiles.readCertificates(caFile);
    for (X509Certificate ca : cas) {
      if (ca.getBasicConstraints() < 0) {
        throw new CertificateException(
            caFile
                + " holds '"
                + ca.getSubjectX500Principal().getName()
                + "', which is not a CA certificate");
      }
    }
    X509Certificate[] serverChain = null;
    PrivateKey serverKey = null;
    Identity own = null;
    if (node) {
      serverChain = chain(dir, SERVER_CERT_FILE, cas);
      serverKey = key(dir, SERVER_KEY_FILE, SERVER_CERT_FILE, serverChain[0]);
      own = Identity.of(serverChain[0]);
      if (own.kind() != Identity.Kind.NODE) {
        throw new CertificateException(
            dir.resolve(SERVER_CERT_FILE)
                + " is the certificate of "
                + own.describe()
                + ", not of a node");
      }
    }
    X509Certificate[] clientChain = chain(dir, CLIENT_CERT_FILE, cas);
    PrivateKey clientKey = key(dir, CLIENT_KEY_FILE, CLIENT_CERT_FILE, clientChain[0]);
    Identity clientIdentity = Identity.of(clientChain[0]);
    if (own == null) {
      own = clientIdentity;
    }
    Set<BigInteger> revoked = readRevokedSerials(dir.resolve(REVOKED_SERIALS_FILE));
    return new TlsMaterial(
        generation, stamps, cas, serverChain, serverKey, clientChain, clientKey, own, revoked);
  }

  private static X509Certificate[] chain(Path dir, String file, List<X509Certificate> cas)
      throws IOException, GeneralSecurityException {
    Path p = dir.resolve(file);
    List<X509Certificate> chain = PemFiles.readCertificates(p);
    X509Certificate top = chain.get(chain.size() - 1);
    for (X509Certificate ca : cas) {
      try {
        top.verify(ca.getPublicKey());
        return chain.toArray(new X509Certificate[0]);
      } catch (GeneralSecurityException e) {
        // try the next CA
      }
    }
    throw new CertificateException(p + " is not signed by a CA of " + dir.resolve(CA_CERT_FILE));
  }

  private static PrivateKey key(Path dir, String keyFile, String certFile, X509Certificate cert)
      throws IOException, GeneralSecurityException {
    PrivateKey key = PemFiles.readPrivateKey(dir.resolve(keyFile));
    CertificateIssuer.checkKeyMatches(
        key,
        cert.getPublicKey(),
        dir.resolve(keyFile) + " does not match " + dir.resolve(certFile));
    return key;
  }

  String describeOwn() {
    return ownIdentity.describe()
        + " serial "
        + ownIdentity.serialHex()
        + " until "
        + ownIdentity.notAfter();
  }

  /**
   * What identifies a version of a file cheaply: inode (an atomic replace changes it), mtime, size,
   * and where the file system keeps one the inode's change time, which a change of owner or mode
   * also moves: files that could not be read (a key written by root before its {@code chown} to the
   * node's user) are tried again once they are given to the node, not only when rewritten.
   */
  record FileStamp(Object fileKey, long modifiedNanos, long size, long changedNanos) {
    static final FileStamp ABSENT = new FileStamp(null, -1, -1, -1);
  }

  static Map<String, FileStamp> stamps(Path dir, boolean node) throws IOException {
    Map<String, FileStamp> out = new LinkedHashMap<>();
    for (String name : node ? NODE_FILES : CLIENT_FILES) {
      FileStamp s;
      try {
        s = stamp(dir.resolve(name));
      } catch (NoSuchFileException e) {
        s = FileStamp.ABSENT;
      }
      out.put(name, s);
    }
    return out;
  }

  private static FileStamp stamp(Path file) throws IOException {
    BasicFileAttributes a = Files.readAttributes(file, BasicFileAttributes.class);
    long changed = -1;
    try {
      if (Files.getAttribute(file, "unix:ctime") instanceof java.nio.file.attribute.FileTime t) {
        changed = t.to(TimeUnit.NANOSECONDS);
      }
    } catch (UnsupportedOperationException | IllegalArgumentException e) {
      // No "unix" view here: the other three decide.
    }
    return new FileStamp(
        a.fileKey(), a.lastModifiedTime().to(TimeUnit.NANOSECONDS), a.size(), changed);
  }

  /** Reads a deny list; a line that is not a hex serial makes the whole file refused. */
  static Set<BigInteger> readRevokedSerials(Path file)
      throws IOException, GeneralSecurityException {
    List<String> lines;
    try {
      lines = Files.readAllLines(file, StandardCharsets.UTF_8);
    } catch (NoSuchFileException e) {
      return Set.of();
    }
    Set<BigInteger> out = new HashSet<>();
    int lineNo = 0;
    for (String raw : lines) {
      lineNo++;
      String line = raw;
      int hash = line.indexOf('#');
      if (hash >= 0) {
        line = line.substring(0, hash);
      }
      line = line.trim().toLowerCase(Locale.ROOT);
      if (line.isEmpty()) {
        continue;
      }
      if (line.startsWith("serial=")) {
        line = line.substring("serial=".length()); // as `openssl x509 -serial` prints it
      }
      if (line.startsWith("0x")) {
        line = line.substring(2);
      }
      line = line.replace(":", "");
      if (line.isEmpty()
          || line.length() > 40
          || !line.chars().allMatch(c -> Character.digit(c, 16) >= 0)) {
        throw new GeneralSecurityException(
            file + " line " + lineNo + " is not a hex serial: " + Texts.quote(raw));
      }
      out.add(new BigInteger(line, 16));
    }
    return out;
  }
}
