package io.peerflash.node.observe;

import static io.peerflash.testing.MetricsText.sample;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.peerflash.node.NodeConfig;
import io.peerflash.node.PeerFlashNode;
import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.CreateVolumeRequest;
import io.peerflash.proto.v1.ReadRequest;
import io.peerflash.proto.v1.VolumePolicy;
import io.peerflash.proto.v1.VolumeServiceGrpc;
import io.peerflash.proto.v1.WriteRequest;
import io.peerflash.security.TlsDirectory;
import io.peerflash.testing.TestCertificates;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.KeyManager;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManager;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The read-only HTTP port of a real node over sockets: metrics that count what happened (checked by
 * Prometheus' own promtool), liveness and readiness, the status page and its JSON, and no method
 * but GET and HEAD.
 */
class NodeHttpPortTest {
  private static final int WRITES = 12;

  @TempDir Path dir;
  private final TestCertificates certs = TestCertificates.shared();
  private final HttpClient http = HttpClient.newHttpClient();
  // Settings of the node a test starts, beside the common ones.
  private final Map<String, String> extraSettings = new HashMap<>();
  private PeerFlashNode node;
  private ManagedChannel channel;

  @AfterEach
  void tearDown() throws Exception {
    if (channel != null) {
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
    if (node != null) {
      node.close();
    }
  }

  private VolumeServiceGrpc.VolumeServiceBlockingStub start(boolean metrics) throws Exception {
    return start(metrics, "off");
  }

  private VolumeServiceGrpc.VolumeServiceBlockingStub start(boolean metrics, String httpTls)
      throws Exception {
    Map<String, String> c = new HashMap<>();
    c.put("http-tls", httpTls);
    c.put("id", "n1");
    c.put("listen", "127.0.0.1:0");
    c.put("http", "127.0.0.1:0");
    c.put("metrics", Boolean.toString(metrics));
    c.put("data-dir", dir.resolve("data").toString());
    c.put("shared-dir", dir.resolve("shared").toString());
    c.put("cache-size", "8MiB");
    c.put("certs", certs.node("n1").toString());
    c.putAll(extraSettings);
    node = PeerFlashNode.start(NodeConfig.fromMap(c));
    channel =
        certs
            .adminSecurity()
            .apply(NettyChannelBuilder.forAddress("127.0.0.1", node.port()))
            .build();
    return VolumeServiceGrpc.newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS);
  }

  private void writeSome(VolumeServiceGrpc.VolumeServiceBlockingStub stub) {
    stub.createVolume(
        CreateVolumeRequest.newBuilder()
            .setName("v")
            .setSizeBytes(1 << 20)
            .setPolicy(VolumePolicy.newBuilder().setMode(CacheMode.WRITE_BACK))
            .build());
    for (int i = 0; i < WRITES; i++) {
      stub.write(
          WriteRequest.newBuilder()
              .setVolume("v")
              .setOffset(i * 4096L)
              .setData(ByteString.copyFrom(new byte[4096]))
              .build());
    }
    stub.read(ReadRequest.newBuilder().setVolume("v").setOffset(0).setLength(4096).build());
  }

  private HttpResponse<String> get(String path) throws IOException, InterruptedException {
    return http.send(
        HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + node.httpPort() + path)).build(),
        HttpResponse.BodyHandlers.ofString());
  }

  @Test
  void metricsCountWhatHappenedAndPassPromtool() throws Exception {
    writeSome(start(true));

    HttpResponse<String> r = get("/metrics");
    assertThat(r.statusCode()).isEqualTo(200);
    String text = r.body();
    assertThat(
            sample(
                text, "peerflash_request_duration_seconds_count{frontend=\"grpc\",op=\"write\"}"))
        .isEqualTo(WRITES);
    assertThat(
            sample(text, "peerflash_request_duration_seconds_count{frontend=\"grpc\",op=\"read\"}"))
        .isEqualTo(1);
    assertThat(sample(text, "peerflash_local_store_duration_seconds_count")).isEqualTo(WRITES);
    assertThat(sample(text, "peerflash_volume_dirty_bytes{volume=\"v\"}"))
        .isBetween(1.0, WRITES * 4096.0);
    // A single node holds one copy; the policy wants none more: nothing at risk.
    assertThat(sample(text, "peerflash_volume_at_risk_bytes{volume=\"v\"}")).isZero();
    assertThat(sample(text, "peerflash_read_hits_total")).isEqualTo(1);
    assertThat(text).contains("# TYPE jvm_memory_used_bytes gauge");

    io.peerflash.testing.Promtool.checkMetrics(text);
  }

  @Test
  void healthReadinessPageAndStatusJson() throws Exception {
    writeSome(start(true));

    assertThat(get("/healthz").statusCode()).isEqualTo(200);
    assertThat(get("/healthz").body()).isEqualTo("ok\n");
    assertThat(get("/readyz").statusCode()).isEqualTo(200);
    HttpResponse<String> page = get("/");
    assertThat(page.statusCode()).isEqualTo(200);
    assertThat(page.headers().firstValue("Content-Type"))
        .hasValueSatisfying(t -> assertThat(t).startsWith("text/html"));
    assertThat(page.body()).contains("<title>PeerFlash status</title>");
    HttpResponse<String> status = get("/api/status");
    assertThat(status.statusCode()).isEqualTo(200);
    assertThat(status.body())
        .contains("\"node\":\"n1\"")
        .contains("\"name\":\"v\"")
        .contains("\"state\":\"HEALTHY\"")
        .contains("\"latency\":{\"write\":{\"count\":" + WRITES);
    assertThat(get("/no-such-page").statusCode()).isEqualTo(404);
  }

  @Test
  void aNodeWhoseFlashFailedAnFsyncIsNeitherHealthyNorReady() throws Exception {
    extraSettings.put("sync", "true"); // every write waits for an fsync of the cache file
    VolumeServiceGrpc.VolumeServiceBlockingStub stub = start(true);
    writeSome(stub);
    assertThat(get("/healthz").statusCode()).isEqualTo(200);
    // Every fsync of the cache file fails from now on, as a failing disk's would.
    node.faults()
        .arm(
            io.peerflash.replication.fault.FaultPoints.LOCAL_FSYNC,
            "*",
            io.peerflash.replication.fault.FaultPoints.Action.DROP);
    assertThatThrownBy(
        () ->
            stub.write(
                WriteRequest.newBuilder()
                    .setVolume("v")
                    .setOffset(0)
                    .setData(ByteString.copyFrom(new byte[4096]))
                    .build()));
    HttpResponse<String> health = get("/healthz");
    assertThat(health.statusCode()).isEqualTo(503);
    assertThat(health.body()).contains("fsync of the cache file");
    HttpResponse<String> ready = get("/readyz");
    assertThat(ready.statusCode()).isEqualTo(503);
    assertThat(ready.body()).contains("fsync of the cache file");
    assertThat(get("/api/status").body()).contains("fsync of the cache file");
  }

  @Test
  void aRefusedCallCountsAsAnAuthRefusal() throws Exception {
    writeSome(start(true));
    // The audit log's count is the process's (other tests' nodes refuse calls too): its growth.
    double before = sample(get("/metrics").body(), "peerflash_auth_refusals_total");
    ManagedChannel readOnly =
        certs
            .security(certs.client("watcher", io.peerflash.security.Identity.Role.READ_ONLY))
            .apply(NettyChannelBuilder.forAddress("127.0.0.1", node.port()))
            .build();
    try {
      assertThatThrownBy(
              () ->
                  VolumeServiceGrpc.newBlockingStub(readOnly)
                      .withDeadlineAfter(10, TimeUnit.SECONDS)
                      .write(
                          WriteRequest.newBuilder()
                              .setVolume("v")
                              .setOffset(0)
                              .setData(ByteString.copyFrom(new byte[4096]))
                              .build()))
          .hasMessageContaining("PERMISSION_DENIED");
    } finally {
      readOnly.shutdownNow();
    }
    assertThat(sample(get("/metrics").body(), "peerflash_auth_refusals_total"))
        .isEqualTo(before + 1);
  }

  @Test
  void thePortTakesNoAction() throws Exception {
    start(true);
    for (String path : new String[] {"/metrics", "/healthz", "/api/status", "/"}) {
      for (String method : new String[] {"POST", "PUT", "DELETE"}) {
        HttpResponse<String> r =
            http.send(
                HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + node.httpPort() + path))
                    .method(method, HttpRequest.BodyPublishers.ofString("x"))
                    .build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(r.statusCode()).as("%s %s", method, path).isEqualTo(405);
        assertThat(r.headers().firstValue("Allow")).hasValue("GET, HEAD");
      }
    }
  }

  @Test
  void metricsOffRecordsNothingButHealthStillAnswers() throws Exception {
    writeSome(start(false));
    assertThat(get("/metrics").statusCode()).isEqualTo(404);
    assertThat(get("/healthz").statusCode()).isEqualTo(200);
    assertThat(get("/api/status").body()).contains("\"latency\":{\"write\":null");
  }

  @Test
  void httpsWithTheNodesCertificateAndMutualWhenAskedFor() throws Exception {
    start(true, "mutual");
    URI metrics = URI.create("https://127.0.0.1:" + node.httpPort() + "/metrics");
    TlsDirectory admin = TlsDirectory.open(certs.admin());
    HttpClient withCertificate = httpsClient(admin, true);
    HttpResponse<String> r =
        withCertificate.send(
            HttpRequest.newBuilder(metrics).build(), HttpResponse.BodyHandlers.ofString());
    assertThat(r.statusCode()).isEqualTo(200);
    assertThat(r.body()).contains("peerflash_cache_size_bytes");
    // Trusting the node is not enough under "mutual": the node wants the client's certificate.
    HttpClient withoutCertificate = httpsClient(admin, false);
    assertThatThrownBy(
            () ->
                withoutCertificate.send(
                    HttpRequest.newBuilder(metrics).build(), HttpResponse.BodyHandlers.ofString()))
        .isInstanceOf(IOException.class);
  }

  @Test
  void httpsWithoutClientCertificates() throws Exception {
    start(true, "on");
    HttpClient client = httpsClient(TlsDirectory.open(certs.admin()), false);
    HttpResponse<String> r =
        client.send(
            HttpRequest.newBuilder(URI.create("https://127.0.0.1:" + node.httpPort() + "/healthz"))
                .build(),
            HttpResponse.BodyHandlers.ofString());
    assertThat(r.statusCode()).isEqualTo(200);
    // Plain HTTP to an HTTPS port gets nothing.
    assertThatThrownBy(() -> get("/healthz")).isInstanceOf(IOException.class);
  }

  /** A client that checks the node's certificate against the cluster CA, and shows its own. */
  private static HttpClient httpsClient(TlsDirectory identity, boolean showCertificate)
      throws Exception {
    SSLContext context = SSLContext.getInstance("TLS");
    context.init(
        showCertificate ? new KeyManager[] {identity.keyManager()} : null,
        new TrustManager[] {identity.serverVerifier()},
        null);
    return HttpClient.newBuilder().sslContext(context).build();
  }

  /** Prometheus' own checker (Debian's prometheus package) finds nothing to complain about. */
}
