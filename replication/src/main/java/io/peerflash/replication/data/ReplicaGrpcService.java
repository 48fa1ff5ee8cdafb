package io.peerflash.replication.data;

import io.grpc.Status;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import io.peerflash.proto.v1.DescribeCopiesRequest;
import io.peerflash.proto.v1.DescribeCopiesResponse;
import io.peerflash.proto.v1.GetReplicaLinkRequest;
import io.peerflash.proto.v1.GetReplicaLinkResponse;
import io.peerflash.proto.v1.ReplicaServiceGrpc;
import io.peerflash.proto.v1.ReplicateAck;
import io.peerflash.proto.v1.ReplicateRequest;
import io.peerflash.proto.v1.SyncCopiesRequest;
import io.peerflash.proto.v1.SyncCopiesResponse;
import io.peerflash.security.Identities;

/**
 * peerflash.v1.ReplicaService: an owner's Replicate stream (handled by {@link ReplicaStreams}, as
 * on the replica link), the sync of its copies and the description of what this node holds.
 */
public final class ReplicaGrpcService extends ReplicaServiceGrpc.ReplicaServiceImplBase {
  /** Requests of one stream received but not yet acked; more wait in gRPC flow control. */
  static final int STREAM_WINDOW = 128;

  private final ReplicaStreams streams;
  private final ReplicaSink sink;
  private final EpochGuard guard;
  private volatile int linkPort; // 0: no replica link

  /**
   * @param applyExecutor where requests that may wait are applied (a named pool)
   */
  public ReplicaGrpcService(
      ReplicaSink sink, EpochGuard guard, java.util.concurrent.Executor applyExecutor) {
    this(new ReplicaStreams(sink, guard, applyExecutor));
  }

  /** Serves Replicate streams with {@code streams} (shared with the replica link). */
  public ReplicaGrpcService(ReplicaStreams streams) {
    this.streams = streams;
    this.sink = streams.sink();
    this.guard = streams.guard();
  }

  /** The port of this node's replica link, told to owners that ask; 0 when it has none. */
  public void setLinkPort(int port) {
    this.linkPort = port;
  }

  @Override
  public void getReplicaLink(
      GetReplicaLinkRequest req, StreamObserver<GetReplicaLinkResponse> out) {
    out.onNext(GetReplicaLinkResponse.newBuilder().setPort(linkPort).build());
    out.onCompleted();
  }

  /** Copy, release and reset requests received on every stream so far (tests wait on it). */
  long requestsReceived() {
    return streams.requestsReceived();
  }

  /**
   * The full name of the Replicate method, to serve on the transport thread ({@link
   * TransportThreadCalls}): the service moves any request that would wait off it.
   */
  public static String replicateMethod() {
    return ReplicaServiceGrpc.getReplicateMethod().getFullMethodName();
  }

  @Override
  public StreamObserver<ReplicateRequest> replicate(StreamObserver<ReplicateAck> acks) {
    ServerCallStreamObserver<ReplicateAck> out = (ServerCallStreamObserver<ReplicateAck>) acks;
    ReplicaStreams.Stream stream =
        streams.open(
            new ReplicaStreams.Acks() {
              @Override
              public void send(ReplicateAck ack) {
                out.onNext(ack);
                out.request(1);
              }

              @Override
              public void complete() {
                out.onCompleted();
              }
            },
            Identities.current());
    out.setOnCancelHandler(stream::cancelled);
    out.disableAutoRequest();
    out.request(STREAM_WINDOW);
    return new StreamObserver<>() {
      @Override
      public void onNext(ReplicateRequest req) {
        stream.onNext(req);
      }

      @Override
      public void onError(Throwable t) {
        stream.onError(t);
      }

      @Override
      public void onCompleted() {
        stream.onCompleted();
      }
    };
  }

  /**
   * Makes the copies this node acknowledged durable, for the volume's owner only (its certificate,
   * then the map at the request's epoch). Runs on the server's executor: a sync waits for an fsync,
   * shared with concurrent ones ({@link ReplicaSink#sync}).
   */
  @Override
  public void syncCopies(SyncCopiesRequest req, StreamObserver<SyncCopiesResponse> out) {
    String why =
        ReplicaStreams.senderRefusal(
            Identities.current(),
            "SyncCopies",
            "asked for a sync of",
            req.getVolume(),
            req.getOwnerId());
    if (why != null) {
      out.onError(Status.PERMISSION_DENIED.withDescription(why).asRuntimeException());
      return;
    }
    try {
      guard.checkReplicate(req.getVolume(), req.getEpoch(), req.getOwnerId());
      sink.sync(req.getVolume());
    } catch (ReplicaException e) {
      out.onError(ReplicaStatuses.toStatus(e).asRuntimeException());
      return;
    }
    out.onNext(SyncCopiesResponse.getDefaultInstance());
    out.onCompleted();
  }

  @Override
  public void describeCopies(
      DescribeCopiesRequest req, StreamObserver<DescribeCopiesResponse> out) {
    try {
      ReplicaSink.CopyState s = sink.describe(req.getVolume());
      out.onNext(
          DescribeCopiesResponse.newBuilder()
              .setMaxSeq(s.maxSeq())
              .setDirtyBlocks(s.dirtyBlocks())
              .build());
      out.onCompleted();
    } catch (ReplicaException e) {
      out.onError(ReplicaStatuses.toStatus(e).asRuntimeException());
    }
  }
}
