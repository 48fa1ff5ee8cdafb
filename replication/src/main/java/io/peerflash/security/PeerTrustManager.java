package io.peerflash.security;

import java.net.Socket;
import java.security.cert.CertificateException;
import java.security.cert.X509Certificate;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.X509ExtendedTrustManager;

/**
 * One trust manager for connections between nodes that run both ways (Raft): a node connecting in
 * is checked as a client ({@link TlsDirectory#clientVerifier()}), a node connected to as a server
 * ({@link TlsDirectory#serverVerifier()}: a node certificate naming the host dialled).
 */
final class PeerTrustManager extends X509ExtendedTrustManager {
  private final X509ExtendedTrustManager clients;
  private final X509ExtendedTrustManager servers;

  PeerTrustManager(X509ExtendedTrustManager clients, X509ExtendedTrustManager servers) {
    this.clients = clients;
    this.servers = servers;
  }

  @Override
  public void checkClientTrusted(X509Certificate[] chain, String authType, Socket socket)
      throws CertificateException {
    clients.checkClientTrusted(chain, authType, socket);
  }

  @Override
  public void checkClientTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
      throws CertificateException {
    clients.checkClientTrusted(chain, authType, engine);
  }

  @Override
  public void checkClientTrusted(X509Certificate[] chain, String authType)
      throws CertificateException {
    clients.checkClientTrusted(chain, authType);
  }

  @Override
  public void checkServerTrusted(X509Certificate[] chain, String authType, Socket socket)
      throws CertificateException {
    servers.checkServerTrusted(chain, authType, socket);
  }

  @Override
  public void checkServerTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
      throws CertificateException {
    servers.checkServerTrusted(chain, authType, engine);
  }

  @Override
  public void checkServerTrusted(X509Certificate[] chain, String authType)
      throws CertificateException {
    servers.checkServerTrusted(chain, authType);
  }

  @Override
  public X509Certificate[] getAcceptedIssuers() {
    return clients.getAcceptedIssuers();
  }
}
