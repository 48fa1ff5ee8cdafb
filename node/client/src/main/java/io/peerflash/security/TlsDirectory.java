package io.peerflash.security;

import io.peerflash.util.Time;
import java.io.IOException;
import java.math.BigInteger;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.cert.CertificateException;
import java.security.cert.X509Certificate;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Consumer;
import javax.net.ssl.X509ExtendedKeyManager;
import javax.net.ssl.X509ExtendedTrustManager;
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

  /** Snapshots kept addressable by key-manager alias (a handshake asks for chain and key apart). */
  private static final int RETAINED_GENERATIONS = 4;

  private final Path directory;
  private final boolean node;
  private final Time time;
  private final ReentrantLock reloadLock = new ReentrantLock();
  private final Map<Long, TlsMaterial> retained = new ConcurrentHashMap<>();
  private final X509ExtendedKeyManager keyManager = new ReloadingKeyManager(this);
  private final X509ExtendedTrustManager clientVerifier =
      new DirectoryTrustManager(this, DirectoryTrustManager.Sides.CLIENTS, null);
  private final ChainVerifier verifier;
  private volatile TlsMaterial current;
  private volatile long lastCheckNanos;
  private volatile Map<String, TlsMaterial.FileStamp> failedStamps;
  private volatile String lastReloadError;
  private volatile Consumer<String> refusalListener = message -> {};

  private TlsDirectory(Path directory, boolean node, Time time, TlsMaterial material) {
    this.directory = directory;
    this.node = node;
    this.time = time;
    this.verifier = new ChainVerifier(directory, time);
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
    Map<String, TlsMaterial.FileStamp> stamps = TlsMaterial.stamps(dir, node);
    TlsMaterial m = TlsMaterial.load(dir, node, stamps, 1);
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
    return new DirectoryTrustManager(this, DirectoryTrustManager.Sides.SERVERS, null);
  }

  /**
   * The trust manager of a node calling a peer it knows by id: accepts only the node certificate of
   * {@code expectedNodeId} (its node URI), whatever address it was dialled by.
   */
  public X509ExtendedTrustManager serverVerifier(String expectedNodeId) {
    return new DirectoryTrustManager(
        this,
        DirectoryTrustManager.Sides.SERVERS,
        Objects.requireNonNull(expectedNodeId, "expectedNodeId"));
  }

  /**
   * The trust manager of a node on connections that run both ways between nodes (Raft): peers
   * connecting in are checked as clients, peers dialled as servers (naming the host dialled). Its
   * refusals are not reported here: Raft's trust manager, which wraps it, reports each one once
   * (with the membership check's), throttled for peers that keep reconnecting.
   */
  public X509ExtendedTrustManager peerVerifier() {
    return new DirectoryTrustManager(this, DirectoryTrustManager.Sides.BOTH, null, false);
  }

  /**
   * Verifies the certificate chain a client presented (leaf first) against the files in force.
   *
   * @return the identity of the client (kind CLIENT, or NODE for a node calling a peer)
   * @throws CertificateException naming what is refused and why
   */
  public Identity verifyClient(X509Certificate[] chain) throws CertificateException {
    refreshIfDue();
    return verifier.verifyClient(current, chain);
  }

  /**
   * Verifies the certificate chain a server presented: a node certificate, of {@code
   * expectedNodeId} when not null, else one carrying {@code dialledHost}.
   */
  public Identity verifyServer(X509Certificate[] chain, String dialledHost, String expectedNodeId)
      throws CertificateException {
    refreshIfDue();
    return verifier.verifyServer(current, chain, dialledHost, expectedNodeId);
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
    Map<String, TlsMaterial.FileStamp> stamps = TlsMaterial.stamps(directory, node);
    TlsMaterial m = current;
    if (stamps.equals(m.stamps)) {
      return false;
    }
    if (stamps.equals(failedStamps)) {
      if (explicit) {
        throw new GeneralSecurityException(lastReloadError);
      }
      return false;
    }
    TlsMaterial next;
    try {
      next = TlsMaterial.load(directory, node, stamps, m.generation + 1);
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

  private static void warnAboutOwnCertificate(TlsMaterial m, Time time) {
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

  long nowMs() {
    return time.nowMs();
  }

  /**
   * Logs a refusal of {@code what} (e.g. "TLS client") in the audit log and tells the refusal
   * listener.
   */
  void refused(String what, CertificateException e) {
    Audit.refusedConnection(what, e.getMessage());
    try {
      refusalListener.accept(e.getMessage());
    } catch (RuntimeException listenerFailure) {
      log.warn("TLS refusal listener failed", listenerFailure);
    }
  }

  /** The snapshot in force, after the periodic check for changed files. */
  TlsMaterial material() {
    refreshIfDue();
    return current;
  }

  /** The snapshot in force, without checking the files. */
  TlsMaterial current() {
    return current;
  }

  /** A snapshot still addressable by its generation (key-manager aliases name one), or null. */
  TlsMaterial retained(long generation) {
    return retained.get(generation);
  }
}
