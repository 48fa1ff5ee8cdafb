package io.peerflash.replication.control;

import io.peerflash.replication.control.RaftConnectionRefusal.Direction;
import io.peerflash.replication.control.RaftConnectionRefusal.Stage;
import java.net.Socket;
import java.security.cert.CertificateException;
import java.security.cert.X509Certificate;
import java.util.Map;
import java.util.Objects;
import java.util.function.Consumer;
import java.util.function.Supplier;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.X509ExtendedTrustManager;

/**
 * Admits, on every TLS handshake of the Raft transport and in both directions, only peers whose
 * certificate is a node certificate of a node this control plane currently allows (the nodes of its
 * Raft configuration, plus those being added: see {@link ControlPlane#allowedRaftPeers}).
 *
 * <p>The chain itself (CA, key usage, revoked serials, and as a client the host name dialled) is
 * the delegate's to verify; this class adds the membership check. As a client it also checks that
 * the server answering at the Raft address of a known node is that node: nodes sharing a host
 * cannot stand in for one another.
 *
 * <p>Every refusal, the delegate's included, is reported to {@code onRefusal} before the handshake
 * fails; it runs on a Netty event loop and must be quick.
 */
final class RaftMemberTrustManager extends X509ExtendedTrustManager {
  private final X509ExtendedTrustManager delegate;
  private final Supplier<Map<String, String>> allowedPeers;
  private final Consumer<RaftConnectionRefusal> onRefusal;

  /**
   * @param allowedPeers node id to Raft host:port of the nodes to admit, asked on every handshake
   */
  RaftMemberTrustManager(
      X509ExtendedTrustManager delegate,
      Supplier<Map<String, String>> allowedPeers,
      Consumer<RaftConnectionRefusal> onRefusal) {
    this.delegate = Objects.requireNonNull(delegate);
    this.allowedPeers = Objects.requireNonNull(allowedPeers);
    this.onRefusal = Objects.requireNonNull(onRefusal);
  }

  // ---------------------------------------------------------------- inbound (we are the server)

  @Override
  public void checkClientTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
      throws CertificateException {
    inbound(chain, () -> delegate.checkClientTrusted(chain, authType, engine));
  }

  @Override
  public void checkClientTrusted(X509Certificate[] chain, String authType, Socket socket)
      throws CertificateException {
    inbound(chain, () -> delegate.checkClientTrusted(chain, authType, socket));
  }

  @Override
  public void checkClientTrusted(X509Certificate[] chain, String authType)
      throws CertificateException {
    inbound(chain, () -> delegate.checkClientTrusted(chain, authType));
  }

  // ---------------------------------------------------------------- outbound (we are the client)

  @Override
  public void checkServerTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
      throws CertificateException {
    String host = engine == null ? null : engine.getPeerHost();
    int port = engine == null ? -1 : engine.getPeerPort();
    outbound(chain, host, port, () -> delegate.checkServerTrusted(chain, authType, engine));
  }

  @Override
  public void checkServerTrusted(X509Certificate[] chain, String authType, Socket socket)
      throws CertificateException {
    outbound(chain, null, -1, () -> delegate.checkServerTrusted(chain, authType, socket));
  }

  @Override
  public void checkServerTrusted(X509Certificate[] chain, String authType)
      throws CertificateException {
    outbound(chain, null, -1, () -> delegate.checkServerTrusted(chain, authType));
  }

  @Override
  public X509Certificate[] getAcceptedIssuers() {
    return delegate.getAcceptedIssuers();
  }

  // ---------------------------------------------------------------- the membership check

  /** One of the delegate's chain checks. */
  @FunctionalInterface
  private interface ChainCheck {
    void run() throws CertificateException;
  }

  private void inbound(X509Certificate[] chain, ChainCheck chainCheck) throws CertificateException {
    check(Direction.INBOUND, chain, null, -1, chainCheck);
  }

  private void outbound(X509Certificate[] chain, String host, int port, ChainCheck chainCheck)
      throws CertificateException {
    check(Direction.OUTBOUND, chain, host, port, chainCheck);
  }

  /**
   * Runs the delegate's chain check, then the membership check; a refusal by either is reported.
   *
   * @param host the host dialled (outbound over an {@link SSLEngine}), or null when unknown
   * @param port the port dialled, or -1 when unknown
   */
  private void check(
      Direction direction, X509Certificate[] chain, String host, int port, ChainCheck chainCheck)
      throws CertificateException {
    try {
      chainCheck.run();
    } catch (CertificateException e) {
      throw refused(direction, chain, address(host, port), e);
    }
    admit(direction, chain, host, port);
  }

  private void admit(Direction direction, X509Certificate[] chain, String host, int port)
      throws CertificateException {
    String remote = address(host, port);
    String id;
    try {
      id = RaftPeerCertificates.nodeId(chain[0]);
    } catch (CertificateException e) {
      throw refused(direction, chain, remote, e);
    }
    Map<String, String> allowed = allowedPeers.get();
    if (!allowed.containsKey(id)) {
      throw refused(
          direction,
          chain,
          id,
          remote,
          "node " + id + " is not in the Raft configuration " + allowed.keySet());
    }
    if (host != null) {
      String expected = nodeAt(allowed, host, port);
      if (expected != null && !expected.equals(id)) {
        throw refused(
            direction,
            chain,
            id,
            remote,
            remote + " is the Raft address of node " + expected + ", but node " + id + " answered");
      }
    }
  }

  /** The allowed node whose Raft address is host:port, or null. */
  private static String nodeAt(Map<String, String> allowed, String host, int port) {
    for (Map.Entry<String, String> e : allowed.entrySet()) {
      try {
        RaftWiring.HostPort hp = RaftWiring.HostPort.parse(e.getValue());
        if (hp.port() == port && hp.host().equalsIgnoreCase(host)) {
          return e.getKey();
        }
      } catch (IllegalArgumentException unparsable) {
        // an address that is not host:port matches no dialled address
      }
    }
    return null;
  }

  private CertificateException refused(
      Direction direction, X509Certificate[] chain, String remote, CertificateException cause) {
    String reason = cause.getMessage() == null ? cause.toString() : cause.getMessage();
    report(direction, chain, "", remote, reason);
    return cause;
  }

  private CertificateException refused(
      Direction direction, X509Certificate[] chain, String id, String remote, String reason) {
    report(direction, chain, id, remote, reason);
    return new CertificateException(reason);
  }

  private void report(
      Direction direction, X509Certificate[] chain, String id, String remote, String reason) {
    String subject =
        chain == null || chain.length == 0 ? "" : chain[0].getSubjectX500Principal().getName();
    try {
      onRefusal.accept(
          new RaftConnectionRefusal(direction, Stage.HANDSHAKE, subject, id, remote, reason));
    } catch (RuntimeException e) {
      // a failing listener must not turn a refusal into an admission or hide the reason
    }
  }

  private static String address(String host, int port) {
    if (host == null) {
      return "";
    }
    return (host.indexOf(':') >= 0 ? "[" + host + "]" : host) + (port > 0 ? ":" + port : "");
  }
}
