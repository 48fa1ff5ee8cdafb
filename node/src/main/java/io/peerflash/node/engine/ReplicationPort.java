package io.peerflash.node.engine;

import io.peerflash.node.index.VolumeInfo;
import io.peerflash.replication.data.BlockCopy;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * How the write path reaches a volume's replicas. The cluster layer implements it; a single node
 * uses {@link #NONE}.
 */
public interface ReplicationPort {
  /**
   * Sends the block images of one write to the volume's replicas, in parallel with the local write.
   * The images' data must not be modified until the future completes.
   *
   * @return null when the volume needs no copies; otherwise a future that completes when every
   *     required replica has the copies durably, or fails (bounded in time) when one cannot; it
   *     fails with {@link FencedException} when a replica refused this node's epoch
   */
  CompletableFuture<Void> replicate(VolumeInfo volume, List<BlockCopy> blocks);

  /**
   * The owner destaged these versions; replicas may drop copies that are not newer. Called with the
   * blocks locked, so the release is ordered after any copy of them already sent.
   */
  void released(VolumeInfo volume, long[] blocks, long[] seqs);

  /**
   * Called before a write-back write takes any lock: may wait (bounded) until the volume can take
   * writes under its on-peer-loss policy.
   *
   * @throws CacheException UNAVAILABLE when the wait ran out
   */
  default void admit(VolumeInfo volume) throws CacheException {}

  /** Whether {@link #admit} would return at once, without waiting and without failing. */
  default boolean admitsNow(VolumeInfo volume) {
    return true;
  }

  /**
   * A replica could neither be reached nor be taken out of the map (the Raft leader is unreachable
   * or being elected): the write must not be acknowledged, not even through shared storage, since
   * that replica could still take the volume over without it. Retryable.
   */
  final class StuckException extends Exception {
    public StuckException(String message) {
      super(message);
    }
  }

  /** A replica knows a newer epoch: this node is no longer the volume's owner. */
  final class FencedException extends Exception {
    public FencedException(String message) {
      super(message);
    }
  }

  ReplicationPort NONE =
      new ReplicationPort() {
        @Override
        public CompletableFuture<Void> replicate(VolumeInfo volume, List<BlockCopy> blocks) {
          return null;
        }

        @Override
        public void released(VolumeInfo volume, long[] blocks, long[] seqs) {}
      };
}
