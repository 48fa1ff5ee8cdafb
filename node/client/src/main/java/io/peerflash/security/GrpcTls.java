package io.peerflash.security;

import io.grpc.netty.shaded.io.grpc.netty.GrpcSslContexts;
import io.grpc.netty.shaded.io.netty.handler.ssl.ClientAuth;
import io.grpc.netty.shaded.io.netty.handler.ssl.OpenSsl;
import io.grpc.netty.shaded.io.netty.handler.ssl.OpenSslSessionContext;
import io.grpc.netty.shaded.io.netty.handler.ssl.SslContext;
import io.grpc.netty.shaded.io.netty.handler.ssl.SslContextBuilder;
import io.grpc.netty.shaded.io.netty.handler.ssl.SslProvider;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import javax.net.ssl.SSLException;
import javax.net.ssl.X509ExtendedTrustManager;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * TLS contexts for gRPC (grpc-netty-shaded) backed by a {@link TlsDirectory}: every handshake asks
 * the directory's key and trust managers, so files replaced on disk take effect on the next
 * connection without rebuilding the context or restarting anything.
 *
 * <p>The provider is the native one bundled with grpc-netty-shaded (netty-tcnative with BoringSSL,
 * {@link SslProvider#OPENSSL}), which calls the key manager on every handshake (it caches key
 * material only for a key manager factory of its own kind, never for ours). Where the native
 * library cannot load, the JDK's TLS is used instead and that is logged once. Only TLS 1.3 is
 * offered: every gRPC stack PeerFlash meets has it, and with the native provider there is then no
 * session resumption that would skip the certificate checks of a new connection.
 */
public final class GrpcTls {
  private static final Logger log = LoggerFactory.getLogger(GrpcTls.class);
  private static final AtomicBoolean fallbackLogged = new AtomicBoolean();
  static final String PROTOCOL = "TLSv1.3";

  /** Over TLS 1.3's longest ticket lifetime (7 days): the JDK then neither issues nor keeps one. */
  private static final long JDK_SESSION_TIMEOUT_WITHOUT_TICKETS_SECONDS =
      TimeUnit.DAYS.toSeconds(7) + 1;

  private GrpcTls() {}

  /**
   * A server context: presents the node's server pair and requires a client certificate from this
   * directory's CA (of a client or a node), see {@link TlsDirectory#clientVerifier()}.
   *
   * @throws IllegalArgumentException for a client's directory (it has no server pair)
   */
  public static SslContext serverContext(TlsDirectory directory) throws SSLException {
    return serverContext(directory, provider());
  }

  /**
   * A client context: presents the directory's client pair and accepts only a node certificate that
   * carries the host name or IP address dialled (e.g. {@code localhost} or {@code 127.0.0.1} as the
   * target of the channel), see {@link TlsDirectory#serverVerifier()}.
   */
  public static SslContext clientContext(TlsDirectory directory) throws SSLException {
    return clientContext(directory, directory.serverVerifier(), provider());
  }

  /**
   * A client context for a node calling the peer {@code nodeId}: accepts only that node's
   * certificate, whatever address it is dialled by.
   */
  public static SslContext peerClientContext(TlsDirectory directory, String nodeId)
      throws SSLException {
    return clientContext(directory, directory.serverVerifier(nodeId), provider());
  }

  /**
   * The replica link's server context: like {@link #serverContext} (a client certificate of this
   * directory's CA required; the link then accepts only nodes), without gRPC's ALPN.
   */
  public static SslContext linkServerContext(TlsDirectory directory) throws SSLException {
    return serverContextWithoutAlpn(directory, PROTOCOL);
  }

  /**
   * A server context for a protocol other than gRPC (the replica link, NBD's STARTTLS): the node's
   * server certificate, a client certificate of this directory's CA required, the native provider
   * when it loads and no session resumption, as for gRPC; no ALPN, and the given protocol versions
   * (NBD also offers TLS 1.2, for clients built on older TLS libraries).
   */
  public static SslContext serverContextWithoutAlpn(TlsDirectory directory, String... protocols)
      throws SSLException {
    SslProvider provider = provider();
    SslContextBuilder b =
        SslContextBuilder.forServer(directory.keyManager())
            .trustManager(directory.clientVerifier())
            .clientAuth(ClientAuth.REQUIRE)
            .protocols(protocols)
            .sslProvider(provider);
    return withoutResumption(withoutResumptionOnJdk(b, provider).build());
  }

  /**
   * The replica link's client context for a node sending copies to the peer {@code nodeId}: accepts
   * only that node's certificate, like {@link #peerClientContext}, without gRPC's ALPN.
   */
  public static SslContext linkClientContext(TlsDirectory directory, String nodeId)
      throws SSLException {
    SslProvider provider = provider();
    SslContextBuilder b =
        SslContextBuilder.forClient()
            .keyManager(directory.keyManager())
            .trustManager(directory.serverVerifier(nodeId))
            .protocols(PROTOCOL)
            .sslProvider(provider);
    return withoutResumption(withoutResumptionOnJdk(b, provider).build());
  }

  /** The TLS provider in use: {@link SslProvider#OPENSSL} when the native library loads. */
  public static SslProvider provider() {
    if (OpenSsl.isAvailable() && OpenSsl.supportsKeyManagerFactory()) {
      return SslProvider.OPENSSL;
    }
    if (fallbackLogged.compareAndSet(false, true)) {
      Throwable cause = OpenSsl.unavailabilityCause();
      log.warn(
          "native TLS (netty-tcnative) is not available, using the JDK's TLS (slower): {}",
          cause == null ? "it cannot use a key manager" : cause.toString());
    }
    return SslProvider.JDK;
  }

  static SslContext serverContext(TlsDirectory directory, SslProvider provider)
      throws SSLException {
    if (!directory.isNode()) {
      throw new IllegalArgumentException(
          directory.path() + " is a client's TLS directory: it has no server certificate");
    }
    SslContextBuilder b =
        SslContextBuilder.forServer(directory.keyManager())
            .trustManager(directory.clientVerifier())
            .clientAuth(ClientAuth.REQUIRE)
            .protocols(PROTOCOL);
    return withoutResumption(
        GrpcSslContexts.configure(withoutResumptionOnJdk(b, provider), provider).build());
  }

  static SslContext clientContext(
      TlsDirectory directory, X509ExtendedTrustManager serverVerifier, SslProvider provider)
      throws SSLException {
    SslContextBuilder b =
        SslContextBuilder.forClient()
            .keyManager(directory.keyManager())
            .trustManager(serverVerifier)
            .protocols(PROTOCOL);
    return withoutResumption(
        GrpcSslContexts.configure(withoutResumptionOnJdk(b, provider), provider).build());
  }

  /**
   * No session resumption: a resumed session skips the key and trust managers, so a new connection
   * would keep an old certificate after a rotation and skip the revocation check. The native
   * provider's session caches can be switched off (its stateless tickets are off already).
   */
  private static SslContext withoutResumption(SslContext context) {
    if (context.sessionContext() instanceof OpenSslSessionContext openSsl) {
      openSsl.setSessionCacheEnabled(false);
    }
    return context;
  }

  /**
   * The JDK's TLS has no switch for resumption per context; but its server issues no TLS 1.3
   * session ticket and its client keeps none when the session timeout exceeds the longest ticket
   * lifetime TLS 1.3 allows (7 days).
   */
  private static SslContextBuilder withoutResumptionOnJdk(
      SslContextBuilder builder, SslProvider provider) {
    return provider == SslProvider.JDK
        ? builder.sessionTimeout(JDK_SESSION_TIMEOUT_WITHOUT_TICKETS_SECONDS)
        : builder;
  }
}
