package io.peerflash.node.rpc;

import io.grpc.stub.StreamObserver;
import io.peerflash.node.engine.CacheEngine;
import io.peerflash.node.engine.NodeStatusView;
import io.peerflash.node.engine.VolumeStatusView;
import io.peerflash.node.net.NodeTls;
import io.peerflash.node.wire.Protos;
import io.peerflash.proto.v1.GetStatusRequest;
import io.peerflash.proto.v1.NodeServiceGrpc;
import io.peerflash.proto.v1.NodeStatus;

/** peerflash.v1.NodeService: the node's cache status. */
public final class NodeGrpcService extends NodeServiceGrpc.NodeServiceImplBase {
  private final String nodeId;
  private final CacheEngine engine;
  private final NodeTls tls;
  private final java.util.function.Supplier<String> fencedReason;

  public NodeGrpcService(String nodeId, CacheEngine engine) {
    this(nodeId, engine, NodeTls.plaintext());
  }

  public NodeGrpcService(String nodeId, CacheEngine engine, NodeTls tls) {
    this(nodeId, engine, tls, () -> "");
  }

  /**
   * @param fencedReason empty while the node may serve its volumes, otherwise why not (a cluster
   *     node without a valid lease)
   */
  public NodeGrpcService(
      String nodeId,
      CacheEngine engine,
      NodeTls tls,
      java.util.function.Supplier<String> fencedReason) {
    this.nodeId = nodeId;
    this.engine = engine;
    this.tls = tls;
    this.fencedReason = fencedReason;
  }

  /** A warning about the node's certificate (ending soon, or files that failed to load). */
  private String certificateWarning() {
    if (!tls.enabled()) {
      return "";
    }
    java.util.List<String> parts = new java.util.ArrayList<>();
    tls.directory().expiryWarning().ifPresent(parts::add);
    tls.directory()
        .lastReloadError()
        .ifPresent(e -> parts.add("new certificate files not loaded: " + e));
    return String.join("; ", parts);
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
    b.setCertificateWarning(certificateWarning());
    b.setFencedReason(fencedReason.get());
    for (VolumeStatusView v : s.volumes()) {
      b.addVolumes(Protos.volume(v));
    }
    out.onNext(b.build());
    out.onCompleted();
  }
}
