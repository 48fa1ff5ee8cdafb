package io.peerflash.node.rpc;

import io.grpc.stub.StreamObserver;
import io.peerflash.proto.v1.ClusterServiceGrpc;
import io.peerflash.proto.v1.ClusterStatus;
import io.peerflash.proto.v1.GetClusterStatusRequest;
import java.util.function.Supplier;

/** peerflash.v1.ClusterService: the cluster map as this node holds it. */
public final class ClusterGrpcService extends ClusterServiceGrpc.ClusterServiceImplBase {
  private final Supplier<ClusterStatus> status;

  public ClusterGrpcService(Supplier<ClusterStatus> status) {
    this.status = status;
  }

  @Override
  public void getClusterStatus(GetClusterStatusRequest req, StreamObserver<ClusterStatus> out) {
    out.onNext(status.get());
    out.onCompleted();
  }
}
