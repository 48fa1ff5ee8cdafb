package io.peerflash.node.nbd;

import com.google.common.util.concurrent.Futures;
import com.google.common.util.concurrent.ListenableFuture;
import com.google.common.util.concurrent.MoreExecutors;
import com.google.protobuf.UnsafeByteOperations;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.peerflash.node.cluster.ClusterRouting;
import io.peerflash.node.cluster.PeerChannels;
import io.peerflash.node.engine.CacheException;
import io.peerflash.proto.v1.ForwardedFlushRequest;
import io.peerflash.proto.v1.ForwardedIoServiceGrpc;
import io.peerflash.proto.v1.ForwardedIoServiceGrpc.ForwardedIoServiceFutureStub;
import io.peerflash.proto.v1.ForwardedReadRequest;
import io.peerflash.proto.v1.ForwardedWriteRequest;
import io.peerflash.proto.v1.ForwardedZeroRequest;
import io.peerflash.util.NamedThreadFactory;
import io.peerflash.util.Time;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The volumes of a cluster, every one served on every node: names and sizes from the cluster map;
 * the I/O of a volume this node owns goes to its own engine, that of any other volume is forwarded
 * to its owner over the peer channel ({@link ForwardedIoGrpcService} there). Where a call goes is
 * decided from the map for every attempt, so it follows a move or a failover.
 *
 * <p>A call that meets a volume without a serving owner (the owner died and a replica is taking
 * over, a move, a node fenced for a moment, a peer connection refused) is retried, re-reading the
 * map each time, until {@code giveUpMs} after it began: the NBD client sees a pause, not an error.
 * A forwarded call in flight to a node the map no longer names the volume's live owner is cancelled
 * and retried at once (a dead owner's connection may never answer). An OFFLINE volume (no copy can
 * take over) fails at once. A call is answered success only when one attempt succeeded: a write
 * whose attempt was cut off by the deadline fails (EIO), whether or not the owner applied it.
 * Retrying a write is safe because the client has not been answered: NBD allows the data of a write
 * in flight to land any time before its reply.
 */
final class RoutedVolumeIo implements VolumeIo {
  private static final Logger log = LoggerFactory.getLogger(RoutedVolumeIo.class);

  /** How often forwarded calls in flight are checked against the map's owner. */
  static final long OWNER_CHECK_MS = 100;

  /** Longest wait between attempts. */
  static final long MAX_BACKOFF_MS = 200;

  /** How often a volume's wait for its owner is logged at most. */
  private static final long LOG_EVERY_MS = 5_000;

  private static final Metadata.Key<String> OWNER_KEY =
      Metadata.Key.of(ClusterRouting.OWNER_TRAILER, Metadata.ASCII_STRING_MARSHALLER);
  private static final Metadata.Key<String> VOLUME_STATE_KEY =
      Metadata.Key.of(ClusterRouting.VOLUME_STATE_TRAILER, Metadata.ASCII_STRING_MARSHALLER);

  /** What every connection's view shares. */
  private static final class Shared {
    final ClusterRouting cluster;
    final PeerChannels peers;
    final EngineVolumeIo local;
    final long giveUpMs;
    // Deadlines are measured on the node's clock; its timer wakes retries and the owner check,
    // which run on a thread of their own (the timer serves every deadline of the node).
    final Time time;
    final ExecutorService retries =
        Executors.newSingleThreadExecutor(new NamedThreadFactory("peerflash-nbd-forward", true));
    final Set<InFlight> inFlight = ConcurrentHashMap.newKeySet();
    final ConcurrentHashMap<String, Long> lastLoggedMs = new ConcurrentHashMap<>();
    volatile boolean closed;
    volatile Time.Timer ownerCheck;

    Shared(
        ClusterRouting cluster,
        PeerChannels peers,
        EngineVolumeIo local,
        long giveUpMs,
        Time time) {
      this.cluster = cluster;
      this.peers = peers;
      this.local = local;
      this.giveUpMs = giveUpMs;
      this.time = time;
    }
  }

  /** A forwarded attempt on its way: cancelled when {@code target} stops serving the volume. */
  private record InFlight(String volume, String target, ListenableFuture<?> call) {}

  /** A forwarded attempt cancelled because the map no longer names its target the live owner. */
  private static final class OwnerChanged extends RuntimeException {
    private static final long serialVersionUID = 1L;

    OwnerChanged(String target) {
      super("node " + target + " no longer serves the volume", null, false, false);
    }
  }

  private final Shared shared;
  private final String client;

  /**
   * @param giveUpMs how long a call may wait for the volume's owner before it fails (the node's
   *     {@code nbd-forward-timeout-ms})
   * @param time the node's clock: a call's deadline and its retries are measured on it
   */
  RoutedVolumeIo(
      EngineVolumeIo local, ClusterRouting cluster, PeerChannels peers, long giveUpMs, Time time) {
    this(new Shared(cluster, peers, local, giveUpMs, time), "");
    scheduleOwnerCheck();
  }

  private RoutedVolumeIo(Shared shared, String client) {
    this.shared = shared;
    this.client = client;
  }

  @Override
  public VolumeIo forClient(String client) {
    return new RoutedVolumeIo(shared, client == null ? "" : client);
  }

  @Override
  public void close() {
    shared.closed = true;
    Time.Timer check = shared.ownerCheck;
    if (check != null) {
      check.cancel();
    }
    shared.retries.shutdownNow();
  }

  @Override
  public Volume find(String name) {
    try {
      io.peerflash.proto.v1.Volume v = shared.cluster.getVolume(name);
      return new Volume(v.getName(), v.getSizeBytes());
    } catch (CacheException | RuntimeException e) {
      return null;
    }
  }

  @Override
  public CompletableFuture<Void> catchUp() {
    return shared.cluster.catchUp();
  }

  @Override
  public List<Volume> list() {
    List<Volume> out = new ArrayList<>();
    for (io.peerflash.proto.v1.Volume v : shared.cluster.listVolumes()) {
      out.add(new Volume(v.getName(), v.getSizeBytes()));
    }
    return out;
  }

  @Override
  public CompletableFuture<byte[]> read(String volume, long offset, int length) {
    return new Call<>(
            volume,
            "read",
            () -> shared.local.read(volume, offset, length),
            stub ->
                Futures.transform(
                    stub.read(
                        ForwardedReadRequest.newBuilder()
                            .setVolume(volume)
                            .setOffset(offset)
                            .setLength(length)
                            .setOnBehalfOf(client)
                            .build()),
                    r -> r.getData().toByteArray(),
                    MoreExecutors.directExecutor()))
        .start();
  }

  @Override
  public CompletableFuture<Void> write(String volume, long offset, ByteBuffer data) {
    return new Call<Void>(
            volume,
            "write",
            () -> shared.local.write(volume, offset, data.duplicate()),
            stub ->
                Futures.transform(
                    stub.write(
                        ForwardedWriteRequest.newBuilder()
                            .setVolume(volume)
                            .setOffset(offset)
                            .setData(UnsafeByteOperations.unsafeWrap(data.duplicate()))
                            .setOnBehalfOf(client)
                            .build()),
                    r -> null,
                    MoreExecutors.directExecutor()))
        .start();
  }

  @Override
  public CompletableFuture<Void> zero(String volume, long offset, long length) {
    return new Call<Void>(
            volume,
            "zero",
            () -> shared.local.zero(volume, offset, length),
            stub ->
                Futures.transform(
                    stub.zero(
                        ForwardedZeroRequest.newBuilder()
                            .setVolume(volume)
                            .setOffset(offset)
                            .setLength(length)
                            .setOnBehalfOf(client)
                            .build()),
                    r -> null,
                    MoreExecutors.directExecutor()))
        .start();
  }

  /**
   * A FLUSH always goes to the owner's engine, whichever node the client is connected to: there it
   * covers every write the owner acknowledged, from any connection to any node (CAN_MULTI_CONN).
   */
  @Override
  public CompletableFuture<Void> flush(String volume) {
    return new Call<Void>(
            volume,
            "flush",
            () -> shared.local.flush(volume),
            stub ->
                Futures.transform(
                    stub.flush(
                        ForwardedFlushRequest.newBuilder()
                            .setVolume(volume)
                            .setOnBehalfOf(client)
                            .build()),
                    r -> null,
                    MoreExecutors.directExecutor()))
        .start();
  }

  private void scheduleOwnerCheck() {
    if (!shared.closed) {
      shared.ownerCheck = shared.time.schedule(OWNER_CHECK_MS, this::checkOwners);
    }
  }

  /**
   * Cancels forwarded attempts whose target the map no longer names the volume's live owner; then
   * looks again in {@link #OWNER_CHECK_MS}.
   */
  private void checkOwners() {
    if (shared.closed) {
      return;
    }
    try {
      shared.retries.execute(this::checkOwnersNow);
    } catch (RejectedExecutionException e) {
      // closed
    }
  }

  private void checkOwnersNow() {
    try {
      for (InFlight f : shared.inFlight) {
        if (!shared.peers.servesVolume(f.target(), f.volume())) {
          f.call().cancel(false);
        }
      }
    } catch (RuntimeException e) {
      log.warn("checking forwarded NBD calls against the cluster map failed: {}", e.toString());
    } finally {
      scheduleOwnerCheck();
    }
  }

  private enum Next {
    FAIL,
    RETRY_NOW,
    RETRY_LATER
  }

  /** One NBD engine call, attempted until it succeeds, fails for good, or runs out of time. */
  private final class Call<T> {
    private final String volume;
    private final String what;
    private final Supplier<CompletableFuture<T>> local;
    private final Function<ForwardedIoServiceFutureStub, ListenableFuture<T>> forward;
    private final long startNanos = shared.time.nanoTime();
    private final long deadlineNanos;
    private final CompletableFuture<T> result = new CompletableFuture<>();
    private int attempts;

    Call(
        String volume,
        String what,
        Supplier<CompletableFuture<T>> local,
        Function<ForwardedIoServiceFutureStub, ListenableFuture<T>> forward) {
      this.volume = volume;
      this.what = what;
      this.local = local;
      this.forward = forward;
      this.deadlineNanos = startNanos + TimeUnit.MILLISECONDS.toNanos(shared.giveUpMs);
    }

    CompletableFuture<T> start() {
      attempt();
      return result;
    }

    private void attempt() {
      attempts++;
      String target = null;
      try {
        shared.cluster.routeIo(volume);
      } catch (StatusRuntimeException e) {
        target = ownerOf(e);
        if (target == null) {
          failed(e);
          return;
        }
      } catch (RuntimeException e) {
        result.completeExceptionally(e);
        return;
      }
      CompletableFuture<T> f;
      try {
        f = target == null ? local.get() : forwardTo(target);
      } catch (RuntimeException e) {
        f = CompletableFuture.failedFuture(e);
      }
      f.whenComplete(
          (value, failure) -> {
            if (failure == null) {
              result.complete(value);
            } else {
              failed(failure);
            }
          });
    }

    private CompletableFuture<T> forwardTo(String target) {
      ManagedChannel channel = shared.peers.peerChannel(target);
      if (channel == null) {
        return CompletableFuture.failedFuture(
            Status.UNAVAILABLE
                .withDescription("the owner " + target + " is not in this node's cluster map")
                .asRuntimeException());
      }
      long remainingNanos = deadlineNanos - shared.time.nanoTime();
      ListenableFuture<T> call =
          forward.apply(
              ForwardedIoServiceGrpc.newFutureStub(channel)
                  .withDeadlineAfter(Math.max(1, remainingNanos), TimeUnit.NANOSECONDS));
      InFlight entry = new InFlight(volume, target, call);
      shared.inFlight.add(entry);
      CompletableFuture<T> done = new CompletableFuture<>();
      call.addListener(
          () -> {
            shared.inFlight.remove(entry);
            try {
              done.complete(Futures.getDone(call));
            } catch (CancellationException e) {
              done.completeExceptionally(new OwnerChanged(target));
            } catch (ExecutionException e) {
              done.completeExceptionally(e.getCause());
            }
          },
          MoreExecutors.directExecutor());
      return done;
    }

    private void failed(Throwable failure) {
      Throwable t = NbdErrors.unwrap(failure);
      Next next = next(t);
      if (next == Next.FAIL) {
        result.completeExceptionally(t);
        return;
      }
      long remainingNanos = deadlineNanos - shared.time.nanoTime();
      if (remainingNanos <= 0) {
        long waitedMs = TimeUnit.NANOSECONDS.toMillis(shared.time.nanoTime() - startNanos);
        String why =
            "NBD "
                + what
                + " on volume '"
                + volume
                + "' gave up after "
                + waitedMs
                + " ms without a serving owner (nbd-forward-timeout-ms="
                + shared.giveUpMs
                + "): "
                + NbdErrors.messageOf(t);
        result.completeExceptionally(Status.UNAVAILABLE.withDescription(why).asRuntimeException());
        return;
      }
      noteWaiting(t);
      long delayMs =
          next == Next.RETRY_NOW && attempts < 3
              ? 0
              : Math.min(MAX_BACKOFF_MS, 5L << Math.min(attempts, 6));
      if (shared.closed) {
        result.completeExceptionally(
            Status.UNAVAILABLE.withDescription("the NBD server is closing").asRuntimeException());
        return;
      }
      long retryInMs =
          Math.max(1, Math.min(delayMs, TimeUnit.NANOSECONDS.toMillis(remainingNanos)));
      if (delayMs == 0) {
        attemptOffTimer(); // at once, at most twice in a row: the answer named a new owner
      } else {
        shared.time.schedule(retryInMs, this::attemptOffTimer);
      }
    }

    /** A retry, on the retry thread (the clock's timer only wakes it when due). */
    private void attemptOffTimer() {
      try {
        shared.retries.execute(this::attempt);
      } catch (RejectedExecutionException e) {
        result.completeExceptionally(
            Status.UNAVAILABLE.withDescription("the NBD server is closing").asRuntimeException());
      }
    }

    private void noteWaiting(Throwable t) {
      long now = shared.time.nowMs();
      Long last = shared.lastLoggedMs.get(volume);
      if (last == null || now - last >= LOG_EVERY_MS) {
        shared.lastLoggedMs.put(volume, now);
        log.info(
            "NBD I/O on volume '{}' waits for a serving owner (retrying until {} ms after each"
                + " request began): {}",
            volume,
            shared.giveUpMs,
            NbdErrors.messageOf(t));
      }
    }
  }

  /** The node a routing answer names the owner, or null when it names none. */
  private static String ownerOf(StatusRuntimeException e) {
    if (e.getStatus().getCode() != Status.Code.FAILED_PRECONDITION || e.getTrailers() == null) {
      return null;
    }
    String owner = e.getTrailers().get(OWNER_KEY);
    if (owner == null || owner.indexOf('@') <= 0) {
      return null;
    }
    return owner.substring(0, owner.indexOf('@'));
  }

  /** Whether a failure may clear by itself soon: the owner is changing, starting or unreachable. */
  private static Next next(Throwable t) {
    if (t instanceof OwnerChanged) {
      return Next.RETRY_NOW;
    }
    if (t instanceof StatusRuntimeException s) {
      return switch (s.getStatus().getCode()) {
        case UNAVAILABLE ->
            s.getTrailers() != null && s.getTrailers().get(VOLUME_STATE_KEY) != null
                ? Next.FAIL // OFFLINE: no copy can take over; retrying would only delay the error
                : Next.RETRY_LATER;
        case FAILED_PRECONDITION -> ownerOf(s) != null ? Next.RETRY_NOW : Next.FAIL;
        case DEADLINE_EXCEEDED, CANCELLED -> Next.RETRY_LATER;
        default -> Next.FAIL;
      };
    }
    if (t instanceof CacheException c) {
      return switch (c.reason()) {
        // Fenced, moving, taking over, or ownership changed under the call.
        case UNAVAILABLE, FAILED_PRECONDITION -> Next.RETRY_LATER;
        default -> Next.FAIL;
      };
    }
    return Next.FAIL;
  }
}
