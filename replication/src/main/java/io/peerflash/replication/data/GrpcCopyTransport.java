package io.peerflash.replication.data;

import io.grpc.Channel;
import io.grpc.Context;
import io.grpc.Status;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.grpc.stub.StreamObserver;
import io.peerflash.proto.v1.ReplicaServiceGrpc;
import io.peerflash.proto.v1.ReplicateAck;
import io.peerflash.proto.v1.ReplicateRequest;

/** Copies on the Replicate gRPC stream of peerflash.v1.ReplicaService. */
public final class GrpcCopyTransport implements CopyTransport {
  private final ReplicaServiceGrpc.ReplicaServiceStub stub;
  private final String peerId;

  public GrpcCopyTransport(String peerId, Channel channel) {
    this.peerId = peerId;
    this.stub = ReplicaServiceGrpc.newStub(channel);
  }

  @Override
  public Stream open(Listener listener) {
    StreamObserver<ReplicateRequest> requests;
    // The stream outlives the call that opens it (often a client's Write on this node): detach it
    // from that call's context, whose cancellation would otherwise end it.
    Context previous = Context.ROOT.attach();
    try {
      requests = stub.replicate(new Acks(listener));
    } finally {
      Context.ROOT.detach(previous);
    }
    return new Stream() {
      @Override
      public void send(ReplicateRequest request) {
        requests.onNext(request);
      }

      @Override
      public void cancel(Status why) {
        try {
          requests.onError(why.asRuntimeException());
        } catch (RuntimeException ignored) {
          // already closed
        }
      }
    };
  }

  private final class Acks implements ClientResponseObserver<ReplicateRequest, ReplicateAck> {
    private final Listener listener;

    Acks(Listener listener) {
      this.listener = listener;
    }

    @Override
    public void beforeStart(ClientCallStreamObserver<ReplicateRequest> requests) {
      // Ready once the transport carries the stream: connected, TLS handshake done.
      requests.setOnReadyHandler(listener::ready);
    }

    @Override
    public void onNext(ReplicateAck ack) {
      listener.ack(ack);
    }

    @Override
    public void onError(Throwable t) {
      listener.failed(Status.fromThrowable(t).augmentDescription("replica " + peerId));
    }

    @Override
    public void onCompleted() {
      listener.failed(
          Status.UNAVAILABLE.withDescription("replica " + peerId + " ended the stream"));
    }
  }
}
