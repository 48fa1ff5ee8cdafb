package io.peerflash.replication.link;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Server;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.netty.shaded.io.netty.channel.EventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.nio.NioEventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.socket.nio.NioServerSocketChannel;
import io.grpc.netty.shaded.io.netty.channel.socket.nio.NioSocketChannel;
import io.peerflash.proto.v1.BlockImage;
import io.peerflash.replication.data.BlockCopy;
import io.peerflash.replication.data.CopyTransport;
import io.peerflash.replication.data.EpochGuard;
import io.peerflash.replication.data.GrpcCopyTransport;
import io.peerflash.replication.data.PeerReplicator;
import io.peerflash.replication.data.ReplicaException;
import io.peerflash.replication.data.ReplicaGrpcService;
import io.peerflash.replication.data.ReplicaSink;
import io.peerflash.replication.data.ReplicaStreams;
import io.peerflash.replication.fault.FaultPoints;
import io.peerflash.security.Audit;
import io.peerflash.security.CertificateIssuer;
import io.peerflash.security.CertificateIssuer.Validity;
import io.peerflash.security.GrpcTls;
import io.peerflash.security.Identity;
import io.peerflash.security.TlsDirectory;
import io.peerflash.util.Time;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.net.Socket;
import java.net.SocketException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import javax.net.ssl.KeyManager;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManager;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The replica link between real sockets with mutual TLS: an owner's copies reach the replica's sink
 * on it (not on the gRPC stream), only a node's certificate is taken and only for the owner it
 * names, a peer without a link gets the gRPC stream, and a link that breaks fails what it carried.
 */
class ReplicaLinkTest {
  private static final int MAX_FRAME = 1 << 20;

  /** Keeps the newest sequence per block; counts how requests arrived. */
  static final class Sink implements ReplicaSink {
    final Map<Long, Long> seqByBlock = new ConcurrentHashMap<>();

    @Override
    public boolean tryApply(String volume, List<BlockCopy> blocks, EpochCheck check)
        throws ReplicaException {
      apply(volume, blocks, check);
      return true;
    }

    @Override
    public synchronized void apply(String volume, List<BlockCopy> blocks, EpochCheck check)
        throws ReplicaException {
      if (!check.passes()) {
        throw new ReplicaException(ReplicaException.Code.UNAVAILABLE, "map behind");
      }
      for (BlockCopy b : blocks) {
        seqByBlock.merge(b.block(), b.seq(), Math::max);
      }
    }

    @Override
    public void release(String volume, long[] blocks, long[] seqs, EpochCheck check) {}

    @Override
    public void reset(String volume, long belowSeq, EpochCheck check) {}

    @Override
    public void sync(String volume) {}

    @Override
    public CopyState describe(String volume) {
      return new CopyState(0, seqByBlock.size());
    }
  }

  @TempDir Path certs;
  private final Sink sink = new Sink();
  private final EpochGuard guard = (volume, epoch, owner) -> {};
  private final ExecutorService applyPool = Executors.newFixedThreadPool(2);
  private final ScheduledExecutorService timers = Executors.newSingleThreadScheduledExecutor();
  private final EventLoopGroup loops = new NioEventLoopGroup(2);
  private final List<AutoCloseable> toClose = new ArrayList<>();
  private ReplicaStreams streams;
  private ReplicaGrpcService service;
  private Server grpcServer;
  private ReplicaLinkServer link;
  private TlsDirectory replicaTls;
  private final AtomicInteger grpcStreams = new AtomicInteger();

  @BeforeEach
  void start() throws Exception {
    CertificateIssuer ca = CertificateIssuer.createCa(null, Validity.days(30));
    for (String node : List.of("owner", "replica", "other")) {
      ca.writeIdentityDirectory(
          certs.resolve(node), ca.issueNode(node, List.of(), Validity.days(30)));
    }
    ca.writeIdentityDirectory(
        certs.resolve("admin"),
        ca.issueClient(
            "admin", Identity.Role.ADMIN, List.of(), List.of(), false, Validity.days(30)));
    replicaTls = TlsDirectory.open(certs.resolve("replica"));
    streams = new ReplicaStreams(sink, guard, applyPool);
    service = new ReplicaGrpcService(streams);
    grpcServer =
        NettyServerBuilder.forAddress(new java.net.InetSocketAddress("127.0.0.1", 0))
            .sslContext(GrpcTls.serverContext(replicaTls))
            .addService(service)
            .intercept(
                new ServerInterceptor() {
                  @Override
                  public <Q, R> ServerCall.Listener<Q> interceptCall(
                      ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next) {
                    if (call.getMethodDescriptor()
                        .getFullMethodName()
                        .equals(ReplicaGrpcService.replicateMethod())) {
                      grpcStreams.incrementAndGet();
                    }
                    return next.startCall(call, headers);
                  }
                })
            .intercept(io.peerflash.security.Identities.interceptor(replicaTls))
            .build()
            .start();
    link = startLink();
    service.setLinkPort(link.port());
  }

  private ReplicaLinkServer startLink() throws InterruptedException, java.io.IOException {
    return ReplicaLinkServer.start(
        "127.0.0.1",
        0,
        loops,
        loops,
        NioServerSocketChannel.class,
        GrpcTls.linkServerContext(replicaTls),
        replicaTls,
        streams,
        MAX_FRAME);
  }

  @AfterEach
  void stop() throws Exception {
    for (AutoCloseable c : toClose) {
      c.close();
    }
    link.close();
    grpcServer.shutdownNow();
    loops.shutdownGracefully(0, 1, TimeUnit.SECONDS);
    applyPool.shutdownNow();
    timers.shutdownNow();
  }

  /** A replicator from {@code as} (an identity directory) to "replica" over the link. */
  private PeerReplicator replicatorAs(String as) throws Exception {
    TlsDirectory dir = TlsDirectory.open(certs.resolve(as));
    ManagedChannel channel =
        NettyChannelBuilder.forAddress("127.0.0.1", grpcServer.getPort())
            .sslContext(GrpcTls.peerClientContext(dir, "replica"))
            .build();
    toClose.add(channel::shutdownNow);
    CopyTransport transport =
        new LinkCopyTransport(
            "replica",
            "127.0.0.1",
            () -> LinkCopyTransport.askPort(channel, 5_000),
            GrpcTls.linkClientContext(dir, "replica"),
            loops,
            NioSocketChannel.class,
            MAX_FRAME,
            new GrpcCopyTransport("replica", channel));
    PeerReplicator r =
        new PeerReplicator(
            as,
            "replica",
            channel,
            transport,
            timers,
            5_000,
            5_000,
            new FaultPoints(),
            Time.SYSTEM);
    toClose.add(0, r);
    return r;
  }

  private static List<BlockImage> images(long block, long seq) {
    return List.of(
        BlockImage.newBuilder()
            .setBlock(block)
            .setSeq(seq)
            .setData(ByteString.copyFrom(new byte[4096]))
            .build());
  }

  @Test
  void copiesOfTheOwnerTravelOnTheLinkAndAreAckedInOrder() throws Exception {
    PeerReplicator owner = replicatorAs("owner");
    List<CompletableFuture<Void>> sent = new ArrayList<>();
    for (long seq = 1; seq <= 200; seq++) {
      sent.add(owner.replicate("v", 5, "owner", images(seq % 7, seq)));
    }
    CompletableFuture.allOf(sent.toArray(CompletableFuture[]::new)).get(10, TimeUnit.SECONDS);
    assertThat(sink.seqByBlock).hasSize(7).containsEntry(0L, 196L).containsEntry(6L, 195L);
    assertThat(streams.requestsReceived()).isPositive();
    assertThat(grpcStreams.get()).as("Replicate gRPC streams opened").isZero();
  }

  @Test
  void aNodeClaimingAnotherOwnerIsRefusedPerRequest() throws Exception {
    PeerReplicator other = replicatorAs("other");
    assertThatThrownBy(
            () -> other.replicate("v", 5, "owner", images(1, 1)).get(10, TimeUnit.SECONDS))
        .isInstanceOf(ExecutionException.class)
        .cause()
        .isInstanceOf(ReplicaException.class)
        .hasMessageContaining("PERMISSION_DENIED")
        .hasMessageContaining("claiming owner");
    // Its own volume it may send.
    other.replicate("w", 5, "other", images(2, 2)).get(10, TimeUnit.SECONDS);
    assertThat(sink.seqByBlock).containsOnlyKeys(2L);
  }

  @Test
  void aClientCertificateIsRefusedAtTheHelloAndNothingIsStored() throws Exception {
    long refusalsBefore = Audit.refusals();
    PeerReplicator admin = replicatorAs("admin");
    assertThatThrownBy(
            () -> admin.replicate("v", 5, "admin", images(1, 1)).get(10, TimeUnit.SECONDS))
        .isInstanceOf(ExecutionException.class)
        .cause()
        .isInstanceOf(ReplicaException.class)
        .hasMessageContaining("UNAVAILABLE");
    assertThat(sink.seqByBlock).isEmpty();
    assertThat(Audit.refusals()).isGreaterThan(refusalsBefore);
  }

  @Test
  void aNodeCertificateOfAnotherCaIsRefusedInTheHandshakeAndNothingIsStored() throws Exception {
    // A certificate naming the owner, from a CA the cluster does not trust.
    CertificateIssuer otherCa = CertificateIssuer.createCa(null, Validity.days(30));
    otherCa.writeIdentityDirectory(
        certs.resolve("impostor"), otherCa.issueNode("owner", List.of(), Validity.days(30)));
    TlsDirectory impostor = TlsDirectory.open(certs.resolve("impostor"));
    TlsDirectory trustsTheCluster = TlsDirectory.open(certs.resolve("owner"));
    SSLContext tls = SSLContext.getInstance("TLS");
    tls.init(
        new KeyManager[] {impostor.keyManager()},
        new TrustManager[] {trustsTheCluster.serverVerifier()},
        null);
    long refusalsBefore = Audit.refusals();
    try (SSLSocket s = (SSLSocket) tls.getSocketFactory().createSocket("127.0.0.1", link.port())) {
      s.setSoTimeout(10_000);
      assertThatThrownBy(
              () -> {
                s.startHandshake();
                DataOutputStream out = new DataOutputStream(s.getOutputStream());
                out.writeLong(ReplicaLinkFrames.HELLO);
                out.flush();
                if (s.getInputStream().read() < 0) {
                  throw new EOFException("closed by the replica");
                }
              })
          .as("the replica neither answers the hello nor keeps the connection")
          .isInstanceOf(java.io.IOException.class);
    }
    assertThat(Audit.refusals()).isGreaterThan(refusalsBefore);
  }

  @Test
  void aPeerWithoutALinkGetsTheCopiesOnTheGrpcStream() throws Exception {
    service.setLinkPort(0);
    PeerReplicator owner = replicatorAs("owner");
    long before = streams.requestsReceived();
    owner.replicate("v", 5, "owner", images(3, 3)).get(10, TimeUnit.SECONDS);
    owner.replicate("v", 5, "owner", images(4, 4)).get(10, TimeUnit.SECONDS);
    assertThat(sink.seqByBlock).containsEntry(3L, 3L).containsEntry(4L, 4L);
    assertThat(streams.requestsReceived() - before).isEqualTo(2);
    assertThat(grpcStreams.get()).as("Replicate gRPC streams opened").isEqualTo(1);
  }

  @Test
  void aLinkThatClosesFailsItsCopiesAndTheNextCopyFindsTheLinkAgainOnItsNewPort() throws Exception {
    PeerReplicator owner = replicatorAs("owner");
    owner.replicate("v", 5, "owner", images(1, 1)).get(10, TimeUnit.SECONDS);
    int oldPort = link.port();
    link.close(); // the replica restarts its link: every connection closes
    link = startLink();
    service.setLinkPort(link.port());
    assertThat(link.port()).isNotEqualTo(oldPort);
    // The first copy after the close may still go out on the closed link and fail with it; the
    // stream is then opened afresh, asking for the port again.
    CompletableFuture<Void> next = owner.replicate("v", 5, "owner", images(2, 2));
    try {
      next.get(10, TimeUnit.SECONDS);
    } catch (ExecutionException e) {
      assertThat(e.getCause())
          .isInstanceOf(ReplicaException.class)
          .hasMessageContaining("UNAVAILABLE");
      owner.replicate("v", 5, "owner", images(2, 2)).get(10, TimeUnit.SECONDS);
    }
    assertThat(sink.seqByBlock).containsEntry(2L, 2L);
  }

  @Test
  void aConnectionThatDoesNotSpeakTheLinkIsClosed() throws Exception {
    // Plaintext link: the hello is checked before anything else.
    ReplicaLinkServer plain =
        ReplicaLinkServer.start(
            "127.0.0.1", 0, loops, loops, NioServerSocketChannel.class, null, null, streams, 64);
    try {
      try (Socket s = new Socket("127.0.0.1", plain.port())) {
        s.setSoTimeout(10_000);
        new DataOutputStream(s.getOutputStream()).writeLong(0x4745542f20485454L); // "GET / HTT"
        assertThatThrownBy(() -> new DataInputStream(s.getInputStream()).readLong())
            .isInstanceOfAny(EOFException.class, SocketException.class);
      }
      // A frame over the limit, after a good hello: closed too, nothing stored.
      try (Socket s = new Socket("127.0.0.1", plain.port())) {
        s.setSoTimeout(10_000);
        DataOutputStream out = new DataOutputStream(s.getOutputStream());
        DataInputStream in = new DataInputStream(s.getInputStream());
        out.writeLong(ReplicaLinkFrames.HELLO);
        assertThat(in.readLong()).isEqualTo(ReplicaLinkFrames.HELLO);
        out.writeInt(65);
        out.write(new byte[65]);
        assertThatThrownBy(in::readInt).isInstanceOfAny(EOFException.class, SocketException.class);
      }
    } finally {
      plain.close();
    }
    assertThat(sink.seqByBlock).isEmpty();
  }
}
