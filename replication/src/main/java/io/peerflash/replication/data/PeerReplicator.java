package io.peerflash.replication.data;

import io.grpc.Channel;
import io.grpc.Context;
import io.grpc.Status;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.grpc.stub.StreamObserver;
import io.peerflash.proto.v1.BlockImage;
import io.peerflash.proto.v1.ReplicaServiceGrpc;
import io.peerflash.proto.v1.ReplicateAck;
import io.peerflash.proto.v1.ReplicateRequest;
import io.peerflash.proto.v1.SyncCopiesRequest;
import io.peerflash.proto.v1.SyncCopiesResponse;
import io.peerflash.replication.fault.FaultPoints;
import io.peerflash.util.Time;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The owner's end of one replica node: a long-lived Replicate stream, pipelined batches matched to
 * acks by id. Every batch either is acked or fails within {@code ackTimeoutMs} (plus a tenth of it,
 * the sweep period): a dead, frozen or cut-off peer turns into a prompt, bounded failure the caller
 * can act on (the volume's on-peer-loss policy), never a hang. A broken stream is reopened on the
 * next batch.
 *
 * <p>Deadlines are checked by one periodic sweep, not a timer per batch: scheduling and cancelling
 * a timer for every write would cost each write a timer-queue operation and the timer thread a
 * wake-up per write.
 */
public final class PeerReplicator implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(PeerReplicator.class);

  private record Pending(CompletableFuture<Void> future, long generation, long sentNanos) {}

  /** Told how long each acked batch took from send to ack (the node's metrics). */
  public interface AckObserver {
    void acked(String peerId, long nanos);

    AckObserver NONE = (peerId, nanos) -> {};
  }

  private volatile AckObserver ackObserver = AckObserver.NONE;

  private final String peerId;
  private final String link;
  private final FaultPoints faults;
  private final ReplicaServiceGrpc.ReplicaServiceStub stub;
  private final long ackTimeoutMs;
  private final long connectTimeoutMs;
  private final Time time;
  private final ScheduledFuture<?> sweeper;
  private final AtomicLong nextBatchId = new AtomicLong(1);
  private final Map<Long, Pending> pending = new ConcurrentHashMap<>();
  private final Object lock = new Object();
  // Guarded by lock.
  private StreamObserver<ReplicateRequest> stream;
  private long generation;
  // When the current stream could first carry messages (connected, TLS handshake done), or 0 while
  // it is still connecting: a batch's ack deadline counts from then, not from a send that had to
  // wait for the connection.
  private long streamReadyNanos;
  private boolean closed;

  /** How long a new stream may take to connect when nothing else says ({@link #PeerReplicator}). */
  public static final long DEFAULT_CONNECT_TIMEOUT_MS = 5_000;

  /**
   * @param timers a shared, named scheduler that runs the ack-deadline sweep
   */
  public PeerReplicator(
      String peerId, Channel channel, ScheduledExecutorService timers, long ackTimeoutMs) {
    this(
        "",
        peerId,
        channel,
        timers,
        ackTimeoutMs,
        Math.max(ackTimeoutMs, DEFAULT_CONNECT_TIMEOUT_MS),
        new FaultPoints(),
        Time.SYSTEM);
  }

  /**
   * @param selfId this node's id (names the link at fault point {@code replicate.send})
   * @param timers a shared, named scheduler that runs the ack-deadline sweep
   * @param ackTimeoutMs a batch not acked this long after its stream could carry it fails, and the
   *     stream with it
   * @param connectTimeoutMs a new stream that has not connected (TCP and TLS handshake) this long
   *     after a batch was sent on it fails that batch and the stream
   * @param time the clock ack deadlines and the replication lag are measured on
   */
  public PeerReplicator(
      String selfId,
      String peerId,
      Channel channel,
      ScheduledExecutorService timers,
      long ackTimeoutMs,
      long connectTimeoutMs,
      FaultPoints faults,
      Time time) {
    this.link = selfId + ">" + peerId;
    this.faults = faults;
    this.peerId = peerId;
    this.stub = ReplicaServiceGrpc.newStub(channel);
    this.ackTimeoutMs = ackTimeoutMs;
    this.connectTimeoutMs = connectTimeoutMs;
    this.time = time;
    long periodMs = Math.max(1, ackTimeoutMs / 10);
    this.sweeper =
        timers.scheduleWithFixedDelay(this::sweep, periodMs, periodMs, TimeUnit.MILLISECONDS);
  }

  public void setAckObserver(AckObserver observer) {
    this.ackObserver = observer;
  }

  public String peerId() {
    return peerId;
  }

  /**
   * Sends one batch of copies. The images' data is not copied: leave it unchanged until the future
   * completes. The future fails with a {@link ReplicaException}: FAILED_PRECONDITION when the peer
   * refuses the epoch, UNAVAILABLE when the peer is unreachable or does not ack in time.
   */
  public CompletableFuture<Void> replicate(
      String volume, long epoch, String ownerId, List<BlockImage> blocks) {
    return send(request(volume, epoch, ownerId).addAllBlocks(blocks));
  }

  /**
   * Tells the peer it may drop copies up to these sequences. On the copies' stream, so it is
   * applied after every copy sent before it; acked like a copy.
   */
  public CompletableFuture<Void> release(
      String volume, long epoch, String ownerId, long[] blocks, long[] seqs) {
    ReplicateRequest.Builder req = request(volume, epoch, ownerId);
    for (int i = 0; i < blocks.length; i++) {
      req.addReleasedBlocks(blocks[i]).addReleasedSeqs(seqs[i]);
    }
    return send(req);
  }

  /**
   * Re-protection begins: the peer drops every copy of the volume below {@code belowSeq} before
   * anything sent after this.
   */
  public CompletableFuture<Void> reset(String volume, long epoch, String ownerId, long belowSeq) {
    return send(request(volume, epoch, ownerId).setResetBelowSeq(belowSeq));
  }

  /**
   * Asks the peer to make every copy of the volume it has acknowledged durable (SyncCopies), for a
   * FLUSH on this node. A unary call on the same channel as the copies' stream, not on the stream:
   * it covers every batch whose ack this node received before the call, because the peer stores a
   * copy before it acks it and starts the sync only after the request arrived (so a sync does not
   * hold up the copies queued behind it on the stream, nor counts against their ack deadline).
   * Bounded by the connect timeout plus the ack timeout.
   *
   * @return completes once the peer synced; fails with a {@link ReplicaException}:
   *     PERMISSION_DENIED or FAILED_PRECONDITION when the peer refuses this node as owner at {@code
   *     epoch}, UNAVAILABLE or DEADLINE_EXCEEDED when it cannot be reached or its sync failed or
   *     took too long
   */
  public CompletableFuture<Void> syncCopies(String volume, long epoch, String ownerId) {
    CompletableFuture<Void> synced = new CompletableFuture<>();
    SyncCopiesRequest req =
        SyncCopiesRequest.newBuilder()
            .setVolume(volume)
            .setEpoch(epoch)
            .setOwnerId(ownerId)
            .build();
    try {
      stub.withDeadlineAfter(connectTimeoutMs + ackTimeoutMs, TimeUnit.MILLISECONDS)
          .syncCopies(
              req,
              new StreamObserver<>() {
                @Override
                public void onNext(SyncCopiesResponse value) {}

                @Override
                public void onError(Throwable t) {
                  synced.completeExceptionally(
                      ReplicaStatuses.fromStatus(
                          Status.fromThrowable(t).augmentDescription("sync of replica " + peerId)));
                }

                @Override
                public void onCompleted() {
                  synced.complete(null);
                }
              });
    } catch (RuntimeException e) {
      synced.completeExceptionally(unavailable("sync of replica " + peerId + ": " + e));
    }
    return synced;
  }

  private static ReplicateRequest.Builder request(String volume, long epoch, String ownerId) {
    return ReplicateRequest.newBuilder().setVolume(volume).setEpoch(epoch).setOwnerId(ownerId);
  }

  private CompletableFuture<Void> send(ReplicateRequest.Builder builder) {
    long id = nextBatchId.getAndIncrement();
    CompletableFuture<Void> future = new CompletableFuture<>();
    ReplicateRequest req = builder.setBatchId(id).build();
    long gen;
    synchronized (lock) {
      if (closed) {
        future.completeExceptionally(unavailable("replicator to " + peerId + " is closed"));
        return future;
      }
      if (stream == null) {
        generation++;
        streamReadyNanos = 0;
        // The stream outlives the call that opens it (often a client's Write on this node):
        // detach it from that call's context, whose cancellation would otherwise end it.
        Context previous = Context.ROOT.attach();
        try {
          stream = stub.replicate(new Acks(generation));
        } finally {
          Context.ROOT.detach(previous);
        }
      }
      gen = generation;
      pending.put(id, new Pending(future, gen, time.nanoTime()));
    }
    try {
      // In flight from here: an injected delay counts as lag, and one past the ack timeout fails
      // the batch like a slow network would.
      faults.hit(FaultPoints.REPLICATE_SEND, link);
    } catch (FaultPoints.Dropped e) {
      return future; // lost on the wire: the deadline sweep fails it
    }
    synchronized (lock) {
      if (gen != generation || stream == null || !pending.containsKey(id)) {
        return future; // the stream failed meanwhile, and this batch with it
      }
      try {
        stream.onNext(req);
      } catch (RuntimeException e) {
        failStream(generation, Status.UNAVAILABLE.withDescription(e.toString()));
      }
    }
    return future;
  }

  /** Batches sent and not yet acked. */
  public int inFlight() {
    return pending.size();
  }

  /** Age of the oldest batch not yet acked (the replication lag), 0 when none. */
  public long oldestInFlightMs() {
    long oldest = Long.MAX_VALUE;
    for (Pending p : pending.values()) {
      oldest = Math.min(oldest, p.sentNanos());
    }
    return oldest == Long.MAX_VALUE ? 0 : TimeUnit.NANOSECONDS.toMillis(time.nanoTime() - oldest);
  }

  /**
   * Fails the stream if a batch on it is past its deadline; run by the periodic sweep. A batch's
   * ack deadline counts from its send or, when it was sent before its stream connected, from the
   * moment it did: a first connection (a TLS handshake with a peer that has just started) is not a
   * peer that fails to ack. A stream that does not connect at all gets the connect timeout.
   */
  void sweep() {
    long now = time.nanoTime();
    long ackTimeoutNanos = TimeUnit.MILLISECONDS.toNanos(ackTimeoutMs);
    long connectTimeoutNanos = TimeUnit.MILLISECONDS.toNanos(connectTimeoutMs);
    long currentGen;
    long readyNanos;
    synchronized (lock) {
      currentGen = generation;
      readyNanos = streamReadyNanos;
    }
    for (Pending p : pending.values()) {
      boolean onCurrent = p.generation() == currentGen;
      if (onCurrent && readyNanos == 0) {
        if (now - p.sentNanos() > connectTimeoutNanos) {
          failStream(
              p.generation(),
              Status.UNAVAILABLE.withDescription(
                  "peer "
                      + peerId
                      + " did not connect within "
                      + connectTimeoutMs
                      + " ms (replication-connect-timeout-ms)"));
          return;
        }
        continue;
      }
      long from = onCurrent ? Math.max(p.sentNanos(), readyNanos) : p.sentNanos();
      if (now - from > ackTimeoutNanos) {
        // A peer that misses one ack deadline is presumed gone: fail everything on this stream
        // now, and start afresh next time.
        failStream(
            p.generation(),
            Status.UNAVAILABLE.withDescription(
                "peer " + peerId + " did not ack within " + ackTimeoutMs + " ms"));
        return;
      }
    }
  }

  /** Whether the current stream has connected (for tests that drive the clock). */
  boolean streamReady() {
    synchronized (lock) {
      return stream != null && streamReadyNanos != 0;
    }
  }

  private void markStreamReady(long gen) {
    synchronized (lock) {
      if (gen == generation && streamReadyNanos == 0) {
        streamReadyNanos = time.nanoTime();
      }
    }
  }

  private void failStream(long gen, Status status) {
    StreamObserver<ReplicateRequest> toCancel = null;
    synchronized (lock) {
      if (gen == generation && stream != null) {
        toCancel = stream;
        stream = null;
      }
    }
    // Fail the batches first, with the real reason: cancelling the call below reports a
    // generic CANCELLED back through Acks.onError.
    for (Map.Entry<Long, Pending> e : pending.entrySet()) {
      if (e.getValue().generation() == gen && pending.remove(e.getKey(), e.getValue())) {
        e.getValue().future().completeExceptionally(ReplicaStatuses.fromStatus(status));
      }
    }
    if (toCancel != null) {
      try {
        toCancel.onError(status.asRuntimeException());
      } catch (RuntimeException ignored) {
        // already closed
      }
    }
  }

  private static ReplicaException unavailable(String why) {
    return new ReplicaException(ReplicaException.Code.UNAVAILABLE, why);
  }

  private final class Acks implements ClientResponseObserver<ReplicateRequest, ReplicateAck> {
    private final long gen;
    private boolean acked; // only gRPC's callbacks of this stream touch it, one at a time

    Acks(long gen) {
      this.gen = gen;
    }

    @Override
    public void beforeStart(ClientCallStreamObserver<ReplicateRequest> requests) {
      // Ready once the transport carries the stream: connected, TLS handshake done.
      requests.setOnReadyHandler(() -> markStreamReady(gen));
    }

    @Override
    public void onNext(ReplicateAck ack) {
      if (!acked) {
        acked = true;
        markStreamReady(gen); // an ack proves it too, should the ready callback come late
      }
      Pending p = pending.remove(ack.getBatchId());
      if (p == null) {
        return; // timed out already
      }
      if (ack.getCode() == 0) {
        ackObserver.acked(peerId, time.nanoTime() - p.sentNanos());
        p.future().complete(null);
      } else {
        p.future().completeExceptionally(ReplicaStatuses.fromCode(ack.getCode(), ack.getMessage()));
      }
    }

    @Override
    public void onError(Throwable t) {
      failStream(gen, Status.fromThrowable(t).augmentDescription("replica " + peerId));
    }

    @Override
    public void onCompleted() {
      failStream(
          gen, Status.UNAVAILABLE.withDescription("replica " + peerId + " ended the stream"));
    }
  }

  @Override
  public void close() {
    sweeper.cancel(false);
    long gen;
    synchronized (lock) {
      closed = true;
      gen = generation;
    }
    failStream(gen, Status.UNAVAILABLE.withDescription("replicator to " + peerId + " closed"));
  }
}
