package io.peerflash.replication.data;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.StreamObserver;
import io.peerflash.proto.v1.BlockImage;
import io.peerflash.proto.v1.ReplicaServiceGrpc;
import io.peerflash.proto.v1.ReplicateAck;
import io.peerflash.proto.v1.ReplicateRequest;
import io.peerflash.replication.fault.FaultPoints;
import io.peerflash.util.ManualTime;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Ack deadlines measured on the replicator's clock, against a real peer that never acks. */
class PeerReplicatorTest {
  private static final long ACK_TIMEOUT_MS = 1_000;
  private static final long CONNECT_TIMEOUT_MS = 5_000;

  /** Takes every batch and acks none, like a frozen replica whose connection is still up. */
  private static final class SilentReplica extends ReplicaServiceGrpc.ReplicaServiceImplBase {
    final LinkedBlockingQueue<Long> received = new LinkedBlockingQueue<>();
    final java.util.concurrent.atomic.AtomicInteger streams =
        new java.util.concurrent.atomic.AtomicInteger();

    @Override
    public StreamObserver<ReplicateRequest> replicate(StreamObserver<ReplicateAck> acks) {
      streams.incrementAndGet();
      return new StreamObserver<>() {
        @Override
        public void onNext(ReplicateRequest req) {
          received.add(req.getBatchId());
        }

        @Override
        public void onError(Throwable t) {}

        @Override
        public void onCompleted() {
          acks.onCompleted();
        }
      };
    }
  }

  private final SilentReplica replica = new SilentReplica();
  private final ManualTime clock = new ManualTime();
  private final ScheduledExecutorService timers = Executors.newSingleThreadScheduledExecutor();
  private Server server;
  private ManagedChannel channel;
  private PeerReplicator replicator;

  @BeforeEach
  void start() throws Exception {
    server =
        NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
            .addService(replica)
            .build()
            .start();
    channel = NettyChannelBuilder.forAddress("127.0.0.1", server.getPort()).usePlaintext().build();
    replicator = replicatorTo("silent", channel);
  }

  /** A replicator from "owner" to {@code peer} with this test's timeouts, on its manual clock. */
  private PeerReplicator replicatorTo(String peer, ManagedChannel to) {
    return new PeerReplicator(
        "owner", peer, to, timers, ACK_TIMEOUT_MS, CONNECT_TIMEOUT_MS, new FaultPoints(), clock);
  }

  @AfterEach
  void stop() {
    replicator.close();
    channel.shutdownNow();
    server.shutdownNow();
    timers.shutdownNow();
  }

  private static List<BlockImage> image(long block, long seq) {
    return List.of(
        BlockImage.newBuilder()
            .setBlock(block)
            .setSeq(seq)
            .setData(ByteString.copyFrom(new byte[4096]))
            .build());
  }

  @Test
  void anUnackedBatchFailsOnlyOnceTheClockPassesTheAckTimeout() throws Exception {
    CompletableFuture<Void> batch = replicator.replicate("v", 1, "owner", image(1, 1));
    // On the peer, its stream connected: from here only the clock decides (the periodic sweep
    // runs too, on a clock that does not move).
    assertThat(replica.received.poll(10, TimeUnit.SECONDS)).isNotNull();
    awaitStreamReady(replicator);

    clock.advanceMs(ACK_TIMEOUT_MS); // at the deadline, not past it
    replicator.sweep();
    assertThat(batch).isNotDone();
    assertThat(replicator.inFlight()).isEqualTo(1);
    assertThat(replicator.oldestInFlightMs()).isEqualTo(ACK_TIMEOUT_MS);

    clock.advanceMs(1);
    replicator.sweep();
    assertThat(batch).isCompletedExceptionally();
    assertThatThrownBy(batch::get)
        .isInstanceOf(ExecutionException.class)
        .cause()
        .isInstanceOf(ReplicaException.class)
        .satisfies(
            e ->
                assertThat(((ReplicaException) e).code())
                    .isEqualTo(ReplicaException.Code.UNAVAILABLE))
        .hasMessageContaining("did not ack within " + ACK_TIMEOUT_MS + " ms");
    assertThat(replicator.inFlight()).isZero();
    assertThat(replicator.oldestInFlightMs()).isZero();
  }

  @Test
  void connectOpensTheStreamAheadOfTheFirstBatchWhichThenGoesOutOnIt() throws Exception {
    replicator.connect();
    awaitStreamReady(replicator); // connected with nothing sent
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (replica.streams.get() == 0) { // the peer hears of the stream after the owner
      assertThat(System.nanoTime()).as("stream reached the peer").isLessThan(deadline);
      Thread.sleep(5);
    }
    assertThat(replica.streams.get()).isEqualTo(1);
    assertThat(replica.received).isEmpty();
    assertThat(replicator.inFlight()).isZero();

    replicator.connect(); // a stream is open: nothing more
    CompletableFuture<Void> batch = replicator.replicate("v", 1, "owner", image(1, 1));
    assertThat(replica.received.poll(10, TimeUnit.SECONDS)).isNotNull();
    assertThat(replica.streams.get()).isEqualTo(1);
    assertThat(batch).isNotDone();

    // A warmed stream gives a batch the same deadline as any other: the ack timeout from its send.
    clock.advanceMs(ACK_TIMEOUT_MS + 1);
    replicator.sweep();
    assertThat(batch).isCompletedExceptionally();

    replicator.close();
    replicator.connect(); // closed: opens nothing
    assertThat(replica.streams.get()).isEqualTo(1);
  }

  @Test
  void aMissedDeadlineFailsEveryBatchOnTheStream() throws Exception {
    CompletableFuture<Void> first = replicator.replicate("v", 1, "owner", image(1, 1));
    assertThat(replica.received.poll(10, TimeUnit.SECONDS)).isNotNull();
    awaitStreamReady(replicator);
    clock.advanceMs(ACK_TIMEOUT_MS / 2);
    CompletableFuture<Void> second = replicator.replicate("v", 1, "owner", image(2, 2));
    assertThat(replica.received.poll(10, TimeUnit.SECONDS)).isNotNull();
    // The lag is the oldest batch's age.
    assertThat(replicator.oldestInFlightMs()).isEqualTo(ACK_TIMEOUT_MS / 2);

    clock.advanceMs(ACK_TIMEOUT_MS / 2);
    replicator.sweep();
    assertThat(first).isNotDone();
    assertThat(second).isNotDone();

    // Past the first batch's deadline: the peer is presumed gone, so the whole stream fails,
    // the second batch with it.
    clock.advanceMs(1);
    replicator.sweep();
    assertThat(first).isCompletedExceptionally();
    assertThat(second).isCompletedExceptionally();
  }

  /** Takes every request and acks each only when the test says so. */
  private static final class HoldingReplica extends ReplicaServiceGrpc.ReplicaServiceImplBase {
    final LinkedBlockingQueue<ReplicateRequest> received = new LinkedBlockingQueue<>();
    volatile StreamObserver<ReplicateAck> acks;

    @Override
    public StreamObserver<ReplicateRequest> replicate(StreamObserver<ReplicateAck> acks) {
      this.acks = acks;
      return new StreamObserver<>() {
        @Override
        public void onNext(ReplicateRequest req) {
          received.add(req);
        }

        @Override
        public void onError(Throwable t) {}

        @Override
        public void onCompleted() {
          acks.onCompleted();
        }
      };
    }

    ReplicateRequest next() throws InterruptedException {
      ReplicateRequest req = received.poll(10, TimeUnit.SECONDS);
      assertThat(req).as("a request reached the replica within 10 s").isNotNull();
      return req;
    }

    void ack(ReplicateRequest req) {
      acks.onNext(ReplicateAck.newBuilder().setBatchId(req.getBatchId()).build());
    }
  }

  private static List<Long> blocksOf(ReplicateRequest req) {
    return req.getBlocksList().stream().map(BlockImage::getBlock).toList();
  }

  @Test
  void copiesSentWhileTwoRequestsAwaitTheirAcksTravelTogetherInOrder() throws Exception {
    HoldingReplica holding = new HoldingReplica();
    Server holdingServer =
        NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
            .addService(holding)
            .build()
            .start();
    ManagedChannel toHolding =
        NettyChannelBuilder.forAddress("127.0.0.1", holdingServer.getPort()).usePlaintext().build();
    PeerReplicator r = replicatorTo("holding", toHolding);
    try {
      // Two requests may be on the wire: each of the first two writes goes out alone, at once.
      CompletableFuture<Void> first = r.replicate("v", 1, "owner", image(1, 1));
      CompletableFuture<Void> second = r.replicate("v", 1, "owner", image(2, 2));
      ReplicateRequest sentFirst = holding.next();
      ReplicateRequest sentSecond = holding.next();
      assertThat(blocksOf(sentFirst)).containsExactly(1L);
      assertThat(blocksOf(sentSecond)).containsExactly(2L);

      // Three more writes while both wait for acks: the two copies of volume v at epoch 1 join
      // one request; a release, and a copy of another volume, each travel on their own, in order.
      CompletableFuture<Void> third = r.replicate("v", 1, "owner", image(3, 3));
      CompletableFuture<Void> fourth = r.replicate("v", 1, "owner", image(4, 4));
      CompletableFuture<Void> release = r.release("v", 1, "owner", new long[] {1}, new long[] {1});
      CompletableFuture<Void> other = r.replicate("w", 1, "owner", image(5, 5));
      clock.advanceMs(7);
      assertThat(r.oldestInFlightMs()).isEqualTo(7);

      holding.ack(sentFirst);
      first.get(10, TimeUnit.SECONDS);
      ReplicateRequest joined = holding.next();
      assertThat(joined.getVolume()).isEqualTo("v");
      assertThat(blocksOf(joined)).containsExactly(3L, 4L);
      assertThat(third).isNotDone();

      holding.ack(sentSecond);
      ReplicateRequest releaseSent = holding.next();
      assertThat(releaseSent.getReleasedBlocksList()).containsExactly(1L);
      assertThat(releaseSent.getBlocksCount()).isZero();

      holding.ack(joined);
      third.get(10, TimeUnit.SECONDS);
      fourth.get(10, TimeUnit.SECONDS);
      assertThat(second).isDone();
      ReplicateRequest otherSent = holding.next();
      assertThat(otherSent.getVolume()).isEqualTo("w");
      assertThat(blocksOf(otherSent)).containsExactly(5L);
      holding.ack(releaseSent);
      holding.ack(otherSent);
      release.get(10, TimeUnit.SECONDS);
      other.get(10, TimeUnit.SECONDS);
      assertThat(r.inFlight()).isZero();
      assertThat(r.oldestInFlightMs()).isZero();
    } finally {
      r.close();
      toHolding.shutdownNow();
      holdingServer.shutdownNow();
    }
  }

  @Test
  void copiesWaitingBehindAStreamThatFailsFailWithIt() throws Exception {
    // The silent replica never acks: two requests go out, the third waits, and when the first
    // misses its deadline the stream fails with all three.
    CompletableFuture<Void> first = replicator.replicate("v", 1, "owner", image(1, 1));
    CompletableFuture<Void> second = replicator.replicate("v", 1, "owner", image(2, 2));
    assertThat(replica.received.poll(10, TimeUnit.SECONDS)).isNotNull();
    assertThat(replica.received.poll(10, TimeUnit.SECONDS)).isNotNull();
    awaitStreamReady(replicator);
    CompletableFuture<Void> waiting = replicator.replicate("v", 1, "owner", image(3, 3));
    assertThat(replicator.inFlight()).isEqualTo(2);

    clock.advanceMs(ACK_TIMEOUT_MS + 1);
    replicator.sweep();
    assertThat(first).isCompletedExceptionally();
    assertThat(second).isCompletedExceptionally();
    assertThat(waiting).isCompletedExceptionally();
    assertThatThrownBy(waiting::get)
        .cause()
        .isInstanceOf(ReplicaException.class)
        .hasMessageContaining("did not ack within " + ACK_TIMEOUT_MS + " ms");
    assertThat(replicator.oldestInFlightMs()).isZero();
  }

  /** Waits (in real time) until the replicator has seen its stream connect. */
  private static void awaitStreamReady(PeerReplicator r) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (!r.streamReady()) {
      assertThat(System.nanoTime()).as("stream connected within 10 s").isLessThan(deadline);
      Thread.sleep(5);
    }
  }

  @Test
  void aStreamStillConnectingGetsTheConnectTimeoutNotTheAckTimeout() throws Exception {
    // A peer that takes the TCP connection and never speaks HTTP/2: like a node whose JVM is
    // still starting, or a TLS handshake with a cold peer, the stream is not connected yet.
    try (ServerSocket mute = new ServerSocket(0, 50, InetAddress.getLoopbackAddress())) {
      List<Socket> accepted = new CopyOnWriteArrayList<>();
      Thread acceptor =
          new Thread(
              () -> {
                try {
                  while (true) {
                    accepted.add(mute.accept());
                  }
                } catch (IOException closed) {
                  // the test is over
                }
              });
      acceptor.setDaemon(true);
      acceptor.start();
      ManagedChannel toMute =
          NettyChannelBuilder.forAddress("127.0.0.1", mute.getLocalPort()).usePlaintext().build();
      PeerReplicator r = replicatorTo("mute", toMute);
      try {
        CompletableFuture<Void> batch = r.replicate("v", 1, "owner", image(1, 1));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (accepted.isEmpty()) {
          assertThat(System.nanoTime()).as("connection accepted").isLessThan(deadline);
          Thread.sleep(5);
        }
        assertThat(r.streamReady()).isFalse();

        // Past the ack timeout: still connecting, so nothing fails yet.
        clock.advanceMs(ACK_TIMEOUT_MS + 1);
        r.sweep();
        assertThat(batch).isNotDone();

        clock.advanceMs(CONNECT_TIMEOUT_MS - ACK_TIMEOUT_MS);
        r.sweep();
        assertThat(batch).isCompletedExceptionally();
        assertThatThrownBy(batch::get)
            .cause()
            .isInstanceOf(ReplicaException.class)
            .hasMessageContaining("did not connect within " + CONNECT_TIMEOUT_MS + " ms");
      } finally {
        r.close();
        toMute.shutdownNow();
        for (Socket s : accepted) {
          s.close();
        }
      }
    }
  }
}
