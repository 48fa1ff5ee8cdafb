package io.peerflash.node.net;

import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.peerflash.node.NodeConfig;
import io.peerflash.replication.control.ControlPlaneConfig;
import io.peerflash.security.GrpcTls;
import io.peerflash.security.Identity;
import io.peerflash.security.TlsDirectory;
import java.io.IOException;
import java.security.GeneralSecurityException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * How a node secures its ports: mutual TLS with its identity directory (the default), or plaintext
 * when run with {@code insecure=true}. One place decides it for the client port, the channels to
 * peers and Raft.
 */
public final class NodeTls {
  private static final Logger log = LoggerFactory.getLogger(NodeTls.class);

  private final TlsDirectory directory; // null: plaintext

  private NodeTls(TlsDirectory directory) {
    this.directory = directory;
  }

  /** Plaintext on every port (tests that run in-process transports, and --insecure). */
  public static NodeTls plaintext() {
    return new NodeTls(null);
  }

  /**
   * The node's TLS from its settings: its identity directory must hold a node certificate of this
   * node's id.
   *
   * @throws IOException when the directory cannot be read or is not this node's
   */
  public static NodeTls of(NodeConfig config) throws IOException {
    if (config.insecure()) {
      log.warn(
          "node {} runs WITHOUT TLS (insecure=true): anyone who can reach its ports can read and"
              + " change every volume and the cluster",
          config.nodeId());
      return plaintext();
    }
    TlsDirectory dir;
    try {
      dir = TlsDirectory.open(config.certsDir());
    } catch (GeneralSecurityException e) {
      throw new IOException("certs " + config.certsDir() + ": " + e.getMessage(), e);
    }
    Identity id = dir.identity();
    if (!dir.isNode() || id.kind() != Identity.Kind.NODE) {
      throw new IOException(
          "certs " + config.certsDir() + " holds " + id.describe() + ", not a node's identity");
    }
    if (!id.name().equals(config.nodeId())) {
      throw new IOException(
          "certs "
              + config.certsDir()
              + " belong to node '"
              + id.name()
              + "', not to this node '"
              + config.nodeId()
              + "'");
    }
    dir.expiryWarning().ifPresent(w -> log.warn("node {}: {}", config.nodeId(), w));
    return new NodeTls(dir);
  }

  public boolean enabled() {
    return directory != null;
  }

  /** The identity directory, or null in plaintext. */
  public TlsDirectory directory() {
    return directory;
  }

  /** The client port: mutual TLS (a client or node certificate of the cluster CA required). */
  public NettyServerBuilder secure(NettyServerBuilder builder) throws IOException {
    if (directory != null) {
      builder.sslContext(GrpcTls.serverContext(directory));
    }
    return builder;
  }

  /**
   * A channel to peer {@code peerId}: only that node's certificate is accepted at the other end.
   */
  public NettyChannelBuilder toPeer(NettyChannelBuilder builder, String peerId) {
    if (directory == null) {
      return builder.usePlaintext();
    }
    try {
      return builder.sslContext(GrpcTls.peerClientContext(directory, peerId));
    } catch (javax.net.ssl.SSLException e) {
      throw new IllegalStateException("TLS context for peer " + peerId + ": " + e.getMessage(), e);
    }
  }

  /**
   * The replica link's server side: node certificates of the cluster CA only; null in plaintext.
   */
  public io.grpc.netty.shaded.io.netty.handler.ssl.SslContext replicaLinkServer()
      throws IOException {
    return directory == null ? null : GrpcTls.linkServerContext(directory);
  }

  /** The replica link to peer {@code peerId}: only its certificate; null in plaintext. */
  public io.grpc.netty.shaded.io.netty.handler.ssl.SslContext replicaLinkTo(String peerId) {
    if (directory == null) {
      return null;
    }
    try {
      return GrpcTls.linkClientContext(directory, peerId);
    } catch (javax.net.ssl.SSLException e) {
      throw new IllegalStateException(
          "TLS context for the replica link to " + peerId + ": " + e.getMessage(), e);
    }
  }

  /** Raft over mutual TLS among the nodes of the configuration. */
  public ControlPlaneConfig raft(ControlPlaneConfig config) {
    return directory == null
        ? config
        : config.withTls(directory.keyManager(), directory.peerVerifier());
  }
}
