package io.peerflash.client;

import com.google.protobuf.ByteString;
import com.google.protobuf.UnsafeByteOperations;
import io.grpc.Status;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.peerflash.proto.v1.VolumeServiceGrpc;
import io.peerflash.proto.v1.WriteRequest;
import io.peerflash.proto.v1.WriteResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;

/**
 * Pipelined writes over one WriteStream call. Each {@link #write} returns at once with a future
 * unless {@code maxInFlight} writes are unanswered, in which case it blocks the caller until one
 * is: that bound is what keeps a fast producer from queueing unbounded data in gRPC buffers.
 *
 * <p>Futures complete on gRPC threads, so callbacks attached with the non-async {@code then*}
 * methods must be quick. Data passed to {@code write} is not copied and must not change until its
 * future completes.
 *
 * <p>Thread-safe: several threads may write through one session.
 *
 * <p>A session is bound to the one node it was opened to: it neither follows redirects nor fails
 * over. When that node does not own the volume, the write's future (or, if the node ends the
 * stream, every outstanding future) fails with FAILED_PRECONDITION, and {@link
 * PeerFlashException#owner()} names the owner when the node said; when the stream breaks (node dead
 * or shutting down), every outstanding and later write fails with the stream's code (UNAVAILABLE,
 * CANCELLED...). Writes are idempotent by (volume, offset, data), so the caller can resend failed
 * ones with {@link PeerFlashClient#write(String, long, ByteString)}, which follows redirects and
 * fails over, and open a new session; {@link PeerFlashClient#writeWithRetry} does exactly that.
 */
public final class WriteStreamSession implements AutoCloseable {
  private final int maxInFlight;
  private final Semaphore slots;
  private final Duration closeTimeout;
  private final CountDownLatch streamEnded = new CountDownLatch(1);

  private final Object lock = new Object();
  // Guarded by lock.
  private final Map<Long, CompletableFuture<Void>> outstanding = new HashMap<>();
  private long nextRequestId = 1;
  private PeerFlashException failure;
  private boolean closed;

  // A StreamObserver is not thread-safe, so sends are serialized. This is a separate lock from
  // `lock` because an in-process transport may deliver a response on the sending thread, and the
  // response path must be able to take `lock` without waiting for another sender.
  private final Object sendLock = new Object();
  private ClientCallStreamObserver<WriteRequest> requests;

  private final java.util.concurrent.atomic.LongAdder wentThrough =
      new java.util.concurrent.atomic.LongAdder();

  /**
   * Writes of this session that went through to shared storage before their ack because a replica
   * could not take their copy.
   */
  public long wentThrough() {
    return wentThrough.sum();
  }

  WriteStreamSession(
      VolumeServiceGrpc.VolumeServiceStub stub, int maxInFlight, Duration closeTimeout) {
    if (maxInFlight < 1) {
      throw new IllegalArgumentException("maxInFlight must be at least 1, got " + maxInFlight);
    }
    this.maxInFlight = maxInFlight;
    this.slots = new Semaphore(maxInFlight);
    this.closeTimeout = closeTimeout;
    stub.writeStream(new Responses());
  }

  /** Writes {@code data} (not copied: leave it unchanged until the future completes). */
  public CompletableFuture<Void> write(String volume, long offset, byte[] data) {
    return write(volume, offset, UnsafeByteOperations.unsafeWrap(data));
  }

  /**
   * Sends one write, blocking while {@code maxInFlight} writes are unanswered. The future fails
   * with {@link PeerFlashException} when the server rejects the write or the stream breaks.
   *
   * @throws PeerFlashException with CANCELLED when interrupted while waiting for a slot
   * @throws IllegalStateException after {@link #close()}
   */
  public CompletableFuture<Void> write(String volume, long offset, ByteString data) {
    Objects.requireNonNull(volume, "volume");
    Objects.requireNonNull(data, "data");
    synchronized (lock) {
      if (closed) {
        throw new IllegalStateException("write stream session is closed");
      }
    }
    try {
      slots.acquire();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new PeerFlashException(
          Status.CANCELLED.withDescription("interrupted while waiting for a free write slot"));
    }
    CompletableFuture<Void> result = new CompletableFuture<>();
    long requestId;
    synchronized (lock) {
      if (failure != null) {
        slots.release();
        return CompletableFuture.failedFuture(failure);
      }
      if (closed) {
        slots.release();
        throw new IllegalStateException("write stream session is closed");
      }
      requestId = nextRequestId++;
      // Registered before sending so that a response, or a stream failure, can always find it.
      outstanding.put(requestId, result);
    }
    WriteRequest request =
        WriteRequest.newBuilder()
            .setVolume(volume)
            .setOffset(offset)
            .setData(data)
            .setRequestId(requestId)
            .build();
    try {
      synchronized (sendLock) {
        requests.onNext(request);
      }
    } catch (RuntimeException e) {
      // The call was cancelled or closed under us; the stream's own failure may not have arrived.
      CompletableFuture<Void> mine;
      synchronized (lock) {
        mine = outstanding.remove(requestId);
      }
      if (mine != null) {
        slots.release();
        mine.completeExceptionally(PeerFlashException.from(e));
      }
    }
    return result;
  }

  /** Writes sent and not yet answered. */
  public int inFlight() {
    synchronized (lock) {
      return outstanding.size();
    }
  }

  /**
   * Waits for every outstanding write to be answered, then ends the stream. Gives up after the
   * client's deadline, cancelling the stream, which fails the writes still unanswered. Never throws
   * for failed writes: those are reported through their futures.
   */
  @Override
  public void close() {
    synchronized (lock) {
      if (closed) {
        return;
      }
      closed = true;
    }
    long deadlineNanos = closeTimeout == null ? 0 : System.nanoTime() + closeTimeout.toNanos();
    try {
      // Holding every slot means no write is outstanding or about to be sent.
      if (closeTimeout == null) {
        slots.acquire(maxInFlight);
      } else if (!slots.tryAcquire(maxInFlight, remaining(deadlineNanos), TimeUnit.NANOSECONDS)) {
        cancel("write stream close timed out after " + closeTimeout.toMillis() + " ms");
        return;
      }
      slots.release(maxInFlight);
      boolean broken;
      synchronized (lock) {
        broken = failure != null;
      }
      if (!broken) {
        synchronized (sendLock) {
          requests.onCompleted();
        }
      }
      if (closeTimeout == null) {
        streamEnded.await();
      } else if (!streamEnded.await(remaining(deadlineNanos), TimeUnit.NANOSECONDS)) {
        cancel("server did not end the write stream within " + closeTimeout.toMillis() + " ms");
      }
    } catch (InterruptedException e) {
      cancel("interrupted while closing the write stream");
      Thread.currentThread().interrupt();
    } catch (RuntimeException e) {
      // onCompleted on a call that has just failed; its failure is reported through the futures.
      failAll(PeerFlashException.from(e));
    }
  }

  private static long remaining(long deadlineNanos) {
    return Math.max(0, deadlineNanos - System.nanoTime());
  }

  private void cancel(String why) {
    PeerFlashException e = new PeerFlashException(Status.CANCELLED.withDescription(why));
    // Fail the futures now rather than when the cancellation comes back from the transport, so
    // they are all complete by the time close() returns.
    failAll(e);
    synchronized (sendLock) {
      requests.cancel(why, null);
    }
  }

  private void failAll(PeerFlashException e) {
    List<CompletableFuture<Void>> pending;
    synchronized (lock) {
      if (failure == null) {
        failure = e;
      }
      pending = new ArrayList<>(outstanding.values());
      outstanding.clear();
    }
    for (CompletableFuture<Void> f : pending) {
      slots.release();
      f.completeExceptionally(e);
    }
  }

  private final class Responses implements ClientResponseObserver<WriteRequest, WriteResponse> {
    @Override
    public void beforeStart(ClientCallStreamObserver<WriteRequest> requestStream) {
      requests = requestStream;
    }

    @Override
    public void onNext(WriteResponse response) {
      CompletableFuture<Void> f;
      synchronized (lock) {
        f = outstanding.remove(response.getRequestId());
      }
      if (f == null) {
        return; // Already failed locally (cancel) or not ours; nothing is waiting for it.
      }
      // Free the slot before completing: a callback may write again on this very thread.
      slots.release();
      if (response.getCode() == Status.Code.OK.value()) {
        if (response.getWentThrough()) {
          wentThrough.increment();
        }
        f.complete(null);
      } else {
        f.completeExceptionally(
            PeerFlashException.fromCode(response.getCode(), response.getMessage()));
      }
    }

    @Override
    public void onError(Throwable t) {
      failAll(PeerFlashException.from(t));
      streamEnded.countDown();
    }

    @Override
    public void onCompleted() {
      failAll(
          new PeerFlashException(
              Status.UNAVAILABLE.withDescription("server ended the write stream")));
      streamEnded.countDown();
    }
  }
}
