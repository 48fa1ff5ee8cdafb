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
  private static final org.slf4j.Logger log =
      org.slf4j.LoggerFactory.getLogger(PeerReplicationPort.class);

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

  /**
   * Removes a replica that failed to take a copy from the volume's replica set (in the cluster map)
   * before the write may be acknowledged without it: a replica that missed an acknowledged write
   * must never be chosen at failover. Completes with true once the map no longer lists it (at a
   * newer epoch, with this node still the owner).
   */
  public interface ReplicaEviction {
    CompletableFuture<Boolean> evict(String volume, String peerId, long epoch);
  }

  private final Function<VolumeInfo, Targets> lookup;
  private final ReplicaEviction eviction;

  /**
   * @param lookup the volume's epoch and replica peers; null or no replicas means no copies
   */
  public PeerReplicationPort(Function<VolumeInfo, Targets> lookup) {
    this(lookup, (volume, peer, epoch) -> CompletableFuture.completedFuture(true));
  }

  public PeerReplicationPort(Function<VolumeInfo, Targets> lookup, ReplicaEviction eviction) {
    this.lookup = lookup;
    this.eviction = eviction;
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
    CompletableFuture<Void> result = new CompletableFuture<>();
    attempt(volume, images, t, 1, result);
    return result;
  }

  /**
   * Sends to the targets of one epoch. A refused epoch is retried with the map's newer targets
   * while this node is still the owner (a replica-set change also bumps the epoch).
   */
  private void attempt(
      VolumeInfo volume,
      List<BlockImage> images,
      Targets t,
      int attemptNo,
      CompletableFuture<Void> result) {
    // Each peer: its ack, or, if it failed for any reason but a refused epoch, its removal from
    // the replica set (true) or the failure to remove it (false).
    List<CompletableFuture<Outcome>> outcomes = new ArrayList<>();
    for (PeerReplicator r : t.replicas()) {
      outcomes.add(
          r.replicate(volume.name(), t.epoch(), t.ownerId(), images)
              .handle((ok, failure) -> failure)
              .thenCompose(
                  failure -> {
                    if (failure == null) {
                      return CompletableFuture.completedFuture(Outcome.ACKED);
                    }
                    Throwable cause =
                        failure instanceof CompletionException ? failure.getCause() : failure;
                    if (cause instanceof ReplicaException re
                        && re.status().getCode() == Status.Code.FAILED_PRECONDITION) {
                      return CompletableFuture.completedFuture(Outcome.FENCED);
                    }
                    log.warn(
                        "volume {}: replica {} failed at epoch {}: {}",
                        volume.name(),
                        r.peerId(),
                        t.epoch(),
                        cause.toString());
                    return eviction
                        .evict(volume.name(), r.peerId(), t.epoch())
                        .handle((done, e) -> e == null && done ? Outcome.EVICTED : Outcome.STUCK);
                  }));
    }
    CompletableFuture.allOf(outcomes.toArray(CompletableFuture[]::new))
        .whenComplete(
            (ignored, never) -> {
              boolean fenced = false;
              boolean stuck = false;
              boolean evicted = false;
              for (CompletableFuture<Outcome> o : outcomes) {
                Outcome out = o.join();
                fenced |= out == Outcome.FENCED;
                stuck |= out == Outcome.STUCK;
                evicted |= out == Outcome.EVICTED;
              }
              if (fenced) {
                Targets newer = attemptNo < MAX_ATTEMPTS ? lookup.apply(volume) : null;
                if (newer != null && newer.epoch() > t.epoch()) {
                  attempt(volume, images, newer, attemptNo + 1, result);
                  return;
                }
                result.completeExceptionally(
                    new FencedException("a replica refused epoch " + t.epoch()));
              } else if (stuck) {
                // Could neither reach a replica nor take it out of the map: acknowledging now
                // would let it win a later failover without this write.
                result.completeExceptionally(
                    new FencedException(
                        "a replica is unreachable and could not be removed from the cluster map"));
              } else if (evicted) {
                result.completeExceptionally(
                    new ReplicaException(
                        Status.UNAVAILABLE.withDescription(
                            "a replica was lost and removed; the write goes through")));
              } else {
                result.complete(null);
              }
            });
  }

  private static final int MAX_ATTEMPTS = 3;

  private enum Outcome {
    ACKED,
    FENCED,
    EVICTED,
    STUCK
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
