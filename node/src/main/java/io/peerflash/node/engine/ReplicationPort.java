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

  /** What a volume's FLUSH needs once its replicas answered {@link #syncCopies}. */
  enum CopiesSynced {
    /** Every copy the policy asks for is durable on its replica (or it has none to count). */
    SYNCED,
    /**
     * Fewer copies exist than the policy asks for, and it does not accept that: as a write's ack
     * would, the flush goes through to shared storage (destages what was written before it).
     */
    GO_THROUGH
  }

  /**
   * A block device's FLUSH (or FUA write) reaching the volume's replicas: asks each in-sync
   * replica, in parallel, to make every copy it acknowledged durable. Called after the flush began,
   * so it covers every copy acknowledged before.
   *
   * @return null when the volume keeps no copies on other nodes; otherwise a future that completes
   *     with what the flush still needs, or fails (bounded in time) when a replica that must be
   *     covered did not sync
   */
  default CompletableFuture<CopiesSynced> syncCopies(VolumeInfo volume) {
    return null;
  }

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
