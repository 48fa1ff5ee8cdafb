package io.peerflash.replication.control;

import io.peerflash.replication.control.RaftConnectionRefusal.Direction;
import io.peerflash.replication.control.RaftConnectionRefusal.Stage;
import java.net.SocketAddress;
import java.security.cert.Certificate;
import java.security.cert.CertificateException;
import java.security.cert.X509Certificate;
import java.util.Map;
import java.util.Objects;
import java.util.function.Consumer;
import java.util.function.Supplier;
import javax.net.ssl.SSLPeerUnverifiedException;
import javax.net.ssl.SSLSession;
import org.apache.ratis.thirdparty.io.grpc.Grpc;
import org.apache.ratis.thirdparty.io.grpc.Metadata;
import org.apache.ratis.thirdparty.io.grpc.ServerCall;
import org.apache.ratis.thirdparty.io.grpc.ServerCallHandler;
import org.apache.ratis.thirdparty.io.grpc.ServerInterceptor;
import org.apache.ratis.thirdparty.io.grpc.Status;

/**
 * Checks every call to the Raft server (peer, admin and client services) against the current
 * configuration, as {@link RaftMemberTrustManager} checks every handshake: a connection made while
 * its node was a member, or a resumed TLS session, does not outlive that node's removal.
 */
final class RaftMemberInterceptor implements ServerInterceptor {
  /** Where the node id parsed from a session's peer certificate is kept, per session. */
  private static final String SESSION_NODE_ID = "io.peerflash.raft.node-id";

  private final Supplier<Map<String, String>> allowedPeers;
  private final Consumer<RaftConnectionRefusal> onRefusal;

  RaftMemberInterceptor(
      Supplier<Map<String, String>> allowedPeers, Consumer<RaftConnectionRefusal> onRefusal) {
    this.allowedPeers = Objects.requireNonNull(allowedPeers);
    this.onRefusal = Objects.requireNonNull(onRefusal);
  }

  @Override
  public <Q, R> ServerCall.Listener<Q> interceptCall(
      ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next) {
    SocketAddress remote = call.getAttributes().get(Grpc.TRANSPORT_ATTR_REMOTE_ADDR);
    String remoteAddress = remote == null ? "" : remote.toString();
    SSLSession session = call.getAttributes().get(Grpc.TRANSPORT_ATTR_SSL_SESSION);
    if (session == null) {
      return refuse(
          call, Status.UNAUTHENTICATED, "", "", remoteAddress, "Raft takes TLS connections only");
    }
    String subject = "";
    String id;
    try {
      Certificate[] peer = session.getPeerCertificates();
      if (peer.length == 0 || !(peer[0] instanceof X509Certificate leaf)) {
        throw new SSLPeerUnverifiedException("no X.509 peer certificate");
      }
      subject = leaf.getSubjectX500Principal().getName();
      id = session.getValue(SESSION_NODE_ID) instanceof String cached ? cached : null;
      if (id == null) {
        id = RaftPeerCertificates.nodeId(leaf);
        session.putValue(SESSION_NODE_ID, id);
      }
    } catch (SSLPeerUnverifiedException | CertificateException e) {
      return refuse(call, Status.UNAUTHENTICATED, subject, "", remoteAddress, e.getMessage());
    }
    Map<String, String> allowed = allowedPeers.get();
    if (!allowed.containsKey(id)) {
      return refuse(
          call,
          Status.PERMISSION_DENIED,
          subject,
          id,
          remoteAddress,
          "node " + id + " is not in the Raft configuration " + allowed.keySet());
    }
    return next.startCall(call, headers);
  }

  private <Q, R> ServerCall.Listener<Q> refuse(
      ServerCall<Q, R> call,
      Status status,
      String subject,
      String id,
      String remoteAddress,
      String reason) {
    try {
      onRefusal.accept(
          new RaftConnectionRefusal(
              Direction.INBOUND, Stage.CALL, subject, id, remoteAddress, reason));
    } catch (RuntimeException e) {
      // the call is refused whatever a listener does
    }
    call.close(status.withDescription(reason), new Metadata());
    return new ServerCall.Listener<>() {};
  }
}
