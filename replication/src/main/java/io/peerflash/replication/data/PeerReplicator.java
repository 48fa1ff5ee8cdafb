package io.peerflash.replication.data;

import io.grpc.Channel;
import io.grpc.Context;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import io.peerflash.proto.v1.BlockImage;
import io.peerflash.proto.v1.ReplicaServiceGrpc;
import io.peerflash.proto.v1.ReplicateAck;
import io.peerflash.proto.v1.ReplicateRequest;
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

  private final String peerId;
  private final String link;
  private final FaultPoints faults;
  private final ReplicaServiceGrpc.ReplicaServiceStub stub;
  private final long ackTimeoutMs;
  private final Time time;
  private final ScheduledFuture<?> sweeper;
  private final AtomicLong nextBatchId = new AtomicLong(1);
  private final Map<Long, Pending> pending = new ConcurrentHashMap<>();
  private final Object lock = new Object();
  // Guarded by lock.
  private StreamObserver<ReplicateRequest> stream;
  private long generation;
  private boolean closed;

  /**
   * @param timers a shared, named scheduler that runs the ack-deadline sweep
   */
  public PeerReplicator(
      String peerId, Channel channel, ScheduledExecutorService timers, long ackTimeoutMs) {
    this("", peerId, channel, timers, ackTimeoutMs, new FaultPoints(), Time.SYSTEM);
  }

  /**
   * @param selfId this node's id (names the link at fault point {@code replicate.send})
   * @param timers a shared, named scheduler that runs the ack-deadline sweep
   * @param time the clock ack deadlines and the replication lag are measured on
   */
  public PeerReplicator(
      String selfId,
      String peerId,
      Channel channel,
      ScheduledExecutorService timers,
      long ackTimeoutMs,
      FaultPoints faults,
      Time time) {
    this.link = selfId + ">" + peerId;
    this.faults = faults;
    this.peerId = peerId;
    this.stub = ReplicaServiceGrpc.newStub(channel);
    this.ackTimeoutMs = ackTimeoutMs;
    this.time = time;
    long periodMs = Math.max(1, ackTimeoutMs / 10);
    this.sweeper =
        timers.scheduleWithFixedDelay(this::sweep, periodMs, periodMs, TimeUnit.MILLISECONDS);
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

  /** Fails the stream if a batch on it is past its ack deadline; run by the periodic sweep. */
  void sweep() {
    long now = time.nanoTime();
    long timeoutNanos = TimeUnit.MILLISECONDS.toNanos(ackTimeoutMs);
    for (Pending p : pending.values()) {
      if (now - p.sentNanos() > timeoutNanos) {
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
        e.getValue().future().completeExceptionally(new ReplicaException(status));
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
    return new ReplicaException(Status.UNAVAILABLE.withDescription(why));
  }

  private final class Acks implements StreamObserver<ReplicateAck> {
    private final long gen;

    Acks(long gen) {
      this.gen = gen;
    }

    @Override
    public void onNext(ReplicateAck ack) {
      Pending p = pending.remove(ack.getBatchId());
      if (p == null) {
        return; // timed out already
      }
      if (ack.getCode() == 0) {
        p.future().complete(null);
      } else {
        p.future()
            .completeExceptionally(
                new ReplicaException(
                    Status.fromCodeValue(ack.getCode()).withDescription(ack.getMessage())));
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
