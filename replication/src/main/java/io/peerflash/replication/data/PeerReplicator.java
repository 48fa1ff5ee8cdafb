package io.peerflash.replication.data;

import io.grpc.Channel;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import io.peerflash.proto.v1.BlockImage;
import io.peerflash.proto.v1.ReplicaServiceGrpc;
import io.peerflash.proto.v1.ReplicateAck;
import io.peerflash.proto.v1.ReplicateRequest;
import io.peerflash.proto.v1.SyncCopiesRequest;
import io.peerflash.proto.v1.SyncCopiesResponse;
import io.peerflash.replication.fault.FaultPoints;
import io.peerflash.util.Time;
import java.util.ArrayDeque;
import java.util.ArrayList;
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
 * <p>At most {@link #MAX_IN_FLIGHT} requests are on the wire at once. Copies sent while that many
 * wait for their acks queue up, and consecutive copies of one volume, epoch and owner travel as one
 * request (up to {@link #MAX_JOINED_BLOCKS} blocks): under load the peer then deframes, stores (one
 * index commit) and acks once for many writes, where it did so for every write. A lone write never
 * waits: with fewer requests in flight it goes out at once. Requests leave in the order they were
 * sent, so a release or reset still follows every copy sent before it.
 *
 * <p>Deadlines are checked by one periodic sweep, not a timer per batch: scheduling and cancelling
 * a timer for every write would cost each write a timer-queue operation and the timer thread a
 * wake-up per write.
 */
public final class PeerReplicator implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(PeerReplicator.class);

  /**
   * @param queuedNanos when its first copy was handed over (the replication lag counts from then)
   * @param sentNanos when it went out (its ack deadline counts from then)
   */
  private record Pending(
      CompletableFuture<Void> future, long generation, long queuedNanos, long sentNanos) {}

  /** Requests on the wire without an ack, at most; further requests wait in order. */
  public static final int MAX_IN_FLIGHT = 2;

  /** Blocks one request carries at most when copies of several writes join it. */
  static final int MAX_JOINED_BLOCKS = 32;

  /** A request not yet sent, which later copies of the same volume, epoch and owner may join. */
  private static final class Waiting {
    final ReplicateRequest.Builder request;
    final CompletableFuture<Void> future = new CompletableFuture<>();
    final long queuedNanos;
    final boolean joinable;

    Waiting(ReplicateRequest.Builder request, long queuedNanos, boolean joinable) {
      this.request = request;
      this.queuedNanos = queuedNanos;
      this.joinable = joinable;
    }

    /** Joins {@code copies} to this request if they may travel with it; their future or null. */
    CompletableFuture<Void> join(ReplicateRequest.Builder copies) {
      if (!joinable
          || request.getBlocksCount() + copies.getBlocksCount() > MAX_JOINED_BLOCKS
          || request.getEpoch() != copies.getEpoch()
          || !request.getVolume().equals(copies.getVolume())
          || !request.getOwnerId().equals(copies.getOwnerId())) {
        return null;
      }
      request.addAllBlocks(copies.getBlocksList());
      CompletableFuture<Void> joined = new CompletableFuture<>();
      future.whenComplete(
          (ok, failure) -> {
            if (failure == null) {
              joined.complete(null);
            } else {
              joined.completeExceptionally(failure);
            }
          });
      return joined;
    }
  }

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
  private final CopyTransport copies;
  private final long ackTimeoutMs;
  private final long connectTimeoutMs;
  private final Time time;
  private final ScheduledFuture<?> sweeper;
  private final AtomicLong nextBatchId = new AtomicLong(1);
  private final int maxInFlight;
  private final Map<Long, Pending> pending = new ConcurrentHashMap<>();
  private final Object lock = new Object();
  // Guarded by lock.
  private CopyTransport.Stream stream;
  private long generation;
  private final ArrayDeque<Waiting> waiting = new ArrayDeque<>();
  // Whether a thread is sending the waiting requests: one at a time, so they leave in order.
  private boolean draining;
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
    this(
        selfId,
        peerId,
        channel,
        new GrpcCopyTransport(peerId, channel),
        timers,
        ackTimeoutMs,
        connectTimeoutMs,
        faults,
        time);
  }

  /**
   * Copies on {@code copies} (the replica link, or the Replicate stream); syncs on {@code channel}.
   */
  public PeerReplicator(
      String selfId,
      String peerId,
      Channel channel,
      CopyTransport copies,
      ScheduledExecutorService timers,
      long ackTimeoutMs,
      long connectTimeoutMs,
      FaultPoints faults,
      Time time) {
    this(
        selfId,
        peerId,
        channel,
        timers,
        ackTimeoutMs,
        connectTimeoutMs,
        faults,
        time,
        copies,
        MAX_IN_FLIGHT);
  }

  /**
   * @param maxInFlight requests on the wire without an ack, at most ({@link #MAX_IN_FLIGHT}; a test
   *     of the peer's own batching sends every request at once)
   */
  PeerReplicator(
      String selfId,
      String peerId,
      Channel channel,
      ScheduledExecutorService timers,
      long ackTimeoutMs,
      long connectTimeoutMs,
      FaultPoints faults,
      Time time,
      CopyTransport copies,
      int maxInFlight) {
    this.maxInFlight = maxInFlight;
    this.copies = copies;
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
    return send(request(volume, epoch, ownerId).addAllBlocks(blocks), true);
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
    return send(req, false);
  }

  /**
   * Re-protection begins: the peer drops every copy of the volume below {@code belowSeq} before
   * anything sent after this.
   */
  public CompletableFuture<Void> reset(String volume, long epoch, String ownerId, long belowSeq) {
    return send(request(volume, epoch, ownerId).setResetBelowSeq(belowSeq), false);
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

  /**
   * Queues a request behind those waiting (joining the last one when {@code joinable} and it
   * allows) and sends what may go now.
   */
  private CompletableFuture<Void> send(ReplicateRequest.Builder builder, boolean joinable) {
    CompletableFuture<Void> future;
    synchronized (lock) {
      if (closed) {
        return CompletableFuture.failedFuture(
            unavailable("replicator to " + peerId + " is closed"));
      }
      Waiting last = joinable ? waiting.peekLast() : null;
      future = last == null ? null : last.join(builder);
      if (future == null) {
        Waiting w = new Waiting(builder, time.nanoTime(), joinable);
        waiting.add(w);
        future = w.future;
      }
      if (draining) {
        return future; // the thread sending now sends this too, in its turn
      }
      draining = true;
    }
    drain();
    return future;
  }

  /**
   * Sends waiting requests, in order, while fewer than {@code maxInFlight} are unacked; run by one
   * thread at a time (the one that set {@link #draining}), which clears the flag when it stops.
   */
  private void drain() {
    while (true) {
      Waiting next;
      synchronized (lock) {
        if (waiting.isEmpty() || (stream != null && pending.size() >= maxInFlight)) {
          draining = false;
          return;
        }
        next = waiting.poll();
      }
      transmit(next);
    }
  }

  /** An ack or a failure made room on the wire: sends what waits, unless another thread does. */
  private void sendWaiting() {
    synchronized (lock) {
      if (draining || waiting.isEmpty()) {
        return;
      }
      draining = true;
    }
    drain();
  }

  private void transmit(Waiting w) {
    long id = nextBatchId.getAndIncrement();
    ReplicateRequest req = w.request.setBatchId(id).build();
    long gen;
    synchronized (lock) {
      if (closed) {
        w.future.completeExceptionally(unavailable("replicator to " + peerId + " is closed"));
        return;
      }
      if (stream == null) {
        openStream();
      }
      gen = generation;
      pending.put(id, new Pending(w.future, gen, w.queuedNanos, time.nanoTime()));
    }
    try {
      // In flight from here: an injected delay counts as lag, and one past the ack timeout fails
      // the batch like a slow network would.
      faults.hit(FaultPoints.REPLICATE_SEND, link);
    } catch (FaultPoints.Dropped e) {
      return; // lost on the wire: the deadline sweep fails it
    }
    synchronized (lock) {
      if (gen != generation || stream == null || !pending.containsKey(id)) {
        return; // the stream failed meanwhile, and this batch with it
      }
      try {
        stream.send(req);
      } catch (RuntimeException e) {
        failStream(generation, Status.UNAVAILABLE.withDescription(e.toString()));
      }
    }
  }

  /**
   * Opens a stream ahead of the first batch if none is open, so that its connection (for the
   * replica link: the port lookup, TCP and TLS handshakes and the hello) is not paid by the first
   * write that needs this peer. Sends nothing; a stream that fails meanwhile is opened again by the
   * next batch, as always, and one that never connects costs a batch only the connect timeout that
   * it would have cost anyway.
   */
  public void connect() {
    synchronized (lock) {
      if (!closed && stream == null) {
        openStream();
      }
    }
  }

  // Guarded by lock.
  private void openStream() {
    generation++;
    streamReadyNanos = 0;
    stream = copies.open(new Acks(generation));
  }

  /** Batches sent and not yet acked. */
  public int inFlight() {
    return pending.size();
  }

  /** Age of the oldest copy not yet acked, sent or waiting (the replication lag), 0 when none. */
  public long oldestInFlightMs() {
    long oldest = Long.MAX_VALUE;
    for (Pending p : pending.values()) {
      oldest = Math.min(oldest, p.queuedNanos());
    }
    synchronized (lock) {
      Waiting first = waiting.peekFirst();
      if (first != null) {
        oldest = Math.min(oldest, first.queuedNanos);
      }
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
    CopyTransport.Stream toCancel = null;
    List<Waiting> unsent = List.of();
    synchronized (lock) {
      if (gen == generation && stream != null) {
        toCancel = stream;
        stream = null;
      }
      if (gen == generation && !waiting.isEmpty()) {
        // They would have gone out on this stream: they fail with it, as if sent.
        unsent = new ArrayList<>(waiting);
        waiting.clear();
      }
    }
    for (Waiting w : unsent) {
      w.future.completeExceptionally(ReplicaStatuses.fromStatus(status));
    }
    // Fail the batches first, with the real reason: cancelling the call below reports a
    // generic CANCELLED back through Acks.onError.
    for (Map.Entry<Long, Pending> e : pending.entrySet()) {
      if (e.getValue().generation() == gen && pending.remove(e.getKey(), e.getValue())) {
        e.getValue().future().completeExceptionally(ReplicaStatuses.fromStatus(status));
      }
    }
    if (toCancel != null) {
      toCancel.cancel(status);
    }
  }

  private static ReplicaException unavailable(String why) {
    return new ReplicaException(ReplicaException.Code.UNAVAILABLE, why);
  }

  private final class Acks implements CopyTransport.Listener {
    private final long gen;
    private boolean acked; // only the transport's callbacks of this stream touch it, one at a time

    Acks(long gen) {
      this.gen = gen;
    }

    @Override
    public void ready() {
      markStreamReady(gen);
    }

    @Override
    public void ack(ReplicateAck ack) {
      if (!acked) {
        acked = true;
        markStreamReady(gen); // an ack proves it too, should the ready callback come late
      }
      Pending p = pending.remove(ack.getBatchId());
      if (p == null) {
        return; // timed out already
      }
      // The next requests go out before this one's writers are answered.
      sendWaiting();
      if (ack.getCode() == 0) {
        ackObserver.acked(peerId, time.nanoTime() - p.sentNanos());
        p.future().complete(null);
      } else {
        p.future().completeExceptionally(ReplicaStatuses.fromCode(ack.getCode(), ack.getMessage()));
      }
    }

    @Override
    public void failed(Status why) {
      failStream(gen, why);
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
