package io.peerflash.security;

import java.net.Socket;
import java.security.cert.CertificateException;
import java.security.cert.X509Certificate;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLSession;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.X509ExtendedTrustManager;

/**
 * The trust managers of a {@link TlsDirectory}: each overload of the JSSE interface comes down to
 * {@link TlsDirectory#verifyClient} or {@link TlsDirectory#verifyServer} (with the host dialled,
 * where the handshake knows it), or to a refusal when this manager does not verify that side.
 */
final class DirectoryTrustManager extends X509ExtendedTrustManager {
  /** Which sides of a handshake a trust manager verifies. */
  enum Sides {
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

  private final TlsDirectory directory;
  private final Sides sides;
  private final String expectedNodeId;
  private final boolean reports;

  /**
   * @param expectedNodeId the node a server must be, or null for one carrying the host dialled
   */
  DirectoryTrustManager(TlsDirectory directory, Sides sides, String expectedNodeId) {
    this(directory, sides, expectedNodeId, true);
  }

  /**
   * @param reports whether a refusal is reported ({@link TlsDirectory#refused}: the audit log and
   *     the refusal count); false for a caller that reports each refusal itself
   */
  DirectoryTrustManager(
      TlsDirectory directory, Sides sides, String expectedNodeId, boolean reports) {
    this.directory = directory;
    this.sides = sides;
    this.expectedNodeId = expectedNodeId;
    this.reports = reports;
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
    return directory.current().caCertificates.toArray(new X509Certificate[0]);
  }

  private void checkClient(X509Certificate[] chain) throws CertificateException {
    if (!sides.clients()) {
      throw new CertificateException("this trust manager verifies servers, not clients");
    }
    try {
      directory.verifyClient(chain);
    } catch (CertificateException e) {
      if (reports) {
        directory.refused("TLS client", e);
      }
      throw e;
    }
  }

  private void checkServer(X509Certificate[] chain, String dialledHost)
      throws CertificateException {
    if (!sides.servers()) {
      throw new CertificateException("this trust manager verifies clients, not servers");
    }
    try {
      directory.verifyServer(chain, dialledHost, expectedNodeId);
    } catch (CertificateException e) {
      if (reports) {
        directory.refused("TLS server" + (dialledHost == null ? "" : " " + dialledHost), e);
      }
      throw e;
    }
  }
}
