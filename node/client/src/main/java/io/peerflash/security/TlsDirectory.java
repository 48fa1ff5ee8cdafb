package io.peerflash.security;

import io.peerflash.util.Texts;
import io.peerflash.util.Time;
import java.io.IOException;
import java.math.BigInteger;
import java.net.InetAddress;
import java.net.Socket;
import java.net.UnknownHostException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.security.GeneralSecurityException;
import java.security.Principal;
import java.security.PrivateKey;
import java.security.cert.CertPathValidator;
import java.security.cert.CertPathValidatorException;
import java.security.cert.CertificateException;
import java.security.cert.CertificateExpiredException;
import java.security.cert.CertificateFactory;
import java.security.cert.CertificateNotYetValidException;
import java.security.cert.PKIXParameters;
import java.security.cert.TrustAnchor;
import java.security.cert.X509Certificate;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Date;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Consumer;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLSession;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.X509ExtendedKeyManager;
import javax.net.ssl.X509ExtendedTrustManager;
import org.bouncycastle.util.IPAddress;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One identity directory (a node's or a client's, see {@link CertificateIssuer}) loaded for TLS,
 * and reloaded when its files change, so that rotating a key pair, the CA file or the deny list
 * needs no restart: new handshakes use the new files, open connections keep the key pairs they were
 * set up with ({@link Identities#interceptor} still stops the next call of a peer revoked or
 * expired since).
 *
 * <p>Change detection is cheap and lazy: at most once per {@link #RELOAD_CHECK_INTERVAL_MS}, on the
 * next handshake (or status query), the files' inode, modification time and size are compared with
 * those last loaded. A change reloads everything into one new snapshot; a snapshot that does not
 * hold together (a key that does not match its certificate, a certificate not signed by the CA, a
 * broken PEM or deny-list line) is refused, the previous one stays in use, {@link
 * #lastReloadError()} says why, and the next change is tried again.
 *
 * <p>The trust managers accept a peer when its chain verifies to a CA of {@code ca-cert.pem} (PKIX,
 * no CRL or OCSP fetching), it is currently valid, it follows the PeerFlash conventions ({@link
 * Identity#of}), carries the extended key usage of its side, is of the expected kind, and no
 * certificate of its chain is listed in {@code revoked-serials.txt}. A refusal is a {@link
 * CertificateException} naming what was refused, logged and passed to the {@linkplain #onRefusal
 * refusal listener}.
 */
public final class TlsDirectory {
  public static final String CA_CERT_FILE = "ca-cert.pem";
  public static final String CA_KEY_FILE = "ca-key.pem";
  public static final String SERVER_CERT_FILE = "server-cert.pem";
  public static final String SERVER_KEY_FILE = "server-key.pem";
  public static final String CLIENT_CERT_FILE = "client-cert.pem";
  public static final String CLIENT_KEY_FILE = "client-key.pem";

  /**
   * The deny list: one hex serial a line ({@code 3f:a2...}, {@code 0x...} also read), {@code #}
   * comments.
   */
  public static final String REVOKED_SERIALS_FILE = "revoked-serials.txt";

  /** Files are checked for changes at most this often. */
  public static final long RELOAD_CHECK_INTERVAL_MS = 1000;

  /** A certificate with fewer days left than this {@linkplain #expiresSoon() expires soon}. */
  public static final int EXPIRY_WARNING_DAYS = 30;

  private static final Logger log = LoggerFactory.getLogger(TlsDirectory.class);

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

  /** Snapshots kept addressable by key-manager alias (a handshake asks for chain and key apart). */
  private static final int RETAINED_GENERATIONS = 4;

  private static final String SERVER_ALIAS = "server@";
  private static final String CLIENT_ALIAS = "client@";

  private final Path directory;
  private final boolean node;
  private final Time time;
  private final ReentrantLock reloadLock = new ReentrantLock();
  private final Map<Long, Material> retained = new ConcurrentHashMap<>();
  private final X509ExtendedKeyManager keyManager = new ReloadingKeyManager();
  private final X509ExtendedTrustManager clientVerifier = new Verifier(Sides.CLIENTS, null);
  private volatile Material current;
  private volatile long lastCheckNanos;
  private volatile Map<String, FileStamp> failedStamps;
  private volatile String lastReloadError;
  private volatile Consumer<String> refusalListener = message -> {};

  private TlsDirectory(Path directory, boolean node, Time time, Material material) {
    this.directory = directory;
    this.node = node;
    this.time = time;
    this.current = material;
    this.retained.put(material.generation, material);
    this.lastCheckNanos = time.nanoTime();
  }

  /**
   * Loads an identity directory: a node's when it holds {@code server-cert.pem}, a client's
   * otherwise.
   *
   * @throws GeneralSecurityException naming the file and what is wrong with it
   */
  public static TlsDirectory open(Path directory) throws IOException, GeneralSecurityException {
    return open(directory, Time.SYSTEM);
  }

  /** {@link #open(Path)} with the clock that paces reload checks and judges validity. */
  public static TlsDirectory open(Path directory, Time time)
      throws IOException, GeneralSecurityException {
    Path dir = directory.toAbsolutePath().normalize();
    if (!Files.isDirectory(dir)) {
      throw new NoSuchFileException(dir.toString(), null, "no such TLS identity directory");
    }
    boolean node = Files.exists(dir.resolve(SERVER_CERT_FILE));
    Map<String, FileStamp> stamps = stamps(dir, node);
    Material m = Material.load(dir, node, stamps, 1);
    warnAboutOwnCertificate(m, time);
    log.info("TLS identity {} loaded from {}", m.describeOwn(), dir);
    return new TlsDirectory(dir, node, time, m);
  }

  public Path path() {
    return directory;
  }

  /** Whether this is a node's directory (it can serve); a client's can only call. */
  public boolean isNode() {
    return node;
  }

  /** The identity of this directory's own certificate (the server one of a node). */
  public Identity identity() {
    refreshIfDue();
    return current.ownIdentity;
  }

  /** This directory's own certificate (the server one of a node). */
  public X509Certificate certificate() {
    refreshIfDue();
    return current.ownChain[0];
  }

  /** The CA certificates trusted (all of {@code ca-cert.pem}). */
  public List<X509Certificate> caCertificates() {
    refreshIfDue();
    return current.caCertificates;
  }

  /** The serials of the deny list in force. */
  public Set<BigInteger> revokedSerials() {
    refreshIfDue();
    return current.revokedSerials;
  }

  /** Counts the snapshots loaded (1 after {@link #open}); a reload adds one. */
  public long generation() {
    return current.generation;
  }

  /**
   * Why the latest change of the files was not loaded, or empty when the files in force are the
   * newest.
   */
  public Optional<String> lastReloadError() {
    refreshIfDue();
    return Optional.ofNullable(lastReloadError);
  }

  /** Whole days until this directory's own certificate expires (negative once it has). */
  public long daysUntilExpiry() {
    refreshIfDue();
    long ms = current.ownIdentity.notAfter().toEpochMilli() - time.nowMs();
    return Math.floorDiv(ms, TimeUnit.DAYS.toMillis(1));
  }

  /** Whether the own certificate expires within {@link #EXPIRY_WARNING_DAYS} days (or has). */
  public boolean expiresSoon() {
    return daysUntilExpiry() < EXPIRY_WARNING_DAYS;
  }

  /** A status warning when the own certificate {@linkplain #expiresSoon() expires soon}. */
  public Optional<String> expiryWarning() {
    long days = daysUntilExpiry();
    if (days >= EXPIRY_WARNING_DAYS) {
      return Optional.empty();
    }
    Identity own = current.ownIdentity;
    String when = days < 0 ? "expired at " : "expires in " + days + " days at ";
    return Optional.of(
        "TLS certificate of "
            + own.describe()
            + " in "
            + directory
            + " "
            + when
            + own.notAfter()
            + "; issue a new one and replace the files (no restart needed)");
  }

  /**
   * Called with the message of every peer certificate refused by this directory's trust managers,
   * besides the log line (e.g. for an audit log).
   */
  public void onRefusal(Consumer<String> listener) {
    this.refusalListener = Objects.requireNonNull(listener, "listener");
  }

  /**
   * The key manager: a node presents its server pair to clients and its client pair to the peers it
   * calls; a client presents its client pair. Each handshake takes the pair in force.
   */
  public X509ExtendedKeyManager keyManager() {
    return keyManager;
  }

  /**
   * The trust manager of a server: accepts client certificates of clients and nodes (a node calls
   * its peers with its own certificate) issued by this directory's CA.
   */
  public X509ExtendedTrustManager clientVerifier() {
    return clientVerifier;
  }

  /**
   * The trust manager of a client: accepts only node certificates, and only one that carries the
   * host name or IP address the client dialled (as a DNS or IP SAN).
   */
  public X509ExtendedTrustManager serverVerifier() {
    return new Verifier(Sides.SERVERS, null);
  }

  /**
   * The trust manager of a node calling a peer it knows by id: accepts only the node certificate of
   * {@code expectedNodeId} (its node URI), whatever address it was dialled by.
   */
  public X509ExtendedTrustManager serverVerifier(String expectedNodeId) {
    return new Verifier(Sides.SERVERS, Objects.requireNonNull(expectedNodeId, "expectedNodeId"));
  }

  /**
   * The trust manager of a node on connections that run both ways between nodes (Raft): peers
   * connecting in are checked as clients, peers dialled as servers (naming the host dialled).
   */
  public X509ExtendedTrustManager peerVerifier() {
    return new Verifier(Sides.BOTH, null);
  }

  /**
   * Verifies the certificate chain a client presented (leaf first) against the files in force.
   *
   * @return the identity of the client (kind CLIENT, or NODE for a node calling a peer)
   * @throws CertificateException naming what is refused and why
   */
  public Identity verifyClient(X509Certificate[] chain) throws CertificateException {
    refreshIfDue();
    return verify(current, chain, "client", Identity.EKU_CLIENT_AUTH, "clientAuth");
  }

  /**
   * Verifies the certificate chain a server presented: a node certificate, of {@code
   * expectedNodeId} when not null, else one carrying {@code dialledHost}.
   */
  public Identity verifyServer(X509Certificate[] chain, String dialledHost, String expectedNodeId)
      throws CertificateException {
    refreshIfDue();
    Identity id = verify(current, chain, "server", Identity.EKU_SERVER_AUTH, "serverAuth");
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

  /**
   * Checks the files now (not waiting for the next periodic check) and loads them when they
   * changed.
   *
   * @return whether a new snapshot was loaded
   * @throws GeneralSecurityException when the changed files cannot be read or do not hold together
   *     (the previous snapshot stays in force)
   */
  public boolean reloadIfChanged() throws IOException, GeneralSecurityException {
    reloadLock.lock();
    try {
      lastCheckNanos = time.nanoTime();
      return checkAndReload(true);
    } finally {
      reloadLock.unlock();
    }
  }

  /** The periodic check: at most once per interval, never blocking a handshake on another's. */
  void refreshIfDue() {
    long now = time.nanoTime();
    if (now - lastCheckNanos < TimeUnit.MILLISECONDS.toNanos(RELOAD_CHECK_INTERVAL_MS)) {
      return;
    }
    if (!reloadLock.tryLock()) {
      return;
    }
    try {
      if (now - lastCheckNanos < TimeUnit.MILLISECONDS.toNanos(RELOAD_CHECK_INTERVAL_MS)) {
        return;
      }
      lastCheckNanos = now;
      checkAndReload(false);
    } catch (IOException | GeneralSecurityException | RuntimeException e) {
      // Already recorded in lastReloadError and logged once per change of the files.
    } finally {
      reloadLock.unlock();
    }
  }

  private boolean checkAndReload(boolean explicit) throws IOException, GeneralSecurityException {
    Map<String, FileStamp> stamps = stamps(directory, node);
    Material m = current;
    if (stamps.equals(m.stamps)) {
      return false;
    }
    if (stamps.equals(failedStamps)) {
      if (explicit) {
        throw new GeneralSecurityException(lastReloadError);
      }
      return false;
    }
    Material next;
    try {
      next = Material.load(directory, node, stamps, m.generation + 1);
    } catch (IOException | GeneralSecurityException | RuntimeException e) {
      failedStamps = stamps;
      lastReloadError =
          "changed TLS files in "
              + directory
              + " not loaded (still using those loaded before): "
              + e.getMessage();
      log.warn(lastReloadError);
      throw new GeneralSecurityException(lastReloadError, e);
    }
    current = next;
    retained.put(next.generation, next);
    retained.remove(next.generation - RETAINED_GENERATIONS);
    failedStamps = null;
    lastReloadError = null;
    warnAboutOwnCertificate(next, time);
    log.info(
        "TLS files of {} reloaded: {}, {} CA certificate(s), {} revoked serial(s)",
        directory,
        next.describeOwn(),
        next.caCertificates.size(),
        next.revokedSerials.size());
    return true;
  }

  private static void warnAboutOwnCertificate(Material m, Time time) {
    Identity own = m.ownIdentity;
    if (m.revokedSerials.contains(own.serial())) {
      log.warn(
          "TLS certificate of {} (serial {}) is on its own deny list",
          own.describe(),
          own.serialHex());
    }
    if (own.notAfter().toEpochMilli() <= time.nowMs()) {
      log.warn("TLS certificate of {} expired at {}", own.describe(), own.notAfter());
    }
  }

  // ---- verification ----

  private Identity verify(
      Material m, X509Certificate[] chain, String side, String ekuOid, String ekuName)
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
                + directory.resolve(REVOKED_SERIALS_FILE)
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
  private static List<X509Certificate> pathToAnchor(Material m, X509Certificate[] chain) {
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

  long nowMs() {
    return time.nowMs();
  }

  /** Logs a refusal of {@code what} (e.g. "TLS client") and tells the refusal listener. */
  void refused(String what, CertificateException e) {
    log.warn("refused {}: {}", what, e.getMessage());
    try {
      refusalListener.accept(e.getMessage());
    } catch (RuntimeException listenerFailure) {
      log.warn("TLS refusal listener failed", listenerFailure);
    }
  }

  // ---- files ----

  /**
   * What identifies a version of a file cheaply: inode (an atomic replace changes it), mtime, size.
   */
  private record FileStamp(Object fileKey, long modifiedNanos, long size) {
    static final FileStamp ABSENT = new FileStamp(null, -1, -1);
  }

  private static Map<String, FileStamp> stamps(Path dir, boolean node) throws IOException {
    Map<String, FileStamp> out = new LinkedHashMap<>();
    for (String name : node ? NODE_FILES : CLIENT_FILES) {
      FileStamp s;
      try {
        BasicFileAttributes a = Files.readAttributes(dir.resolve(name), BasicFileAttributes.class);
        s = new FileStamp(a.fileKey(), a.lastModifiedTime().to(TimeUnit.NANOSECONDS), a.size());
      } catch (NoSuchFileException e) {
        s = FileStamp.ABSENT;
      }
      out.put(name, s);
    }
    return out;
  }

  /** One consistent load of the directory's files. */
  private static final class Material {
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

    private Material(
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

    static Material load(Path dir, boolean node, Map<String, FileStamp> stamps, long generation)
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
      return new Material(
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

  // ---- key manager ----

  private final class ReloadingKeyManager extends X509ExtendedKeyManager {
    @Override
    public String chooseEngineServerAlias(String keyType, Principal[] issuers, SSLEngine engine) {
      return serverAlias(keyType);
    }

    @Override
    public String chooseServerAlias(String keyType, Principal[] issuers, Socket socket) {
      return serverAlias(keyType);
    }

    @Override
    public String chooseEngineClientAlias(
        String[] keyTypes, Principal[] issuers, SSLEngine engine) {
      return clientAlias(keyTypes);
    }

    @Override
    public String chooseClientAlias(String[] keyTypes, Principal[] issuers, Socket socket) {
      return clientAlias(keyTypes);
    }

    @Override
    public String[] getServerAliases(String keyType, Principal[] issuers) {
      String a = serverAlias(keyType);
      return a == null ? null : new String[] {a};
    }

    @Override
    public String[] getClientAliases(String keyType, Principal[] issuers) {
      String a = clientAlias(new String[] {keyType});
      return a == null ? null : new String[] {a};
    }

    /*
     * The alias names the snapshot: a handshake asks for the chain and for the key in separate
     * calls, and a reload in between must not pair a new chain with an old key. The server's list
     * of accepted issuers is ignored on purpose: the one CA file decides, and a server may
     * announce a CA list from before a rotation.
     */
    private String serverAlias(String keyType) {
      refreshIfDue();
      Material m = current;
      if (m.serverChain == null || !keyTypeMatches(keyType, m.serverKey)) {
        return null;
      }
      return SERVER_ALIAS + m.generation;
    }

    private String clientAlias(String[] keyTypes) {
      refreshIfDue();
      Material m = current;
      if (keyTypes == null) {
        return CLIENT_ALIAS + m.generation;
      }
      for (String t : keyTypes) {
        if (keyTypeMatches(t, m.clientKey)) {
          return CLIENT_ALIAS + m.generation;
        }
      }
      return null;
    }

    @Override
    public X509Certificate[] getCertificateChain(String alias) {
      Material m = material(alias);
      if (m == null) {
        return null;
      }
      X509Certificate[] chain = alias.startsWith(SERVER_ALIAS) ? m.serverChain : m.clientChain;
      return chain == null ? null : chain.clone();
    }

    @Override
    public PrivateKey getPrivateKey(String alias) {
      Material m = material(alias);
      if (m == null) {
        return null;
      }
      return alias.startsWith(SERVER_ALIAS) ? m.serverKey : m.clientKey;
    }

    private Material material(String alias) {
      if (alias == null) {
        return null;
      }
      int at = alias.indexOf('@');
      if (at < 0) {
        return null;
      }
      try {
        return retained.get(Long.parseLong(alias.substring(at + 1)));
      } catch (NumberFormatException e) {
        return null;
      }
    }
  }

  private static boolean keyTypeMatches(String keyType, PrivateKey key) {
    if (keyType == null) {
      return true;
    }
    String algorithm = key.getAlgorithm();
    // "EC_EC" / "EC_RSA": an EC key whose certificate is signed with EC / RSA (TLS 1.2 names).
    return keyType.equals(algorithm) || keyType.startsWith(algorithm + "_");
  }

  // ---- trust managers ----

  /** Which sides of a handshake a {@link Verifier} verifies. */
  private enum Sides {
    /** The server's trust manager: clients only. */
    CLIENTS,
    /** A client's trust manager: servers only. */
    SERVERS,
    /** Connections that run both ways between nodes: clients and servers. */
    BOTH;

    boolean clients() {
      return this != SERVERS;
    }

    boolean servers() {
      return this != CLIENTS;
    }
  }

  /**
   * The trust managers of this directory: each overload of the JSSE interface comes down to {@link
   * #verifyClient} or {@link #verifyServer} (with the host dialled, where the handshake knows it),
   * or to a refusal when this manager does not verify that side.
   */
  private final class Verifier extends X509ExtendedTrustManager {
    private final Sides sides;
    private final String expectedNodeId;

    /**
     * @param expectedNodeId the node a server must be, or null for one carrying the host dialled
     */
    Verifier(Sides sides, String expectedNodeId) {
      this.sides = sides;
      this.expectedNodeId = expectedNodeId;
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
        throws CertificateException {
      checkClient(chain);
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType, Socket socket)
        throws CertificateException {
      checkClient(chain);
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType)
        throws CertificateException {
      checkClient(chain);
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
        throws CertificateException {
      checkServer(chain, engine == null ? null : engine.getPeerHost());
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType, Socket socket)
        throws CertificateException {
      String host = null;
      if (socket instanceof SSLSocket s) {
        SSLSession handshake = s.getHandshakeSession();
        host = handshake == null ? null : handshake.getPeerHost();
      }
      checkServer(chain, host);
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType)
        throws CertificateException {
      checkServer(chain, null);
    }

    @Override
    public X509Certificate[] getAcceptedIssuers() {
      return current.caCertificates.toArray(new X509Certificate[0]);
    }

    private void checkClient(X509Certificate[] chain) throws CertificateException {
      if (!sides.clients()) {
        throw new CertificateException("this trust manager verifies servers, not clients");
      }
      try {
        verifyClient(chain);
      } catch (CertificateException e) {
        refused("TLS client", e);
        throw e;
      }
    }

    private void checkServer(X509Certificate[] chain, String dialledHost)
        throws CertificateException {
      if (!sides.servers()) {
        throw new CertificateException("this trust manager verifies clients, not servers");
      }
      try {
        verifyServer(chain, dialledHost, expectedNodeId);
      } catch (CertificateException e) {
        refused("TLS server" + (dialledHost == null ? "" : " " + dialledHost), e);
        throw e;
      }
    }
  }
}
