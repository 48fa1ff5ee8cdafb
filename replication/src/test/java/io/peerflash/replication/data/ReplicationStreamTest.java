package io.peerflash.replication.data;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import io.grpc.ForwardingServerCallListener.SimpleForwardingServerCallListener;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Server;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.peerflash.proto.v1.BlockImage;
import io.peerflash.replication.fault.FaultPoints;
import io.peerflash.security.CertificateIssuer;
import io.peerflash.security.CertificateIssuer.Validity;
import io.peerflash.security.GrpcTls;
import io.peerflash.security.Identities;
import io.peerflash.security.TlsDirectory;
import io.peerflash.util.Time;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** An owner's replicator against a replica service over real loopback sockets. */
class ReplicationStreamTest {
  /** An in-memory replica keeping the newest image per block, like the engine does. */
  static final class MemorySink implements ReplicaSink {
    final Map<Long, Long> seqByBlock = new ConcurrentHashMap<>();
    volatile CountDownLatch freeze; // non-null: apply blocks until counted down
    volatile boolean mustWait; // true: every apply needs a wait (tryApply refuses)
    final List<String> applyThreads = new CopyOnWriteArrayList<>();
    final AtomicInteger applyCalls = new AtomicInteger();
    final AtomicInteger syncCalls = new AtomicInteger();

    @Override
    public boolean tryApply(String volume, List<BlockCopy> blocks, EpochCheck check)
        throws ReplicaException {
      if (mustWait || freeze != null || !check.passes()) {
        return false;
      }
      store(blocks);
      return true;
    }

    @Override
    public void apply(String volume, List<BlockCopy> blocks, EpochCheck check)
        throws ReplicaException {
      CountDownLatch f = freeze;
      if (f != null) {
        try {
          f.await();
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      }
      synchronized (this) { // one decision: the check and the store
        if (!check.passes()) {
          throw new ReplicaException(ReplicaException.Code.UNAVAILABLE, "map behind");
        }
        store(blocks);
      }
    }

    private void store(List<BlockCopy> blocks) throws ReplicaException {
      for (BlockCopy b : blocks) {
        if (b.block() < 0) {
          throw new ReplicaException(
              ReplicaException.Code.INVALID_ARGUMENT, "negative block " + b.block());
        }
      }
      applyThreads.add(Thread.currentThread().getName());
      applyCalls.incrementAndGet();
      for (BlockCopy b : blocks) {
        seqByBlock.merge(b.block(), b.seq(), Math::max);
      }
    }

    @Override
    public synchronized void release(String volume, long[] blocks, long[] seqs, EpochCheck check)
        throws ReplicaException {
      check.passes();
      for (int i = 0; i < blocks.length; i++) {
        long seq = seqs[i];
        seqByBlock.computeIfPresent(blocks[i], (k, v) -> v <= seq ? null : v);
      }
    }

    @Override
    public synchronized void reset(String volume, long belowSeq, EpochCheck check)
        throws ReplicaException {
      check.passes();
      seqByBlock.values().removeIf(seq -> seq < belowSeq);
    }

    @Override
    public void sync(String volume) {
      syncCalls.incrementAndGet();
    }

    @Override
    public CopyState describe(String volume) {
      return new CopyState(
          seqByBlock.values().stream().mapToLong(Long::longValue).max().orElse(0),
          seqByBlock.size());
    }
  }

  private final MemorySink sink = new MemorySink();
  private final AtomicLong mapEpoch = new AtomicLong(5);
  private final EpochGuard guard =
      (volume, epoch, owner) -> {
        if (epoch < mapEpoch.get()) {
          throw ReplicaException.staleEpoch(volume, epoch, mapEpoch.get());
        }
      };
  private final ScheduledExecutorService timers =
      Executors.newSingleThreadScheduledExecutor(daemonThreads("test-replication-timers"));
  private final ExecutorService applyPool =
      Executors.newFixedThreadPool(2, daemonThreads("test-replica-apply"));

  private static java.util.concurrent.ThreadFactory daemonThreads(String name) {
    return r -> {
      Thread t = new Thread(r, name);
      t.setDaemon(true);
      return t;
    };
  }

  private Server server;
  private ReplicaGrpcService service;
  private int port;
  private ManagedChannel channel;
  private PeerReplicator replicator;

  @BeforeEach
  void start() throws Exception {
    startServer(0);
    channel = NettyChannelBuilder.forAddress("127.0.0.1", port).usePlaintext().build();
    replicator = new PeerReplicator("peer-1", channel, timers, 500);
  }

  private void startServer(int atPort) throws Exception {
    NettyServerBuilder builder =
        NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", atPort))
            .addService(service = new ReplicaGrpcService(sink, guard, applyPool));
    TransportThreadCalls.serve(builder, applyPool, ReplicaGrpcService.replicateMethod());
    server = builder.build().start();
    port = server.getPort();
  }

  @AfterEach
  void stop() {
    replicator.close();
    channel.shutdownNow();
    server.shutdownNow();
    timers.shutdownNow();
    applyPool.shutdownNow();
  }

  /** Waits until the replica has received {@code n} requests in all. */
  private void awaitReceived(long n) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
    while (service.requestsReceived() < n) {
      assertThat(System.nanoTime()).as("%d requests received", n).isLessThan(deadline);
      Thread.sleep(5);
    }
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
  void pipelinedBatchesAreAllAcked() throws Exception {
    // What is tested is that every batch is acked, not how fast: a patient replicator, so a
    // loaded machine's pause (JIT, GC of the first windows) does not count as a lost peer.
    replicator.close();
    replicator = new PeerReplicator("peer-1", channel, timers, 10_000);
    // Windows of 64 in flight, as a node's bounded write queue would send them.
    for (int w = 0; w < 2000; w += 64) {
      List<CompletableFuture<Void>> futures = new ArrayList<>();
      for (int i = w + 1; i <= Math.min(2000, w + 64); i++) {
        futures.add(replicator.replicate("v", 5, "owner", images(i % 100, i)));
      }
      CompletableFuture.allOf(futures.toArray(CompletableFuture[]::new)).get(30, TimeUnit.SECONDS);
    }
    assertThat(sink.seqByBlock).hasSize(100);
    assertThat(sink.describe("v").maxSeq()).isEqualTo(2000);
    assertThat(replicator.inFlight()).isZero();
  }

  @Test
  void staleEpochIsRefused() throws Exception {
    mapEpoch.set(7);
    assertThatThrownBy(() -> replicator.replicate("v", 6, "old-owner", images(1, 1)).get())
        .isInstanceOf(ExecutionException.class)
        .cause()
        .isInstanceOf(ReplicaException.class)
        .satisfies(
            e ->
                assertThat(((ReplicaException) e).code())
                    .isEqualTo(ReplicaException.Code.FAILED_PRECONDITION))
        .hasMessageContaining("stale epoch 6");
    assertThat(sink.seqByBlock).isEmpty();
    // The stream survives a refusal: the current epoch goes through.
    replicator.replicate("v", 7, "owner", images(1, 2)).get(5, TimeUnit.SECONDS);
    assertThat(sink.seqByBlock).containsEntry(1L, 2L);
  }

  @Test
  void frozenPeerFailsBatchesWithinTheAckTimeout() throws Exception {
    sink.freeze = new CountDownLatch(1);
    long start = System.nanoTime();
    CompletableFuture<Void> a = replicator.replicate("v", 5, "owner", images(1, 1));
    CompletableFuture<Void> b = replicator.replicate("v", 5, "owner", images(2, 2));
    assertThatThrownBy(() -> b.get(5, TimeUnit.SECONDS))
        .cause()
        .hasMessageContaining("did not ack within 500 ms");
    assertThatThrownBy(() -> a.get(5, TimeUnit.SECONDS))
        .cause()
        .isInstanceOf(ReplicaException.class);
    long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
    assertThat(ms).isBetween(400L, 3000L);
    sink.freeze.countDown();
    sink.freeze = null;
    // A fresh stream works again (its first batch may still miss the short ack timeout on a
    // loaded machine: a later one must get through).
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
    while (true) {
      try {
        replicator.replicate("v", 5, "owner", images(3, 3)).get(5, TimeUnit.SECONDS);
        break;
      } catch (ExecutionException e) {
        if (System.nanoTime() > deadline) {
          throw e;
        }
      }
    }
    assertThat(sink.seqByBlock).containsEntry(3L, 3L);
  }

  @Test
  void deadPeerFailsPromptlyAndIsReconnectedAfterRestart() throws Exception {
    replicator.replicate("v", 5, "owner", images(1, 1)).get(5, TimeUnit.SECONDS);
    server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    long start = System.nanoTime();
    assertThatThrownBy(
            () -> replicator.replicate("v", 5, "owner", images(2, 2)).get(5, TimeUnit.SECONDS))
        .cause()
        .isInstanceOf(ReplicaException.class);
    assertThat(TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start)).isLessThan(3000);
    startServer(port);
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
    while (true) {
      try {
        replicator.replicate("v", 5, "owner", images(4, 4)).get(5, TimeUnit.SECONDS);
        break;
      } catch (ExecutionException e) {
        if (System.nanoTime() > deadline) {
          throw e;
        }
        Thread.sleep(100);
      }
    }
    assertThat(sink.seqByBlock).containsEntry(4L, 4L);
  }

  @Test
  void releaseDropsOnlyCopiesThatAreNotNewer() throws Exception {
    replicator.replicate("v", 5, "owner", images(1, 10)).get(5, TimeUnit.SECONDS);
    replicator.replicate("v", 5, "owner", images(2, 11)).get(5, TimeUnit.SECONDS);
    replicator
        .release("v", 5, "owner", new long[] {1, 2}, new long[] {10, 9})
        .get(5, TimeUnit.SECONDS);
    assertThat(sink.seqByBlock).doesNotContainKey(1L).containsEntry(2L, 11L);
  }

  @Test
  void releasesAndResetsApplyInStreamOrderWithCopies() throws Exception {
    // Pipelined without waiting: a release sent after a copy must never overtake it, or the copy
    // would outlive its release on the peer.
    List<CompletableFuture<Void>> sent = new ArrayList<>();
    for (long seq = 1; seq <= 200; seq++) {
      sent.add(replicator.replicate("v", 5, "owner", images(seq % 7, seq)));
      sent.add(replicator.release("v", 5, "owner", new long[] {seq % 7}, new long[] {seq}));
    }
    sent.add(replicator.replicate("v", 5, "owner", images(100, 300)));
    sent.add(replicator.reset("v", 5, "owner", 301));
    sent.add(replicator.replicate("v", 5, "owner", images(101, 301)));
    for (CompletableFuture<Void> f : sent) {
      f.get(5, TimeUnit.SECONDS);
    }
    assertThat(sink.seqByBlock).containsOnly(java.util.Map.entry(101L, 301L));
    assertThat(replicator.inFlight()).isZero();
    assertThat(replicator.oldestInFlightMs()).isZero();
  }

  @Test
  void copiesThatNeedNoWaitAreStoredOnTheTransportThread() throws Exception {
    for (long seq = 1; seq <= 50; seq++) {
      replicator.replicate("v", 5, "owner", images(seq, seq)).get(5, TimeUnit.SECONDS);
    }
    assertThat(sink.seqByBlock).hasSize(50);
    // No hand-off to the apply pool: the thread that read the request stored and acked it.
    assertThat(sink.applyThreads).hasSize(50).noneMatch(name -> name.equals("test-replica-apply"));
  }

  private PeerReplicator sendingEverythingAtOnce() {
    return new PeerReplicator(
        "owner",
        "peer-1",
        channel,
        timers,
        10_000,
        10_000,
        new FaultPoints(),
        Time.SYSTEM,
        new GrpcCopyTransport("peer-1", channel),
        1_000);
  }

  @Test
  void copiesThatMustWaitAreBatchedInOrderOnTheApplyPool() throws Exception {
    // Acks are held back on purpose here: a patient replicator, so none times out, that sends
    // every request at once (the peer's batching is under test, not the sender's).
    replicator.close();
    replicator = sendingEverythingAtOnce();
    sink.mustWait = true;
    sink.freeze = new CountDownLatch(1);
    // The first request blocks the drain; everything sent behind it queues up meanwhile.
    List<CompletableFuture<Void>> sent = new ArrayList<>();
    sent.add(replicator.replicate("v", 5, "owner", images(1, 1)));
    for (long seq = 2; seq <= 40; seq++) {
      sent.add(replicator.replicate("v", 5, "owner", images(seq % 5, seq)));
    }
    // A release queued behind copies applies after them, never before.
    sent.add(replicator.release("v", 5, "owner", new long[] {0}, new long[] {40}));
    awaitReceived(sent.size()); // all of them queued behind the frozen apply
    sink.freeze.countDown();
    sink.freeze = null;
    for (CompletableFuture<Void> f : sent) {
      f.get(5, TimeUnit.SECONDS);
    }
    // Block 0 got seq 40 and then its release; blocks 1-4 hold their newest copy.
    assertThat(sink.seqByBlock)
        .doesNotContainKey(0L)
        .containsEntry(1L, 36L)
        .containsEntry(2L, 37L)
        .containsEntry(3L, 38L)
        .containsEntry(4L, 39L);
    // 40 copy requests stored in far fewer sink calls: the queue was drained as batches.
    assertThat(sink.applyCalls.get()).isLessThan(10);
    assertThat(sink.applyThreads).allMatch(name -> name.equals("test-replica-apply"));
  }

  @Test
  void aBatchWithABadRequestStillStoresTheGoodOnes() throws Exception {
    // Acks are held back on purpose here: a patient replicator, so none times out, that sends
    // every request at once (the peer's batching is under test, not the sender's).
    replicator.close();
    replicator = sendingEverythingAtOnce();
    sink.mustWait = true;
    sink.freeze = new CountDownLatch(1);
    long before = service.requestsReceived();
    CompletableFuture<Void> first = replicator.replicate("v", 5, "owner", images(1, 1));
    awaitReceived(before + 1);
    CompletableFuture<Void> good = replicator.replicate("v", 5, "owner", images(2, 2));
    CompletableFuture<Void> bad =
        replicator.replicate(
            "v",
            5,
            "owner",
            List.of(
                BlockImage.newBuilder()
                    .setBlock(-1)
                    .setSeq(3)
                    .setData(ByteString.copyFrom(new byte[4096]))
                    .build()));
    CompletableFuture<Void> alsoGood = replicator.replicate("v", 5, "owner", images(4, 4));
    awaitReceived(before + 4); // all queued behind the frozen apply: drained as one batch
    sink.freeze.countDown();
    sink.freeze = null;
    first.get(5, TimeUnit.SECONDS);
    good.get(5, TimeUnit.SECONDS);
    alsoGood.get(5, TimeUnit.SECONDS);
    assertThatThrownBy(() -> bad.get(5, TimeUnit.SECONDS))
        .cause()
        .isInstanceOf(ReplicaException.class)
        .hasMessageContaining("negative block");
    assertThat(sink.seqByBlock).containsEntry(2L, 2L).containsEntry(4L, 4L);
  }

  /**
   * Over mutual TLS as node "owner": a copy claiming another owner is refused, and its refusal is
   * acked in stream order behind a copy that waits on the apply pool, by that pool (never by the
   * transport thread while the pool acks too: two threads writing one stream corrupt it).
   */
  @Test
  void aRefusedCopyIsAckedInStreamOrderBehindCopiesThatWait(@TempDir Path certs) throws Exception {
    CertificateIssuer ca = CertificateIssuer.createCa(null, Validity.days(30));
    for (String node : List.of("owner", "replica")) {
      ca.writeIdentityDirectory(
          certs.resolve(node), ca.issueNode(node, List.of(), Validity.days(30)));
    }
    TlsDirectory replicaTls = TlsDirectory.open(certs.resolve("replica"));
    // Counts requests the service has handled (onNext returned): each is refused, acked or queued.
    CountDownLatch handled = new CountDownLatch(2);
    ServerInterceptor counting =
        new ServerInterceptor() {
          @Override
          public <Q, R> ServerCall.Listener<Q> interceptCall(
              ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next) {
            return new SimpleForwardingServerCallListener<>(next.startCall(call, headers)) {
              @Override
              public void onMessage(Q message) {
                super.onMessage(message);
                handled.countDown();
              }
            };
          }
        };
    NettyServerBuilder builder =
        NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
            .sslContext(GrpcTls.serverContext(replicaTls))
            .addService(new ReplicaGrpcService(sink, guard, applyPool))
            .intercept(counting)
            .intercept(Identities.interceptor(replicaTls));
    TransportThreadCalls.serve(builder, applyPool, ReplicaGrpcService.replicateMethod());
    Server tlsServer = builder.build().start();
    ManagedChannel asOwner =
        NettyChannelBuilder.forAddress("127.0.0.1", tlsServer.getPort())
            .sslContext(
                GrpcTls.peerClientContext(TlsDirectory.open(certs.resolve("owner")), "replica"))
            .build();
    PeerReplicator fromOwner = new PeerReplicator("replica", asOwner, timers, 10_000);
    try {
      sink.mustWait = true;
      sink.freeze = new CountDownLatch(1);
      List<String> ackOrder = new CopyOnWriteArrayList<>();
      CompletableFuture<Void> own = fromOwner.replicate("v", 5, "owner", images(1, 1));
      own.whenComplete((r, e) -> ackOrder.add("owner"));
      CompletableFuture<Void> forged = fromOwner.replicate("v", 5, "intruder", images(2, 2));
      forged.whenComplete((r, e) -> ackOrder.add("intruder"));
      // Both reached the service while the first one's apply is frozen.
      assertThat(handled.await(10, TimeUnit.SECONDS)).isTrue();
      sink.freeze.countDown();
      own.get(10, TimeUnit.SECONDS);
      assertThatThrownBy(() -> forged.get(10, TimeUnit.SECONDS))
          .cause()
          .isInstanceOf(ReplicaException.class)
          .hasMessageContaining("PERMISSION_DENIED")
          .hasMessageContaining("claiming owner");
      assertThat(ackOrder).containsExactly("owner", "intruder");
      assertThat(sink.seqByBlock).containsEntry(1L, 1L).doesNotContainKey(2L);
    } finally {
      fromOwner.close();
      asOwner.shutdownNow();
      tlsServer.shutdownNow();
    }
  }
}
