package io.peerflash.client;

import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.netty.channel.ChannelOption;
import io.peerflash.security.GrpcTls;
import io.peerflash.security.TlsDirectory;
import java.io.IOException;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import javax.net.ssl.SSLException;

/**
 * How a client connects to nodes: mutual TLS with its identity directory ({@code ca-cert.pem},
 * {@code client-cert.pem}, {@code client-key.pem}: made by {@code peerflash certs client}, or by
 * {@code local-cluster} for its admin), or plaintext to a cluster run with {@code --insecure}. The
 * node's certificate must name the host or IP address the client dials.
 */
public final class ClientSecurity {
  private final TlsDirectory directory; // null: plaintext

  private ClientSecurity(TlsDirectory directory) {
    this.directory = directory;
  }

  /** Plaintext, for a cluster whose nodes run with insecure=true. */
  public static ClientSecurity insecure() {
    return new ClientSecurity(null);
  }

  /**
   * Mutual TLS as the identity in {@code dir}; its files are reloaded when they change.
   *
   * @throws IOException when the directory cannot be read or holds no client identity
   */
  public static ClientSecurity certs(Path dir) throws IOException {
    try {
      return new ClientSecurity(TlsDirectory.open(dir));
    } catch (GeneralSecurityException e) {
      throw new IOException("certs " + dir + ": " + e.getMessage(), e);
    }
  }

  public boolean tls() {
    return directory != null;
  }

  /** The identity directory, or null in plaintext. */
  public TlsDirectory directory() {
    return directory;
  }

  /** Secures a channel builder (TLS context or plaintext). */
  public NettyChannelBuilder apply(NettyChannelBuilder builder) {
    if (directory == null) {
      return builder.usePlaintext();
    }
    try {
      return builder.sslContext(GrpcTls.clientContext(directory));
    } catch (SSLException e) {
      throw new IllegalStateException("TLS context from " + directory.path() + ": " + e, e);
    }
  }

  /**
   * A channel to {@code address}, with a {@link PeerFlashClient#CONNECT_TIMEOUT} so that a node
   * that silently drops packets is given up on quickly rather than at the call's deadline.
   */
  public ManagedChannel open(String address) {
    return builder(address).build();
  }

  /**
   * A channel builder for {@code address} secured and with the connect timeout as {@link #open}
   * makes it, for a caller that sets more (its own event loop) before building.
   */
  public NettyChannelBuilder builder(String address) {
    return apply(NettyChannelBuilder.forTarget(address))
        .withOption(
            ChannelOption.CONNECT_TIMEOUT_MILLIS, (int) PeerFlashClient.CONNECT_TIMEOUT.toMillis());
  }
}
