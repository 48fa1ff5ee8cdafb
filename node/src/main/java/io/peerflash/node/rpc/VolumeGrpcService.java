package io.peerflash.node.rpc;

import com.google.protobuf.UnsafeByteOperations;
import io.grpc.Status;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import io.peerflash.node.cluster.ClusterRouting;
import io.peerflash.node.engine.CacheEngine;
import io.peerflash.node.engine.CacheException;
import io.peerflash.node.engine.WriteAck;
import io.peerflash.node.net.EventLoops;
import io.peerflash.node.observe.RequestTimer;
import io.peerflash.node.observe.RequestTimer.FrontEnd;
import io.peerflash.node.observe.RequestTimer.Op;
import io.peerflash.node.wire.Protos;
import io.peerflash.proto.v1.CreateVolumeRequest;
import io.peerflash.proto.v1.DeleteVolumeRequest;
import io.peerflash.proto.v1.DeleteVolumeResponse;
import io.peerflash.proto.v1.FlushRequest;
import io.peerflash.proto.v1.FlushResponse;
import io.peerflash.proto.v1.GetVolumeRequest;
import io.peerflash.proto.v1.ListVolumesRequest;
import io.peerflash.proto.v1.ListVolumesResponse;
import io.peerflash.proto.v1.ReadRequest;
import io.peerflash.proto.v1.ReadResponse;
import io.peerflash.proto.v1.SetPolicyRequest;
import io.peerflash.proto.v1.TrimRequest;
import io.peerflash.proto.v1.TrimResponse;
import io.peerflash.proto.v1.Volume;
import io.peerflash.proto.v1.VolumeServiceGrpc;
import io.peerflash.proto.v1.WriteRequest;
import io.peerflash.proto.v1.WriteResponse;
import io.peerflash.replication.data.TransportThreadCalls;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;

/** peerflash.v1.VolumeService: translates messages and hands off to the {@link CacheEngine}. */
public final class VolumeGrpcService extends VolumeServiceGrpc.VolumeServiceImplBase {
  /** Requests of one WriteStream processed at once; more wait in gRPC flow control. */
  static final int STREAM_WINDOW = 64;

  private final CacheEngine engine;
  private final Executor waits;
  private final Supplier<Executor> callersLoop;
  private final ClusterRouting cluster;
  private final RequestTimer timer;

  /**
   * @param waits runs the part of a Write, WriteStream or Read call that may wait (for space, a
   *     busy block, shared storage); the rest runs on the transport thread that delivered it (see
   *     {@link #transportThreadMethods})
   * @param callersLoop the event loop the calling transport thread runs ({@link
   *     EventLoops#callersLoop}), or null: a replicated write stores its own copy in a task queued
   *     there, after its copies went out
   * @param cluster the cluster's routing and volume administration; null on a single node
   */
  public VolumeGrpcService(
      CacheEngine engine, Executor waits, Supplier<Executor> callersLoop, ClusterRouting cluster) {
    this(engine, waits, callersLoop, cluster, RequestTimer.NONE);
  }

  /**
   * @param timer told how long each Write, Read, Trim and Flush took, as the client sees it
   */
  public VolumeGrpcService(
      CacheEngine engine,
      Executor waits,
      Supplier<Executor> callersLoop,
      ClusterRouting cluster,
      RequestTimer timer) {
    this.engine = engine;
    this.waits = waits;
    this.callersLoop = callersLoop;
    this.cluster = cluster;
    this.timer = timer;
  }

  /** {@code future}, telling the timer when it completes (nothing added without a timer). */
  private <T> CompletableFuture<T> timed(Op op, long startNanos, CompletableFuture<T> future) {
    if (timer == RequestTimer.NONE) {
      return future;
    }
    return future.whenComplete(
        (value, failure) -> timer.record(FrontEnd.GRPC, op, startNanos, failure == null));
  }

  /** Runs {@code call}, telling the timer how long it took. */
  private <T> Call<T> timed(Op op, Call<T> call) {
    if (timer == RequestTimer.NONE) {
      return call;
    }
    return () -> {
      long start = System.nanoTime();
      boolean ok = false;
      try {
        T result = call.run();
        ok = true;
        return result;
      } finally {
        timer.record(FrontEnd.GRPC, op, start, ok);
      }
    };
  }

  /** A service whose writes store their own copy inline (no event loops: in-process tests). */
  public VolumeGrpcService(CacheEngine engine, Executor waits, ClusterRouting cluster) {
    this(engine, waits, () -> null, cluster);
  }

  private void route(String volume) {
    if (cluster != null) {
      cluster.routeIo(volume);
    }
  }

  /**
   * Routes an I/O call to this node and starts it. A volume this node's map does not hold (yet: it
   * may have been created through another node a moment ago, which a lagging follower has not
   * applied) is routed again once the map has caught up with the leader's, on {@code waits}; only
   * then is NOT_FOUND the answer.
   */
  private <T> CompletableFuture<T> routed(String volume, Supplier<CompletableFuture<T>> start) {
    if (cluster == null) {
      return start.get();
    }
    try {
      cluster.routeIo(volume);
    } catch (io.grpc.StatusRuntimeException e) {
      if (!notFound(e)) {
        throw e;
      }
      return catchUp(volume)
          .thenComposeAsync(
              ok -> {
                cluster.routeIo(volume);
                return start.get();
              },
              waits);
    }
    return start.get();
  }

  /**
   * Runs a call on a volume again once this node's map has caught up with the leader's when it
   * answered NOT_FOUND the first time (see {@link #routed}); blocks, so only for calls served on
   * {@code waits}.
   */
  private <T> T caughtUp(String volume, Call<T> call) throws CacheException {
    try {
      return call.run();
    } catch (CacheException | io.grpc.StatusRuntimeException e) {
      if (cluster == null || !notFound(e)) {
        throw e;
      }
    }
    try {
      catchUp(volume).join(); // bounded by ClusterRouting.CATCH_UP_TIMEOUT_MS
    } catch (CompletionException e) {
      throw (RuntimeException) e.getCause();
    }
    return call.run();
  }

  /**
   * {@link #caughtUp} without blocking a thread: the second try runs when the catch-up completes,
   * on the thread that completes it.
   */
  private <T> CompletableFuture<T> caughtUpLater(String volume, Call<T> call) {
    try {
      return CompletableFuture.completedFuture(call.run());
    } catch (CacheException | io.grpc.StatusRuntimeException e) {
      if (!notFound(e)) {
        return CompletableFuture.failedFuture(e);
      }
    }
    return catchUp(volume)
        .thenApply(
            ok -> {
              try {
                return call.run();
              } catch (CacheException e) {
                throw new CompletionException(e);
              }
            });
  }

  private static boolean notFound(Exception e) {
    return e instanceof CacheException c
        ? c.reason() == CacheException.Reason.NOT_FOUND
        : e instanceof io.grpc.StatusRuntimeException s
            && s.getStatus().getCode() == Status.Code.NOT_FOUND;
  }

  /**
   * Completes once this node's map has caught up with the leader's; fails with UNAVAILABLE naming
   * why it could not ({@link #catchUpFailed}).
   */
  private CompletableFuture<Void> catchUp(String volume) {
    return cluster
        .catchUp()
        .handle(
            (ok, failure) -> {
              if (failure != null) {
                throw catchUpFailed(volume, failure).asRuntimeException();
              }
              return null;
            });
  }

  private static Status catchUpFailed(String volume, Throwable why) {
    Throwable cause =
        why instanceof CompletionException && why.getCause() != null ? why.getCause() : why;
    return Status.UNAVAILABLE.withDescription(
        "volume "
            + io.peerflash.util.Texts.quote(volume)
            + " is not in this node's cluster map, and the Raft leader could not be asked within "
            + ClusterRouting.CATCH_UP_TIMEOUT_MS
            + " ms whether it exists: "
            + (cause instanceof java.util.concurrent.TimeoutException ? "no answer" : cause));
  }

  /** A call body that may throw CacheException. */
  private interface Call<T> {
    T run() throws CacheException;
  }

  private static <T> void answer(StreamObserver<T> out, Call<T> call) {
    T result;
    try {
      result = call.run();
    } catch (CacheException | RuntimeException e) {
      out.onError(statusOf(e).asRuntimeException(trailersOf(e)));
      return;
    }
    out.onNext(result);
    out.onCompleted();
  }

  /** Like {@link #answer}, for a call that completes later (on whichever thread finishes it). */
  private static <T> void answerLater(StreamObserver<T> out, Call<CompletableFuture<T>> call) {
    CompletableFuture<T> result;
    try {
      result = call.run();
    } catch (CacheException | RuntimeException e) {
      out.onError(statusOf(e).asRuntimeException(trailersOf(e)));
      return;
    }
    result.whenComplete(
        (value, failure) -> {
          if (failure != null) {
            out.onError(statusOf(failure).asRuntimeException(trailersOf(failure)));
          } else {
            out.onNext(value);
            out.onCompleted();
          }
        });
  }

  private static Status statusOf(Throwable t) {
    Throwable e = t instanceof CompletionException && t.getCause() != null ? t.getCause() : t;
    if (e instanceof io.grpc.StatusRuntimeException s) {
      return s.getStatus();
    }
    if (e instanceof CacheException c) {
      return Protos.toStatus(c);
    }
    return Status.INTERNAL.withDescription(e.toString()).withCause(e);
  }

  private static io.grpc.Metadata trailersOf(Throwable t) {
    Throwable e = t instanceof CompletionException && t.getCause() != null ? t.getCause() : t;
    return e instanceof io.grpc.StatusRuntimeException s ? s.getTrailers() : null;
  }

  private Volume volume(String name) throws CacheException {
    return Protos.volume(engine.volumeStatus(name));
  }

  @Override
  public void createVolume(CreateVolumeRequest req, StreamObserver<Volume> out) {
    answer(
        out,
        () -> {
          Protos.checkPolicy(req.getPolicy());
          if (cluster != null) {
            return cluster.createVolume(req);
          }
          engine.createVolume(
              req.getName(),
              req.getSizeBytes(),
              Protos.mode(req.getPolicy().getMode()),
              Protos.replicas(req.getPolicy().getReplicas()),
              req.getAdoptExisting());
          return volume(req.getName());
        });
  }

  @Override
  public void getVolume(GetVolumeRequest req, StreamObserver<Volume> out) {
    if (cluster == null) {
      answer(out, () -> withNbdUris(volume(req.getName())));
      return;
    }
    answerLater(
        out,
        () ->
            caughtUpLater(req.getName(), () -> cluster.getVolume(req.getName()))
                .thenApply(this::withNbdUris));
  }

  private volatile List<String> nbdUriTemplates = List.of();

  /**
   * The NBD front end's URIs, with {@code {volume}} for the export name: shown with every volume,
   * since this node ({@code nodeId}) serves every volume of its cluster (forwarding the I/O of
   * those another node owns).
   */
  public void setNbdUris(String nodeId, List<String> templates) {
    this.nbdUriTemplates = List.copyOf(templates);
  }

  private Volume withNbdUris(Volume v) {
    List<String> templates = nbdUriTemplates;
    if (templates.isEmpty()) {
      return v;
    }
    Volume.Builder b = v.toBuilder();
    for (String t : templates) {
      b.addNbdUris(t.replace("{volume}", v.getName()));
    }
    return b.build();
  }

  @Override
  public void listVolumes(ListVolumesRequest req, StreamObserver<ListVolumesResponse> out) {
    if (cluster != null) {
      // A volume created a moment ago through another node is listed too. Without the leader
      // (a partition, an election) the list is this node's map: each volume's state says what
      // this node knows of it, and a list that fails helps no operator.
      answerLater(
          out,
          () ->
              cluster
                  .catchUp()
                  .handle(
                      (ok, failure) ->
                          ListVolumesResponse.newBuilder()
                              .addAllVolumes(cluster.listVolumes())
                              .build()));
      return;
    }
    answer(
        out,
        () -> {
          ListVolumesResponse.Builder b = ListVolumesResponse.newBuilder();
          for (var s : engine.status().volumes()) {
            b.addVolumes(Protos.volume(s));
          }
          return b.build();
        });
  }

  @Override
  public void deleteVolume(DeleteVolumeRequest req, StreamObserver<DeleteVolumeResponse> out) {
    answer(
        out,
        () -> {
          if (cluster != null) {
            cluster.deleteVolume(req.getName());
            return DeleteVolumeResponse.getDefaultInstance();
          }
          engine.deleteVolume(req.getName());
          return DeleteVolumeResponse.getDefaultInstance();
        });
  }

  @Override
  public void setPolicy(SetPolicyRequest req, StreamObserver<Volume> out) {
    answer(
        out,
        () -> {
          Protos.checkPolicy(req.getPolicy());
          if (cluster != null) {
            return caughtUp(req.getName(), () -> cluster.setPolicy(req));
          }
          engine.setPolicy(
              req.getName(),
              Protos.mode(req.getPolicy().getMode()),
              Protos.replicas(req.getPolicy().getReplicas()));
          return volume(req.getName());
        });
  }

  @Override
  public void write(WriteRequest req, StreamObserver<WriteResponse> out) {
    long start = System.nanoTime();
    answerLater(
        out,
        () -> {
          return timed(Op.WRITE, start, submitWrite(req))
              .thenApply(
                  ack ->
                      WriteResponse.newBuilder()
                          .setRequestId(req.getRequestId())
                          .setWentThrough(ack == WriteAck.WENT_THROUGH)
                          .build());
        });
  }

  /** Routes and starts a write: on this (transport) thread if it need not wait. */
  private CompletableFuture<WriteAck> submitWrite(WriteRequest req) {
    return routed(
        req.getVolume(),
        () ->
            engine.submitWrite(
                req.getVolume(),
                req.getOffset(),
                req.getData().asReadOnlyByteBuffer(),
                waits,
                callersLoop.get()));
  }

  @Override
  public void read(ReadRequest req, StreamObserver<ReadResponse> out) {
    long start = System.nanoTime();
    answerLater(
        out,
        () -> {
          return timed(
                  Op.READ,
                  start,
                  routed(
                      req.getVolume(),
                      () ->
                          engine.submitRead(
                              req.getVolume(), req.getOffset(), req.getLength(), waits)))
              .thenApply(
                  data ->
                      ReadResponse.newBuilder()
                          .setData(UnsafeByteOperations.unsafeWrap(data))
                          .build());
        });
  }

  @Override
  public void flush(FlushRequest req, StreamObserver<FlushResponse> out) {
    answer(
        out,
        timed(
            Op.FLUSH,
            () ->
                caughtUp(
                    req.getVolume(),
                    () -> {
                      route(req.getVolume());
                      return FlushResponse.newBuilder()
                          .setDestagedBytes(engine.flush(req.getVolume()))
                          .build();
                    })));
  }

  @Override
  public void trim(TrimRequest req, StreamObserver<TrimResponse> out) {
    answer(
        out,
        timed(
            Op.TRIM,
            () ->
                caughtUp(
                    req.getVolume(),
                    () -> {
                      route(req.getVolume());
                      engine.trim(req.getVolume(), req.getOffset(), req.getLength());
                      return TrimResponse.getDefaultInstance();
                    })));
  }

  /**
   * The calls to serve on the transport thread ({@link TransportThreadCalls}): Write, WriteStream
   * and Read. One that needs no wait is then served without a thread hand-off; the rest of its work
   * goes to {@code waits}.
   */
  public static String[] transportThreadMethods() {
    return new String[] {
      VolumeServiceGrpc.getWriteStreamMethod().getFullMethodName(),
      VolumeServiceGrpc.getWriteMethod().getFullMethodName(),
      VolumeServiceGrpc.getReadMethod().getFullMethodName()
    };
  }

  @Override
  public StreamObserver<WriteRequest> writeStream(StreamObserver<WriteResponse> responses) {
    ServerCallStreamObserver<WriteResponse> out =
        (ServerCallStreamObserver<WriteResponse>) responses;
    out.disableAutoRequest();
    out.request(STREAM_WINDOW);
    return new WriteStreamHandler(out);
  }

  /**
   * Runs up to {@link #STREAM_WINDOW} writes of one stream concurrently (so they share group
   * commits), answers each as it completes, and completes the stream after the last answer.
   */
  private final class WriteStreamHandler implements StreamObserver<WriteRequest> {
    private final ServerCallStreamObserver<WriteResponse> out;
    private final AtomicInteger inFlight = new AtomicInteger(1); // 1 = the open request side
    private volatile boolean failed;

    WriteStreamHandler(ServerCallStreamObserver<WriteResponse> out) {
      this.out = out;
    }

    @Override
    public void onNext(WriteRequest req) {
      long start = System.nanoTime();
      inFlight.incrementAndGet();
      CompletableFuture<WriteAck> done;
      try {
        done = submitWrite(req);
      } catch (RuntimeException e) {
        done = CompletableFuture.failedFuture(e);
      }
      done.whenComplete(
          (ack, failure) -> {
            timer.record(FrontEnd.GRPC, Op.WRITE, start, failure == null);
            answer(req, ack, failure);
          });
    }

    private void answer(WriteRequest req, WriteAck ack, Throwable failure) {
      WriteResponse.Builder resp =
          WriteResponse.newBuilder()
              .setRequestId(req.getRequestId())
              .setWentThrough(ack == WriteAck.WENT_THROUGH);
      if (failure != null) {
        Status s = statusOf(failure);
        io.grpc.Metadata trailers = trailersOf(failure);
        String owner =
            trailers == null
                ? null
                : trailers.get(
                    io.grpc.Metadata.Key.of(
                        ClusterRouting.OWNER_TRAILER, io.grpc.Metadata.ASCII_STRING_MARSHALLER));
        resp.setCode(s.getCode().value())
            .setMessage(
                (s.getDescription() == null ? "" : s.getDescription())
                    + (owner == null
                        ? ""
                        : " [" + ClusterRouting.OWNER_TRAILER + "=" + owner + "]"));
      }
      synchronized (out) {
        if (!failed && !out.isCancelled()) {
          out.onNext(resp.build());
          out.request(1);
        }
      }
      finishOne();
    }

    @Override
    public void onError(Throwable t) {
      failed = true;
      finishOne();
    }

    @Override
    public void onCompleted() {
      finishOne();
    }

    private void finishOne() {
      if (inFlight.decrementAndGet() == 0) {
        synchronized (out) {
          if (!failed && !out.isCancelled()) {
            out.onCompleted();
          }
        }
      }
    }
  }
}
