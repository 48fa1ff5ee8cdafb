package io.peerflash.replication.control;

import java.util.Objects;
import javax.net.ssl.X509ExtendedTrustManager;
import javax.net.ssl.X509KeyManager;

/**
 * Mutual TLS for a control plane's Raft server (peer, admin and client services) and for every Raft
 * client it creates.
 *
 * <p>Ratis builds its TLS contexts once, but asks these managers on every handshake, so managers
 * that reload their files (a rotated certificate, a new deny list) take effect on the next
 * connection without a restart; open connections keep the certificates they were made with.
 *
 * @param keyManager presents this node's certificate, as server and as client (a node certificate
 *     carries both serverAuth and clientAuth)
 * @param trustManager verifies a peer's chain (the cluster CA, key usage, revoked serials) and, as
 *     a client, that the server's certificate names the host dialled. The control plane wraps it so
 *     that only nodes of the current Raft configuration are admitted.
 */
public record RaftTls(X509KeyManager keyManager, X509ExtendedTrustManager trustManager) {
  public RaftTls {
    Objects.requireNonNull(keyManager, "keyManager");
    Objects.requireNonNull(trustManager, "trustManager");
  }
}
