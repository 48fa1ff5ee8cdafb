package io.peerflash.security;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.grpc.CallOptions;
import io.grpc.Grpc;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Server;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptors;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.GrpcSslContexts;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.netty.shaded.io.netty.handler.ssl.SslContext;
import io.grpc.netty.shaded.io.netty.handler.ssl.SslProvider;
import io.grpc.stub.ClientCalls;
import io.peerflash.security.CertificateIssuer.IssuedCertificate;
import io.peerflash.security.CertificateIssuer.Validity;
import io.peerflash.util.ManualTime;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import javax.net.ssl.SSLSession;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Mutual TLS between real gRPC servers and channels over loopback: who gets in, what identity a
 * call sees, and rotation and revocation by replacing files while the server runs.
 */
class GrpcTlsTest {
  /** A unary method that answers with what the server knows of the call: identity and session. */
  static final MethodDescriptor<String, String> WHO_AM_I =
      MethodDescriptor.<String, String>newBuilder()
          .setType(MethodDescriptor.MethodType.UNARY)
          .setFullMethodName("peerflash.test.WhoAmI/Get")
          .setRequestMarshaller(new Utf8())
          .setResponseMarshaller(new Utf8())
          .build();

  @TempDir Path tmp;
  final ManualTime clock = new ManualTime();
  final AtomicInteger callsHandled = new AtomicInteger();
  final LinkedBlockingQueue<String> serverRefusals = new LinkedBlockingQueue<>();
  final List<ManagedChannel> channels = new ArrayList<>();
  CertificateIssuer ca;
  Path n1Dir;
  TlsDirectory n1;
  Server server;

  @BeforeEach
  void setUp() throws Exception {
    ca = CertificateIssuer.createCa(null, Validity.days(3650));
    n1Dir = tmp.resolve("n1");
    ca.writeIdentityDirectory(n1Dir, ca.issueNode("n1", List.of(), Validity.days(365)));
    n1 = TlsDirectory.open(n1Dir, clock);
    n1.onRefusal(serverRefusals::add);
  }

  @AfterEach
  void tearDown() throws Exception {
    for (ManagedChannel c : channels) {
      c.shutdownNow();
    }
    if (server != null) {
      server.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
    }
  }

  @Test
  void goodClientGetsItsIdentityOverNativeTls() throws Exception {
    assertThat(GrpcTls.provider()).isEqualTo(SslProvider.OPENSSL);
    SslContext serverContext = GrpcTls.serverContext(n1);
    assertThat(serverContext.getClass().getSimpleName()).contains("OpenSsl");
    startServer(serverContext);
    TlsDirectory alice = clientDirectory("alice", Identity.Role.IO, Validity.days(30));
    SslContext clientContext = GrpcTls.clientContext(alice);
    assertThat(clientContext.getClass().getSimpleName()).contains("OpenSsl");

    for (String host : List.of("127.0.0.1", "localhost")) {
      Map<String, String> who = call(channel(host, clientContext, null));
      assertThat(who)
          .containsEntry("kind", "CLIENT")
          .containsEntry("name", "alice")
          .containsEntry("role", "IO")
          .containsEntry("serial", alice.identity().serialHex())
          .containsEntry("server-serial", n1.identity().serialHex())
          .containsEntry("protocol", "TLSv1.3");
    }
    assertThat(serverRefusals).isEmpty();
  }

  @Test
  void nodeCertificatePresentedAsClientIsANode() throws Exception {
    startServer(GrpcTls.serverContext(n1));
    Path n2Dir = tmp.resolve("n2");
    ca.writeIdentityDirectory(n2Dir, ca.issueNode("n2", List.of(), Validity.days(30)));
    TlsDirectory n2 = TlsDirectory.open(n2Dir, clock);
    LinkedBlockingQueue<String> n2Refusals = new LinkedBlockingQueue<>();
    n2.onRefusal(n2Refusals::add);

    assertThat(call(channel("localhost", GrpcTls.clientContext(n2), null)))
        .containsEntry("kind", "NODE")
        .containsEntry("name", "n2")
        .containsEntry("role", "NODE");
    // A node calling a peer by id accepts that peer whatever address it dialled ...
    assertThat(call(channel("127.0.0.1", GrpcTls.peerClientContext(n2, "n1"), "n1.elsewhere")))
        .containsEntry("name", "n2");
    // ... and no other node.
    assertRefusedAtHandshake(channel("127.0.0.1", GrpcTls.peerClientContext(n2, "n3"), null));
    assertThat(n2Refusals.poll(10, TimeUnit.SECONDS))
        .contains("belongs to node 'n1', not to the node dialled, 'n3'");
  }

  @Test
  void clientRefusesServerWithoutTheDialledHost() throws Exception {
    startServer(GrpcTls.serverContext(n1));
    TlsDirectory alice = clientDirectory("alice", Identity.Role.ADMIN, Validity.days(30));
    LinkedBlockingQueue<String> aliceRefusals = new LinkedBlockingQueue<>();
    alice.onRefusal(aliceRefusals::add);

    assertRefusedAtHandshake(
        channel("127.0.0.1", GrpcTls.clientContext(alice), "elsewhere.example"));
    assertThat(aliceRefusals.poll(10, TimeUnit.SECONDS))
        .contains(
            "server certificate of node 'n1' does not carry the host dialled, 'elsewhere.example'");
    assertThat(callsHandled).hasValue(0);
  }

  @Test
  void clientWithoutCertificateIsRefused() throws Exception {
    startServer(GrpcTls.serverContext(n1));
    SslContext noCertificate =
        GrpcSslContexts.forClient()
            .trustManager(ca.caCertificate())
            .protocols(GrpcTls.PROTOCOL)
            .build();
    assertRefusedAtHandshake(channel("localhost", noCertificate, null));
    assertThat(callsHandled).hasValue(0);
  }

  @Test
  void clientOfAnotherCaIsRefused() throws Exception {
    startServer(GrpcTls.serverContext(n1));
    CertificateIssuer otherCa = CertificateIssuer.createCa(null, Validity.days(30));
    IssuedCertificate mallory =
        otherCa.issueClient(
            "mallory", Identity.Role.ADMIN, List.of(), List.of(), false, Validity.days(30));
    Path dir = tmp.resolve("mallory");
    // It trusts the cluster's CA (so it would accept n1) but its own certificate is foreign.
    CertificateIssuer.writeIdentityDirectory(
        dir, List.of(ca.caCertificate(), otherCa.caCertificate()), mallory);
    TlsDirectory malloryDir = TlsDirectory.open(dir, clock);

    assertRefusedAtHandshake(channel("localhost", GrpcTls.clientContext(malloryDir), null));
    assertThat(serverRefusals.poll(10, TimeUnit.SECONDS))
        .contains("of 'CN=mallory,OU=client,O=PeerFlash' is not issued by the CA of " + n1Dir);
    assertThat(callsHandled).hasValue(0);
  }

  @Test
  void expiredClientIsRefused() throws Exception {
    startServer(GrpcTls.serverContext(n1));
    Instant now = Instant.ofEpochMilli(clock.nowMs());
    TlsDirectory old =
        clientDirectory(
            "old",
            Identity.Role.IO,
            new Validity(now.minus(Duration.ofDays(30)), now.minus(Duration.ofMinutes(1))));

    assertRefusedAtHandshake(channel("localhost", GrpcTls.clientContext(old), null));
    assertThat(serverRefusals.poll(10, TimeUnit.SECONDS))
        .contains(
            "certificate serial " + old.identity().serialHex() + " of client 'old' expired at");
    assertThat(callsHandled).hasValue(0);
  }

  @Test
  void revokedClientIsRefusedOnNewConnectionsAndOnOpenOnes() throws Exception {
    startServer(GrpcTls.serverContext(n1));
    TlsDirectory alice = clientDirectory("alice", Identity.Role.IO, Validity.days(30));
    SslContext aliceContext = GrpcTls.clientContext(alice);
    ManagedChannel open = channel("localhost", aliceContext, null);
    assertThat(call(open)).containsEntry("name", "alice");

    CertificateIssuer.writeRevokedSerials(n1Dir, Set.of(alice.identity().serial()));
    clock.advanceMs(TlsDirectory.RELOAD_CHECK_INTERVAL_MS);
    String revoked =
        "certificate serial " + alice.identity().serialHex() + " of client 'alice' is revoked";

    // A new connection from the same client context: refused in the handshake (the trust manager
    // ran again: the session of the first connection was not resumed).
    assertRefusedAtHandshake(channel("localhost", aliceContext, null));
    assertThat(serverRefusals.poll(10, TimeUnit.SECONDS)).startsWith(revoked);
    // The connection opened before the revocation: its next call is refused.
    assertThatThrownBy(() -> call(open))
        .isInstanceOfSatisfying(
            StatusRuntimeException.class,
            e -> {
              assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.UNAUTHENTICATED);
              assertThat(e.getStatus().getDescription()).startsWith(revoked);
            });
    assertThat(callsHandled).hasValue(1);
  }

  @Test
  void plaintextCallIsUnauthenticated() throws Exception {
    server =
        NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
            .addService(ServerInterceptors.intercept(whoAmI(), Identities.interceptor(n1)))
            .build()
            .start();
    ManagedChannel plain =
        NettyChannelBuilder.forAddress("127.0.0.1", server.getPort()).usePlaintext().build();
    channels.add(plain);
    assertThatThrownBy(() -> call(plain))
        .isInstanceOfSatisfying(
            StatusRuntimeException.class,
            e -> {
              assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.UNAUTHENTICATED);
              assertThat(e.getStatus().getDescription())
                  .isEqualTo("the call did not come over TLS: a client certificate is required");
            });
    assertThat(callsHandled).hasValue(0);
  }

  @ParameterizedTest
  @EnumSource(
      value = SslProvider.class,
      names = {"OPENSSL", "JDK"})
  void rotatedFilesReachNewConnectionsWithoutRestart(SslProvider provider) throws Exception {
    startServer(GrpcTls.serverContext(n1, provider));
    TlsDirectory alice = clientDirectory("alice", Identity.Role.IO, Validity.days(30));
    SslContext aliceContext = GrpcTls.clientContext(alice, alice.serverVerifier(), provider);
    String oldServerSerial = n1.identity().serialHex();
    String oldClientSerial = alice.identity().serialHex();
    ManagedChannel open = channel("localhost", aliceContext, null);
    assertThat(call(open)).containsEntry("server-serial", oldServerSerial);

    // New key pairs for the server and the client, from the same CA, written over the old ones.
    IssuedCertificate newServer = ca.issueNode("n1", List.of(), Validity.days(365));
    ca.writeIdentityDirectory(n1Dir, newServer);
    IssuedCertificate newClient =
        ca.issueClient("alice", Identity.Role.IO, List.of(), List.of(), false, Validity.days(30));
    ca.writeIdentityDirectory(alice.path(), newClient);
    String newServerSerial = newServer.certificate().getSerialNumber().toString(16);
    String newClientSerial = newClient.certificate().getSerialNumber().toString(16);

    // Checked at most once per interval: until it passes, new connections use the old pairs.
    assertThat(call(channel("localhost", aliceContext, null)))
        .containsEntry("server-serial", oldServerSerial)
        .containsEntry("serial", oldClientSerial);

    clock.advanceMs(TlsDirectory.RELOAD_CHECK_INTERVAL_MS);
    assertThat(call(channel("localhost", aliceContext, null)))
        .containsEntry("server-serial", newServerSerial)
        .containsEntry("serial", newClientSerial);
    // The connection opened before keeps the pairs it was set up with.
    assertThat(call(open))
        .containsEntry("server-serial", oldServerSerial)
        .containsEntry("serial", oldClientSerial);
    assertThat(serverRefusals).isEmpty();
  }

  // ---- helpers ----

  private TlsDirectory clientDirectory(String name, Identity.Role role, Validity validity)
      throws Exception {
    Path dir = tmp.resolve(name);
    ca.writeIdentityDirectory(
        dir, ca.issueClient(name, role, List.of(), List.of(), false, validity));
    return TlsDirectory.open(dir, clock);
  }

  private void startServer(SslContext serverContext) throws IOException {
    server =
        NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
            .sslContext(serverContext)
            .addService(ServerInterceptors.intercept(whoAmI(), Identities.interceptor(n1)))
            .build()
            .start();
  }

  /** A new channel, hence a new connection and handshake at its first call. */
  private ManagedChannel channel(String host, SslContext context, String authority) {
    NettyChannelBuilder b =
        NettyChannelBuilder.forTarget(host + ":" + server.getPort()).sslContext(context);
    if (authority != null) {
      b.overrideAuthority(authority);
    }
    ManagedChannel c = b.build();
    channels.add(c);
    return c;
  }

  private static Map<String, String> call(ManagedChannel channel) {
    String reply =
        ClientCalls.blockingUnaryCall(
            channel, WHO_AM_I, CallOptions.DEFAULT.withDeadlineAfter(20, TimeUnit.SECONDS), "who");
    Map<String, String> out = new HashMap<>();
    for (String part : reply.split(" ")) {
      int eq = part.indexOf('=');
      out.put(part.substring(0, eq), part.substring(eq + 1));
    }
    return out;
  }

  /** The TLS handshake fails: the channel reports UNAVAILABLE and no call reaches the server. */
  private void assertRefusedAtHandshake(ManagedChannel channel) {
    int before = callsHandled.get();
    assertThatThrownBy(() -> call(channel))
        .isInstanceOfSatisfying(
            StatusRuntimeException.class,
            e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.UNAVAILABLE));
    assertThat(callsHandled).hasValue(before);
  }

  private ServerServiceDefinition whoAmI() {
    ServerCallHandler<String, String> handler =
        (call, headers) -> {
          call.request(1);
          return new ServerCall.Listener<>() {
            @Override
            public void onMessage(String message) {
              callsHandled.incrementAndGet();
              Identity id = Identities.current();
              SSLSession session = call.getAttributes().get(Grpc.TRANSPORT_ATTR_SSL_SESSION);
              X509Certificate served = (X509Certificate) session.getLocalCertificates()[0];
              call.sendHeaders(new Metadata());
              call.sendMessage(
                  "kind="
                      + id.kind()
                      + " name="
                      + id.name()
                      + " role="
                      + id.role()
                      + " serial="
                      + id.serialHex()
                      + " server-serial="
                      + served.getSerialNumber().toString(16)
                      + " protocol="
                      + session.getProtocol());
              call.close(Status.OK, new Metadata());
            }
          };
        };
    return ServerServiceDefinition.builder("peerflash.test.WhoAmI")
        .addMethod(WHO_AM_I, handler)
        .build();
  }

  private static final class Utf8 implements MethodDescriptor.Marshaller<String> {
    @Override
    public InputStream stream(String value) {
      return new ByteArrayInputStream(value.getBytes(StandardCharsets.UTF_8));
    }

    @Override
    public String parse(InputStream stream) {
      try {
        return new String(stream.readAllBytes(), StandardCharsets.UTF_8);
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
  }
}
