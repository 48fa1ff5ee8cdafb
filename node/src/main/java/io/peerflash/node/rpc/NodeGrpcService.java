package io.peerflash.node.rpc;

import io.grpc.stub.StreamObserver;
import io.peerflash.node.engine.CacheEngine;
import io.peerflash.node.engine.NodeStatusView;
import io.peerflash.node.engine.VolumeStatusView;
import io.peerflash.proto.v1.GetStatusRequest;
import io.peerflash.proto.v1.NodeServiceGrpc;
import io.peerflash.proto.v1.NodeStatus;

/** peerflash.v1.NodeService: the node's cache status. */
public final class NodeGrpcService extends NodeServiceGrpc.NodeServiceImplBase {
  private final String nodeId;
  private final CacheEngine engine;

  public NodeGrpcService(String nodeId, CacheEngine engine) {
    this.nodeId = nodeId;
    this.engine = engine;
  }

  @Override
  public void getStatus(GetStatusRequest req, StreamObserver<NodeStatus> out) {
    NodeStatusView s = engine.status();
    long reads = s.readHits() + s.readMisses();
    NodeStatus.Builder b =
        NodeStatus.newBuilder()
            .setNodeId(nodeId)
            .setCacheSizeBytes(s.cacheSizeBytes())
            .setCacheUsedBytes(s.cacheUsedBytes())
            .setDirtyBytes(s.dirtyBytes())
            .setReadHits(s.readHits())
            .setReadMisses(s.readMisses())
            .setHitRate(reads == 0 ? 0 : (double) s.readHits() / reads)
            .setSyncWrites(s.syncWrites())
            .setDestagedBytes(s.destagedBytes())
            .setEvictedBlocks(s.evictedBlocks())
            .setBackpressureWaits(s.backpressureWaits())
            .setBackpressureRejections(s.backpressureRejections());
    if (s.localFailure() != null) {
      b.setLocalFlashFailure(s.localFailure());
    }
    if (s.indexProblem() != null) {
      b.setLocalIndexProblem(s.indexProblem());
    }
    for (VolumeStatusView v : s.volumes()) {
      b.addVolumes(Protos.volume(v));
    }
    out.onNext(b.build());
    out.onCompleted();
  }
}
