package io.peerflash.node.cluster;

import com.google.protobuf.ByteString;
import com.google.protobuf.UnsafeByteOperations;
import io.grpc.Status;
import io.peerflash.node.engine.CacheEngine.ReplicaBlock;
import io.peerflash.node.engine.ReplicationPort;
import io.peerflash.node.index.VolumeInfo;
import io.peerflash.proto.v1.BlockImage;
import io.peerflash.replication.data.PeerReplicator;
import io.peerflash.replication.data.ReplicaException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.function.Function;

/**
 * The write path's replication over gRPC: each write's block images go to every replica of the
 * volume at the volume's current epoch, and the write waits for all of them. Which peers and which
 * epoch come from a {@link Targets} lookup (the cluster map).
 */
public final class PeerReplicationPort implements ReplicationPort {
  /**
   * Where a volume's copies go now.
   *
   * @param acceptFewer the volume's on-peer-loss policy accepts acknowledging with fewer copies
   */
  public record Targets(
      long epoch, String ownerId, List<PeerReplicator> replicas, boolean acceptFewer) {
    public Targets(long epoch, String ownerId, List<PeerReplicator> replicas) {
      this(epoch, ownerId, replicas, false);
    }
  }

  private final Function<VolumeInfo, Targets> lookup;

  /**
   * @param lookup the volume's epoch and replica peers; null or no replicas means no copies
   */
  public PeerReplicationPort(Function<VolumeInfo, Targets> lookup) {
    this.lookup = lookup;
  }

  @Override
  public CompletableFuture<Void> replicate(VolumeInfo volume, List<ReplicaBlock> blocks) {
    if (volume.replicas() == 0) {
      return null;
    }
    Targets t = lookup.apply(volume);
    if (t == null) {
      return null;
    }
    if (t.replicas().size() < volume.replicas() && !t.acceptFewer()) {
      // Fewer peers than the policy asks for: the write must go through to shared storage.
      return CompletableFuture.failedFuture(
          new ReplicaException(
              Status.UNAVAILABLE.withDescription(
                  t.replicas().size() + " of " + volume.replicas() + " replicas available")));
    }
    if (t.replicas().isEmpty()) {
      return null;
    }
    List<BlockImage> images = new ArrayList<>(blocks.size());
    for (ReplicaBlock b : blocks) {
      BlockImage.Builder img = BlockImage.newBuilder().setBlock(b.block()).setSeq(b.seq());
      if (b.data() == null) {
        img.setZero(true);
      } else {
        // Zero-copy: the engine keeps the buffer unchanged until the future completes.
        ByteString data = UnsafeByteOperations.unsafeWrap(b.data().duplicate());
        img.setData(data);
      }
      images.add(img.build());
    }
    CompletableFuture<?>[] acks = new CompletableFuture<?>[t.replicas().size()];
    for (int i = 0; i < acks.length; i++) {
      acks[i] = t.replicas().get(i).replicate(volume.name(), t.epoch(), t.ownerId(), images);
    }
    CompletableFuture<Void> result = new CompletableFuture<>();
    CompletableFuture.allOf(acks)
        .whenComplete(
            (ok, failure) -> {
              if (failure == null) {
                result.complete(null);
                return;
              }
              Throwable cause =
                  failure instanceof CompletionException ? failure.getCause() : failure;
              if (cause instanceof ReplicaException re
                  && re.status().getCode() == Status.Code.FAILED_PRECONDITION) {
                result.completeExceptionally(new FencedException(re.getMessage()));
              } else {
                result.completeExceptionally(cause);
              }
            });
    return result;
  }

  @Override
  public void released(VolumeInfo volume, long[] blocks, long[] seqs) {
    if (volume.replicas() == 0 || blocks.length == 0) {
      return;
    }
    Targets t = lookup.apply(volume);
    if (t == null) {
      return;
    }
    for (PeerReplicator r : t.replicas()) {
      r.release(volume.name(), t.epoch(), t.ownerId(), blocks, seqs);
    }
  }
}
