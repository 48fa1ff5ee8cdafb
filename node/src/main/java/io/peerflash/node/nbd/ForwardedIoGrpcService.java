package io.peerflash.node.nbd;

import com.google.protobuf.UnsafeByteOperations;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import io.peerflash.node.cluster.ClusterRouting;
import io.peerflash.node.engine.CacheEngine;
import io.peerflash.node.engine.CacheException;
import io.peerflash.node.engine.IoRange;
import io.peerflash.node.wire.Protos;
import io.peerflash.proto.v1.ForwardedFlushRequest;
import io.peerflash.proto.v1.ForwardedIoServiceGrpc;
import io.peerflash.proto.v1.ForwardedReadRequest;
import io.peerflash.proto.v1.ForwardedReadResponse;
import io.peerflash.proto.v1.ForwardedResponse;
import io.peerflash.proto.v1.ForwardedWriteRequest;
import io.peerflash.proto.v1.ForwardedZeroRequest;
import io.peerflash.security.Audit;
import io.peerflash.security.Identities;
import io.peerflash.security.Identity;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executor;
import java.util.function.Supplier;

/**
 * The owner's side of forwarded NBD I/O (peerflash.v1.ForwardedIoService): a call another member's
 * NBD front end took from a client is served here exactly as this node's own front end serves it
 * ({@link EngineVolumeIo}), only while the cluster map names this node the owner; otherwise the
 * routing answer (the owner trailer, UNAVAILABLE while taking over, OFFLINE) goes back and the
 * forwarding node follows it. It is never forwarded again.
 *
 * <p>Who may call it is decided before ({@link io.peerflash.node.rpc.Authorization}: node
 * certificates of current members only). The first call a node forwards for a client and volume is
 * one audit line naming the node and that client; further calls are not logged one by one.
 */
public final class ForwardedIoGrpcService
    extends ForwardedIoServiceGrpc.ForwardedIoServiceImplBase {
  /** (node, client, volume) triples audited at most; past it the set starts over. */
  static final int AUDITED_MAX = 4096;

  private final ClusterRouting cluster;
  private final EngineVolumeIo local;
  private final Set<String> audited = ConcurrentHashMap.newKeySet();

  /**
   * @param callersLoop the event loop the calling (transport) thread runs, or null
   */
  public ForwardedIoGrpcService(
      CacheEngine engine,
      Executor waits,
      java.util.function.Supplier<Executor> callersLoop,
      ClusterRouting cluster) {
    this.cluster = cluster;
    this.local = new EngineVolumeIo(engine, waits, callersLoop);
  }

  /** The methods to serve on the transport thread: the engine hands off whatever may wait. */
  public static String[] transportThreadMethods() {
    return new String[] {
      ForwardedIoServiceGrpc.getReadMethod().getFullMethodName(),
      ForwardedIoServiceGrpc.getWriteMethod().getFullMethodName()
    };
  }

  @Override
  public void read(ForwardedReadRequest req, StreamObserver<ForwardedReadResponse> out) {
    serve(
        req.getVolume(),
        req.getOnBehalfOf(),
        out,
        () -> {
          if (req.getLength() > IoRange.MAX_IO_BYTES) {
            throw Status.INVALID_ARGUMENT
                .withDescription(
                    "a forwarded read of "
                        + req.getLength()
                        + " bytes is larger than one engine call ("
                        + IoRange.MAX_IO_BYTES
                        + " bytes)")
                .asRuntimeException();
          }
          return local
              .read(req.getVolume(), req.getOffset(), req.getLength())
              .thenApply(
                  data ->
                      ForwardedReadResponse.newBuilder()
                          .setData(UnsafeByteOperations.unsafeWrap(data))
                          .build());
        });
  }

  @Override
  public void write(ForwardedWriteRequest req, StreamObserver<ForwardedResponse> out) {
    serve(
        req.getVolume(),
        req.getOnBehalfOf(),
        out,
        () ->
            local
                .write(req.getVolume(), req.getOffset(), req.getData().asReadOnlyByteBuffer())
                .thenApply(ok -> ForwardedResponse.getDefaultInstance()));
  }

  @Override
  public void zero(ForwardedZeroRequest req, StreamObserver<ForwardedResponse> out) {
    serve(
        req.getVolume(),
        req.getOnBehalfOf(),
        out,
        () ->
            local
                .zero(req.getVolume(), req.getOffset(), req.getLength())
                .thenApply(ok -> ForwardedResponse.getDefaultInstance()));
  }

  @Override
  public void flush(ForwardedFlushRequest req, StreamObserver<ForwardedResponse> out) {
    serve(
        req.getVolume(),
        req.getOnBehalfOf(),
        out,
        () -> local.flush(req.getVolume()).thenApply(ok -> ForwardedResponse.getDefaultInstance()));
  }

  private <T> void serve(
      String volume,
      String onBehalfOf,
      StreamObserver<T> out,
      Supplier<CompletableFuture<T>> call) {
    audit(volume, onBehalfOf);
    CompletableFuture<T> result;
    try {
      cluster.routeIo(volume);
      result = call.get();
    } catch (RuntimeException e) {
      result = CompletableFuture.failedFuture(e);
    }
    result.whenComplete(
        (value, failure) -> {
          if (failure == null) {
            out.onNext(value);
            out.onCompleted();
          } else {
            out.onError(asStatus(volume, failure));
          }
        });
  }

  /**
   * The failure as the forwarding node should see it. An engine failure while ownership changed
   * under the call (a move, a failover) becomes the routing answer, which the forwarding node
   * follows, instead of the engine's "not the owner".
   */
  private StatusRuntimeException asStatus(String volume, Throwable failure) {
    Throwable t = NbdErrors.unwrap(failure);
    if (t instanceof StatusRuntimeException s) {
      return s;
    }
    if (t instanceof CacheException c) {
      try {
        cluster.routeIo(volume);
      } catch (StatusRuntimeException routed) {
        return routed;
      }
      return Protos.toStatus(c).asRuntimeException(new Metadata());
    }
    return Status.INTERNAL.withDescription(t.toString()).withCause(t).asRuntimeException();
  }

  private void audit(String volume, String onBehalfOf) {
    Identity who = Identities.current();
    if (who == null) {
      return; // a node run with insecure=true: nothing to name
    }
    String key = who.name() + "\n" + onBehalfOf + "\n" + volume;
    if (audited.contains(key)) {
      return;
    }
    if (audited.size() >= AUDITED_MAX) {
      audited.clear();
    }
    if (audited.add(key)) {
      Audit.action(who, onBehalfOf, "ForwardedIo", volume, "admitted");
    }
  }
}
