package io.peerflash.node.rpc;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import io.peerflash.node.cluster.ClusterAdmin;
import io.peerflash.proto.v1.AddNodeRequest;
import io.peerflash.proto.v1.AddNodeResponse;
import io.peerflash.proto.v1.ClusterServiceGrpc;
import io.peerflash.proto.v1.ClusterStatus;
import io.peerflash.proto.v1.DrainNodeRequest;
import io.peerflash.proto.v1.DrainNodeResponse;
import io.peerflash.proto.v1.GetClusterStatusRequest;
import io.peerflash.proto.v1.ListClusterEventsRequest;
import io.peerflash.proto.v1.ListClusterEventsResponse;
import io.peerflash.proto.v1.MoveVolumeRequest;
import io.peerflash.proto.v1.MoveVolumeResponse;
import io.peerflash.proto.v1.RemoveNodeRequest;
import io.peerflash.proto.v1.RemoveNodeResponse;
import java.util.function.Supplier;

/** peerflash.v1.ClusterService: the cluster map as this node holds it, and online changes. */
public final class ClusterGrpcService extends ClusterServiceGrpc.ClusterServiceImplBase {
  private final ClusterAdmin admin;

  public ClusterGrpcService(ClusterAdmin admin) {
    this.admin = admin;
  }

  private static <T> void answer(StreamObserver<T> out, Supplier<T> call) {
    T result;
    try {
      result = call.get();
    } catch (StatusRuntimeException e) {
      out.onError(e);
      return;
    } catch (RuntimeException e) {
      out.onError(Status.INTERNAL.withDescription(e.toString()).withCause(e).asRuntimeException());
      return;
    }
    out.onNext(result);
    out.onCompleted();
  }

  @Override
  public void getClusterStatus(GetClusterStatusRequest req, StreamObserver<ClusterStatus> out) {
    answer(out, admin::status);
  }

  @Override
  public void listClusterEvents(
      ListClusterEventsRequest req, StreamObserver<ListClusterEventsResponse> out) {
    answer(out, () -> admin.events(req));
  }

  @Override
  public void moveVolume(MoveVolumeRequest req, StreamObserver<MoveVolumeResponse> out) {
    answer(out, () -> admin.moveVolume(req));
  }

  @Override
  public void drainNode(DrainNodeRequest req, StreamObserver<DrainNodeResponse> out) {
    answer(out, () -> admin.drainNode(req));
  }

  @Override
  public void removeNode(RemoveNodeRequest req, StreamObserver<RemoveNodeResponse> out) {
    answer(out, () -> admin.removeNode(req));
  }

  @Override
  public void addNode(AddNodeRequest req, StreamObserver<AddNodeResponse> out) {
    answer(out, () -> admin.addNode(req));
  }
}
