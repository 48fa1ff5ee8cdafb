package io.peerflash.node.nbd;

import static io.peerflash.testing.MetricsText.sample;
import static org.assertj.core.api.Assertions.assertThat;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** NBD requests show in the node's request latency histograms, as gRPC ones do. */
class NbdMetricsTest {
  @TempDir Path dir;
  private NbdTestNode node;

  @AfterEach
  void stop() {
    if (node != null) {
      node.close();
    }
  }

  @Test
  void everyReadWriteTrimAndFlushIsTimedAsAnNbdRequest() throws Exception {
    node = new NbdTestNode(dir, "8MiB", Map.of("http", "127.0.0.1:0"));
    node.createVolume("vol", 1 << 20);
    byte[] data = new byte[4096];
    try (RawNbdClient c = RawNbdClient.unix(node.socket)) {
      c.greet();
      c.go("vol");
      long handle = 1;
      for (int i = 0; i < 3; i++, handle++) {
        c.request(0, NbdProtocol.CMD_WRITE, handle, i * 4096L, data.length, data);
        assertThat(c.simpleReply()).isEqualTo(new RawNbdClient.SimpleReply(0, handle));
      }
      c.request(0, NbdProtocol.CMD_WRITE_ZEROES, handle, 0, 4096, null);
      assertThat(c.simpleReply()).isEqualTo(new RawNbdClient.SimpleReply(0, handle++));
      c.request(0, NbdProtocol.CMD_READ, handle, 0, 4096, null);
      assertThat(c.simpleReplyData(4096)).hasSize(4096);
      handle++;
      c.request(0, NbdProtocol.CMD_TRIM, handle, 8192, 4096, null);
      assertThat(c.simpleReply()).isEqualTo(new RawNbdClient.SimpleReply(0, handle++));
      c.request(0, NbdProtocol.CMD_FLUSH, handle, 0, 0, null);
      assertThat(c.simpleReply()).isEqualTo(new RawNbdClient.SimpleReply(0, handle));
      // Out of range: answered with EINVAL, and counted as a failed write.
      c.request(0, NbdProtocol.CMD_WRITE, ++handle, 1 << 20, data.length, data);
      assertThat(c.simpleReply().error()).isEqualTo(NbdProtocol.EINVAL);
    }
    String metrics =
        HttpClient.newHttpClient()
            .send(
                HttpRequest.newBuilder(
                        URI.create("http://127.0.0.1:" + node.node.httpPort() + "/metrics"))
                    .build(),
                HttpResponse.BodyHandlers.ofString())
            .body();
    String count = "peerflash_request_duration_seconds_count{frontend=\"nbd\",op=\"%s\"}";
    // Three writes, the zeroing and the refused write.
    assertThat(sample(metrics, String.format(count, "write"))).isEqualTo(5);
    assertThat(sample(metrics, String.format(count, "read"))).isEqualTo(1);
    assertThat(sample(metrics, String.format(count, "trim"))).isEqualTo(1);
    assertThat(sample(metrics, String.format(count, "flush"))).isEqualTo(1);
    assertThat(sample(metrics, "peerflash_request_errors_total{frontend=\"nbd\",op=\"write\"}"))
        .isEqualTo(1);
    assertThat(sample(metrics, String.format(count.replace("nbd", "grpc"), "write"))).isZero();
  }
}
