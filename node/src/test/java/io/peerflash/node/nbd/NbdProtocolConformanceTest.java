package io.peerflash.node.nbd;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import io.grpc.netty.shaded.io.netty.handler.ssl.OpenSslSessionContext;
import io.grpc.netty.shaded.io.netty.handler.ssl.SslContext;
import io.grpc.netty.shaded.io.netty.handler.ssl.SslProvider;
import io.peerflash.security.GrpcTls;
import io.peerflash.security.Identity;
import io.peerflash.security.TlsDirectory;
import io.peerflash.testing.TestCertificates;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.LoggerFactory;

/**
 * The protocol's edges, byte by byte, against a real node (TLS on TCP, the Unix socket in
 * plaintext): malformed handshakes, unknown options, requests out of range or too large, simple and
 * structured replies, disconnects in the middle of a request, and replies out of order. After each
 * abuse the node still serves.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class NbdProtocolConformanceTest {
  static final long SIZE = 8L << 20;
  @TempDir Path dir;
  NbdTestNode node;

  @BeforeEach
  void start() throws Exception {
    // Shared storage 300 ms away: a read miss is slow, a cache hit fast (out-of-order replies).
    node = new NbdTestNode(dir, "64MiB", Map.of("storage-latency-us", "300000"));
    node.createVolume("vol", SIZE);
  }

  @AfterEach
  void stop() {
    node.close();
  }

  private RawNbdClient connected(boolean structured) throws Exception {
    RawNbdClient c = RawNbdClient.unix(node.socket);
    c.greet();
    if (structured) {
      c.option(NbdProtocol.OPT_STRUCTURED_REPLY, new byte[0]);
      assertThat(c.optionReply().type()).isEqualTo(NbdProtocol.REP_ACK);
    }
    assertThat(c.go("vol")).isEqualTo(SIZE);
    return c;
  }

  /** The node still serves: a new connection writes and reads back. */
  private void stillServes() throws Exception {
    try (RawNbdClient c = connected(false)) {
      byte[] data = new byte[4096];
      Arrays.fill(data, (byte) 0x5a);
      c.request(0, NbdProtocol.CMD_WRITE, 1, 8192, data.length, data);
      assertThat(c.simpleReply()).isEqualTo(new RawNbdClient.SimpleReply(0, 1));
      c.request(0, NbdProtocol.CMD_READ, 2, 8192, data.length, null);
      assertThat(c.simpleReply()).isEqualTo(new RawNbdClient.SimpleReply(0, 2));
      assertThat(c.readFully(data.length).array()).isEqualTo(data);
    }
  }

  @Test
  void badMagicInTheHandshakeOrARequestClosesOnlyThatConnection() throws Exception {
    try (RawNbdClient c = RawNbdClient.unix(node.socket)) {
      c.greet();
      ByteBuffer bad = ByteBuffer.allocate(16).putLong(0x1234).putInt(7).putInt(0).flip();
      c.send(bad);
      assertThat(c.closedByServer()).isTrue();
    }
    try (RawNbdClient c = RawNbdClient.unix(node.socket)) {
      c.readFully(18);
      c.send(ByteBuffer.allocate(4).putInt(0x80).flip()); // unknown client flag
      assertThat(c.closedByServer()).isTrue();
    }
    try (RawNbdClient c = connected(false)) {
      c.send(ByteBuffer.wrap(ByteBuffer.allocate(28).putInt(0xdeadbeef).array()));
      assertThat(c.closedByServer()).isTrue();
    }
    stillServes();
  }

  @Test
  void unknownOptionsGetErrUnsupAndTheHandshakeGoesOn() throws Exception {
    try (RawNbdClient c = RawNbdClient.unix(node.socket)) {
      c.greet();
      c.option(4242, "junk".getBytes(StandardCharsets.UTF_8));
      RawNbdClient.OptionReply r = c.optionReply();
      assertThat(r.option()).isEqualTo(4242);
      assertThat(r.type()).isEqualTo(NbdProtocol.REP_ERR_UNSUP);
      c.option(NbdProtocol.OPT_STARTTLS, new byte[0]); // no TLS on the Unix socket
      assertThat(c.optionReply().type()).isEqualTo(NbdProtocol.REP_ERR_UNSUP);
      c.option(NbdProtocol.OPT_LIST, new byte[0]);
      RawNbdClient.OptionReply server = c.optionReply();
      assertThat(server.type()).isEqualTo(NbdProtocol.REP_SERVER);
      assertThat(new String(server.data(), 4, server.data().length - 4, StandardCharsets.UTF_8))
          .isEqualTo("vol");
      assertThat(c.optionReply().type()).isEqualTo(NbdProtocol.REP_ACK);
      byte[] n = "nope".getBytes(StandardCharsets.UTF_8);
      c.option(
          NbdProtocol.OPT_INFO,
          ByteBuffer.allocate(4 + n.length + 2)
              .putInt(n.length)
              .put(n)
              .putShort((short) 0)
              .array());
      assertThat(c.optionReply().type()).isEqualTo(NbdProtocol.REP_ERR_UNKNOWN);
      assertThat(c.go("vol")).isEqualTo(SIZE);
    }
  }

  @Test
  void overTcpTlsRunsOnTheNativeProviderWithoutResumptionAtTls13() throws Exception {
    // The node's other ports use the native provider; NBD's STARTTLS does too, with no session
    // cache (a resumed session would skip the certificate checks).
    assertThat(GrpcTls.provider()).isEqualTo(SslProvider.OPENSSL);
    SslContext tls = NbdServer.serverContext(TlsDirectory.open(node.certs.node("n1")));
    assertThat(tls.getClass().getSimpleName()).contains("OpenSsl");
    assertThat(((OpenSslSessionContext) tls.sessionContext()).isSessionCacheEnabled()).isFalse();

    Path admin = node.certs.admin();
    try (TlsNbdClient c = new TlsNbdClient(node.tcpPort(), admin, "vol")) {
      assertThat(c.protocol()).isEqualTo("TLSv1.3");
      byte[] data = new byte[8192];
      Arrays.fill(data, (byte) 0x3c);
      assertThat(c.write(4096, data, true)).isZero();
      byte[] back = new byte[data.length];
      assertThat(c.read(4096, back)).isZero();
      assertThat(back).isEqualTo(data);
    }
  }

  @Test
  void overTcpEveryOptionButStartTlsNeedsTls() throws Exception {
    try (RawNbdClient c = RawNbdClient.tcp(node.tcpPort())) {
      c.greet();
      c.option(NbdProtocol.OPT_LIST, new byte[0]);
      assertThat(c.optionReply().type()).isEqualTo(NbdProtocol.REP_ERR_TLS_REQD);
      byte[] n = "vol".getBytes(StandardCharsets.UTF_8);
      c.option(
          NbdProtocol.OPT_GO,
          ByteBuffer.allocate(4 + n.length + 2)
              .putInt(n.length)
              .put(n)
              .putShort((short) 0)
              .array());
      assertThat(c.optionReply().type()).isEqualTo(NbdProtocol.REP_ERR_TLS_REQD);
      c.option(NbdProtocol.OPT_EXPORT_NAME, n); // cannot be refused with a reply: closed
      assertThat(c.closedByServer()).isTrue();
    }
  }

  @Test
  void overTcpCertificatesOfAnotherCaANodeOrTheReadOnlyRoleAreRefusedAndTheDataIsUnchanged()
      throws Exception {
    ListAppender<ILoggingEvent> audit = new ListAppender<>();
    audit.start();
    Logger auditLog = (Logger) LoggerFactory.getLogger("peerflash.audit");
    auditLog.addAppender(audit);
    try {
      byte[] data = new byte[4096];
      Arrays.fill(data, (byte) 0x11);
      try (TlsNbdClient c = new TlsNbdClient(node.tcpPort(), node.certs.admin(), "vol")) {
        assertThat(c.write(0, data, true)).isZero();
      }
      // An admin certificate of another CA: refused in the TLS handshake.
      Path foreign = TestCertificates.in(dir.resolve("other-ca")).admin();
      assertThatThrownBy(
              () -> new TlsNbdClient(node.tcpPort(), foreign, node.certs.admin(), "vol").close())
          .isInstanceOf(IOException.class);
      // A node's certificate and a read-only client's: no data over NBD, the export refused.
      for (Path who :
          List.of(
              node.certs.node("n2"), node.certs.client("nbd-viewer", Identity.Role.READ_ONLY))) {
        assertThatThrownBy(() -> new TlsNbdClient(node.tcpPort(), who, "vol").close())
            .as(who.toString())
            .hasMessageContaining(
                "GO refused: 0x" + Integer.toHexString(NbdProtocol.REP_ERR_POLICY))
            .hasMessageContaining("it needs the io or admin role");
      }
      // An io certificate for other volumes: refused alike for a volume that exists and one that
      // does not, so it learns nothing of names it may not use.
      Path otherIo =
          node.certs.client("nbd-other-io", Identity.Role.IO, List.of("other"), List.of(), false);
      for (String export : List.of("vol", "no-such-volume")) {
        assertThatThrownBy(() -> new TlsNbdClient(node.tcpPort(), otherIo, export).close())
            .hasMessageContaining(
                "GO refused: 0x" + Integer.toHexString(NbdProtocol.REP_ERR_POLICY))
            .hasMessageContaining("client 'nbd-other-io' may not use volume '" + export + "'");
      }
      try (TlsNbdClient c = new TlsNbdClient(node.tcpPort(), node.certs.admin(), "vol")) {
        byte[] back = new byte[data.length];
        assertThat(c.read(0, back)).isZero();
        assertThat(back).as("the data is unchanged").isEqualTo(data);
      }
      List<String> lines = audit.list.stream().map(ILoggingEvent::getFormattedMessage).toList();
      assertThat(lines)
          .anySatisfy(l -> assertThat(l).startsWith("refused TLS client"))
          .anySatisfy(l -> assertThat(l).startsWith("refused node 'n2' nbd 'vol'"))
          .anySatisfy(l -> assertThat(l).startsWith("refused client 'nbd-viewer' nbd 'vol'"))
          .anySatisfy(
              l -> assertThat(l).startsWith("refused client 'nbd-other-io' nbd 'no-such-volume'"));
    } finally {
      auditLog.detachAppender(audit);
    }
  }

  @Test
  void requestsOutOfRangeTooLargeOrMalformedGetEinvalAndTheConnectionSurvives() throws Exception {
    try (RawNbdClient c = connected(false)) {
      c.request(0, NbdProtocol.CMD_READ, 1, SIZE - 4096, 8192, null);
      assertThat(c.simpleReply()).isEqualTo(new RawNbdClient.SimpleReply(NbdProtocol.EINVAL, 1));
      c.request(0, NbdProtocol.CMD_WRITE, 2, SIZE, 512, new byte[512]);
      assertThat(c.simpleReply()).isEqualTo(new RawNbdClient.SimpleReply(NbdProtocol.EINVAL, 2));
      c.request(0, NbdProtocol.CMD_READ, 3, -4096L, 4096, null); // 2^64 - 4096: past the end
      assertThat(c.simpleReply()).isEqualTo(new RawNbdClient.SimpleReply(NbdProtocol.EINVAL, 3));
      c.request(0, NbdProtocol.CMD_READ, 4, 100, 512, null); // not sector-aligned
      assertThat(c.simpleReply()).isEqualTo(new RawNbdClient.SimpleReply(NbdProtocol.EINVAL, 4));
      c.request(0, NbdProtocol.CMD_READ, 5, 0, 64 << 20, null); // over the maximum block size
      assertThat(c.simpleReply()).isEqualTo(new RawNbdClient.SimpleReply(NbdProtocol.EINVAL, 5));
      // A write over the maximum block size: its data is skipped, then EINVAL.
      int big = (32 << 20) + 4096;
      c.request(0, NbdProtocol.CMD_WRITE, 6, 0, big, new byte[big]);
      assertThat(c.simpleReply()).isEqualTo(new RawNbdClient.SimpleReply(NbdProtocol.EINVAL, 6));
      c.request(0, 99, 7, 0, 512, null); // unknown command
      assertThat(c.simpleReply()).isEqualTo(new RawNbdClient.SimpleReply(NbdProtocol.EINVAL, 7));
      c.request(1 << 9, NbdProtocol.CMD_READ, 8, 0, 512, null); // unknown flag
      assertThat(c.simpleReply()).isEqualTo(new RawNbdClient.SimpleReply(NbdProtocol.EINVAL, 8));
      c.request(0, NbdProtocol.CMD_BLOCK_STATUS, 9, 0, 4096, null); // no meta context
      assertThat(c.simpleReply()).isEqualTo(new RawNbdClient.SimpleReply(NbdProtocol.EINVAL, 9));
      // A request split into engine calls: 3 MiB across 1 MiB boundaries, read back whole.
      byte[] data = new byte[3 << 20];
      new java.util.Random(3).nextBytes(data);
      c.request(0, NbdProtocol.CMD_WRITE, 10, 512 * 1024, data.length, data);
      assertThat(c.simpleReply()).isEqualTo(new RawNbdClient.SimpleReply(0, 10));
      c.request(0, NbdProtocol.CMD_READ, 11, 512 * 1024, data.length, null);
      assertThat(c.simpleReply()).isEqualTo(new RawNbdClient.SimpleReply(0, 11));
      assertThat(c.readFully(data.length).array()).isEqualTo(data);
    }
    stillServes();
  }

  @Test
  void structuredRepliesCarryReadDataErrorsAndBlockStatus() throws Exception {
    try (RawNbdClient c = RawNbdClient.unix(node.socket)) {
      c.greet();
      c.option(NbdProtocol.OPT_STRUCTURED_REPLY, new byte[0]);
      assertThat(c.optionReply().type()).isEqualTo(NbdProtocol.REP_ACK);
      byte[] n = "vol".getBytes(StandardCharsets.UTF_8);
      byte[] q = NbdProtocol.BASE_ALLOCATION.getBytes(StandardCharsets.UTF_8);
      c.option(
          NbdProtocol.OPT_SET_META_CONTEXT,
          ByteBuffer.allocate(4 + n.length + 4 + 4 + q.length)
              .putInt(n.length)
              .put(n)
              .putInt(1)
              .putInt(q.length)
              .put(q)
              .array());
      RawNbdClient.OptionReply ctx = c.optionReply();
      assertThat(ctx.type()).isEqualTo(NbdProtocol.REP_META_CONTEXT);
      assertThat(ByteBuffer.wrap(ctx.data()).getInt()).isEqualTo(NbdProtocol.BASE_ALLOCATION_ID);
      assertThat(c.optionReply().type()).isEqualTo(NbdProtocol.REP_ACK);
      assertThat(c.go("vol")).isEqualTo(SIZE);

      byte[] data = new byte[8192];
      Arrays.fill(data, (byte) 7);
      c.request(NbdProtocol.CMD_FLAG_FUA, NbdProtocol.CMD_WRITE, 1, 4096, data.length, data);
      assertThat(c.simpleReply()).isEqualTo(new RawNbdClient.SimpleReply(0, 1));
      c.request(NbdProtocol.CMD_FLAG_DF, NbdProtocol.CMD_READ, 2, 4096, data.length, null);
      RawNbdClient.Chunk read = c.chunk();
      assertThat(read.flags()).isEqualTo(NbdProtocol.REPLY_FLAG_DONE);
      assertThat(read.type()).isEqualTo(NbdProtocol.REPLY_TYPE_OFFSET_DATA);
      assertThat(read.handle()).isEqualTo(2);
      ByteBuffer p = ByteBuffer.wrap(read.payload());
      assertThat(p.getLong()).isEqualTo(4096);
      byte[] back = new byte[data.length];
      p.get(back);
      assertThat(back).isEqualTo(data);

      c.request(0, NbdProtocol.CMD_READ, 3, SIZE, 512, null);
      RawNbdClient.Chunk error = c.chunk();
      assertThat(error.type()).isEqualTo(NbdProtocol.REPLY_TYPE_ERROR);
      assertThat(error.flags()).isEqualTo(NbdProtocol.REPLY_FLAG_DONE);
      ByteBuffer e = ByteBuffer.wrap(error.payload());
      assertThat(e.getInt()).isEqualTo(NbdProtocol.EINVAL);
      byte[] message = new byte[e.getShort()];
      e.get(message);
      assertThat(new String(message, StandardCharsets.UTF_8)).contains("past the end");

      // Block 0 never written (zeros), blocks 1-2 data, the rest of the first MiB zeros.
      c.request(0, NbdProtocol.CMD_BLOCK_STATUS, 4, 0, 1 << 20, null);
      RawNbdClient.Chunk status = c.chunk();
      assertThat(status.type()).isEqualTo(NbdProtocol.REPLY_TYPE_BLOCK_STATUS);
      ByteBuffer s = ByteBuffer.wrap(status.payload());
      assertThat(s.getInt()).isEqualTo(NbdProtocol.BASE_ALLOCATION_ID);
      List<List<Integer>> extents = new ArrayList<>();
      while (s.hasRemaining()) {
        extents.add(List.of(s.getInt(), s.getInt()));
      }
      assertThat(extents)
          .containsExactly(
              List.of(4096, NbdProtocol.STATE_ZERO),
              List.of(8192, 0),
              List.of((1 << 20) - 12288, NbdProtocol.STATE_ZERO));

      c.request(0, NbdProtocol.CMD_TRIM, 5, 4096, 4096, null);
      assertThat(c.simpleReply()).isEqualTo(new RawNbdClient.SimpleReply(0, 5));
      c.request(NbdProtocol.CMD_FLAG_REQ_ONE, NbdProtocol.CMD_BLOCK_STATUS, 6, 0, 16384, null);
      ByteBuffer one = ByteBuffer.wrap(c.chunk().payload());
      one.getInt();
      assertThat(List.of(one.getInt(), one.getInt()))
          .isEqualTo(List.of(8192, NbdProtocol.STATE_ZERO));
      assertThat(one.hasRemaining()).isFalse();
    }
  }

  @Test
  void disconnectsInTheMiddleOfARequestOrTheHandshakeLeaveTheNodeUnharmed() throws Exception {
    try (RawNbdClient c = RawNbdClient.unix(node.socket)) {
      c.readFully(10); // half the greeting
    }
    try (RawNbdClient c = RawNbdClient.unix(node.socket)) {
      c.greet();
      c.send(ByteBuffer.allocate(12).putLong(NbdProtocol.IHAVEOPT).putInt(7).flip());
    }
    for (int i = 0; i < 20; i++) {
      try (RawNbdClient c = connected(i % 2 == 0)) {
        byte[] half = new byte[2048];
        // A write header announcing 1 MiB, and part of its data.
        ByteBuffer h = ByteBuffer.allocate(28 + half.length);
        h.putInt(NbdProtocol.REQUEST_MAGIC)
            .putShort((short) 0)
            .putShort((short) NbdProtocol.CMD_WRITE)
            .putLong(1)
            .putLong(0)
            .putInt(1 << 20)
            .put(half);
        c.send(h.flip());
        // Requests in flight when the client goes: their replies have nowhere to go.
        c.request(0, NbdProtocol.CMD_READ, 2, 0, 4096, null);
      }
    }
    try (RawNbdClient c = connected(false)) {
      for (int i = 0; i < 64; i++) {
        c.request(0, NbdProtocol.CMD_READ, i, (long) i * 4096, 4096, null);
      }
    }
    stillServes();
  }

  @Test
  void repliesComeInCompletionOrderNotRequestOrder() throws Exception {
    try (RawNbdClient c = connected(false)) {
      byte[] data = new byte[4096];
      Arrays.fill(data, (byte) 1);
      c.request(0, NbdProtocol.CMD_WRITE, 1, 0, data.length, data);
      assertThat(c.simpleReply().error()).isZero();
      // A miss (shared storage, 300 ms away), then a cache hit: the hit is answered first.
      c.request(0, NbdProtocol.CMD_READ, 100, 4 << 20, 4096, null);
      c.request(0, NbdProtocol.CMD_READ, 200, 0, 4096, null);
      RawNbdClient.SimpleReply first = c.simpleReply();
      assertThat(first).isEqualTo(new RawNbdClient.SimpleReply(0, 200));
      assertThat(c.readFully(4096).array()).isEqualTo(data);
      assertThat(c.simpleReply()).isEqualTo(new RawNbdClient.SimpleReply(0, 100));
      assertThat(c.readFully(4096).array()).isEqualTo(new byte[4096]);
    }
  }

  @Test
  void manyRequestsInFlightPastTheBackpressureLimitAreAllAnswered() throws Exception {
    try (RawNbdClient c = connected(false)) {
      int n = 1000; // past nbd-max-in-flight (128): the node stops reading, then resumes
      byte[] data = new byte[4096];
      for (int i = 0; i < n; i++) {
        data[0] = (byte) i;
        c.request(0, NbdProtocol.CMD_WRITE, i, (long) (i % 512) * 4096, data.length, data);
      }
      Set<Long> handles = new HashSet<>();
      for (int i = 0; i < n; i++) {
        RawNbdClient.SimpleReply r = c.simpleReply();
        assertThat(r.error()).isZero();
        handles.add(r.handle());
      }
      assertThat(handles).hasSize(n);
      c.request(0, NbdProtocol.CMD_FLUSH, 5000, 0, 0, null);
      assertThat(c.simpleReply()).isEqualTo(new RawNbdClient.SimpleReply(0, 5000));
      c.request(0, NbdProtocol.CMD_DISC, 5001, 0, 0, null);
      assertThat(c.closedByServer()).isTrue();
    }
  }
}
