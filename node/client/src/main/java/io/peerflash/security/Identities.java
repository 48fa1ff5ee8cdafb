package io.peerflash.security;

import io.grpc.Context;
import io.grpc.Contexts;
import io.grpc.Grpc;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;
import io.peerflash.util.Texts;
import java.security.cert.Certificate;
import java.security.cert.CertificateException;
import java.security.cert.X509Certificate;
import java.util.Objects;
import javax.net.ssl.SSLPeerUnverifiedException;
import javax.net.ssl.SSLSession;

/**
 * The {@link Identity} of a gRPC call, taken from the verified peer certificate of the call's TLS
 * session and nothing else.
 */
public final class Identities {
  /**
   * The caller's identity in the gRPC {@link Context} of a call that passed {@link #interceptor}.
   */
  public static final Context.Key<Identity> KEY = Context.key("peerflash-identity");

  /** Where a session keeps its verified identity, so a call costs no certificate parsing. */
  private static final String SESSION_VALUE = "io.peerflash.security.identity";

  private Identities() {}

  /** The identity of the current call, or null outside a call that passed {@link #interceptor}. */
  public static Identity current() {
    return KEY.get();
  }

  /**
   * A server interceptor that puts the caller's {@link Identity} into {@link #KEY} and refuses the
   * call with {@code UNAUTHENTICATED}, naming why, when there is none: a plaintext call, no client
   * certificate, or a certificate {@code directory} no longer accepts.
   *
   * <p>The certificate is checked again against {@code directory} whenever its files were reloaded
   * since the session's last check, and its expiry on every call: a serial revoked (or a
   * certificate expiring) while a connection is open stops the next call on it, not only new
   * connections.
   */
  public static ServerInterceptor interceptor(TlsDirectory directory) {
    Objects.requireNonNull(directory, "directory");
    return new ServerInterceptor() {
      @Override
      public <ReqT, RespT> ServerCall.Listener<ReqT> interceptCall(
          ServerCall<ReqT, RespT> call, Metadata headers, ServerCallHandler<ReqT, RespT> next) {
        Identity identity;
        try {
          identity = identify(directory, call.getAttributes().get(Grpc.TRANSPORT_ATTR_SSL_SESSION));
        } catch (CertificateException e) {
          String why = Texts.description(e.getMessage());
          directory.refused(
              "call "
                  + call.getMethodDescriptor().getFullMethodName()
                  + " from "
                  + call.getAttributes().get(Grpc.TRANSPORT_ATTR_REMOTE_ADDR),
              e);
          call.close(Status.UNAUTHENTICATED.withDescription(why), new Metadata());
          return new ServerCall.Listener<>() {};
        }
        return Contexts.interceptCall(
            Context.current().withValue(KEY, identity), call, headers, next);
      }
    };
  }

  private record Verified(long generation, Identity identity) {}

  /**
   * Who is at the other end of a TLS session (a connection accepted by a server with {@code
   * directory}'s client verifier), checked against the files in force; cached in the session until
   * the files change.
   *
   * @throws CertificateException naming what is refused and why
   */
  public static Identity identify(TlsDirectory directory, SSLSession session)
      throws CertificateException {
    if (session == null) {
      throw new CertificateException(
          "the call did not come over TLS: a client certificate is required");
    }
    directory.refreshIfDue();
    long generation = directory.generation();
    Object cached = session.getValue(SESSION_VALUE);
    Identity identity;
    if (cached instanceof Verified v && v.generation() == generation) {
      identity = v.identity();
    } else {
      identity = directory.verifyClient(peerChain(session));
      session.putValue(SESSION_VALUE, new Verified(generation, identity));
    }
    if (directory.nowMs() >= identity.notAfter().toEpochMilli()) {
      // Re-verifying names the expiry the way a new handshake would.
      identity = directory.verifyClient(peerChain(session));
    }
    return identity;
  }

  private static X509Certificate[] peerChain(SSLSession session) throws CertificateException {
    Certificate[] certs;
    try {
      certs = session.getPeerCertificates();
    } catch (SSLPeerUnverifiedException e) {
      throw new CertificateException("the TLS client presented no certificate");
    }
    if (certs == null || certs.length == 0) {
      throw new CertificateException("the TLS client presented no certificate");
    }
    X509Certificate[] chain = new X509Certificate[certs.length];
    for (int i = 0; i < certs.length; i++) {
      if (!(certs[i] instanceof X509Certificate x)) {
        throw new CertificateException("the TLS client presented a non-X.509 certificate");
      }
      chain[i] = x;
    }
    return chain;
  }
}
