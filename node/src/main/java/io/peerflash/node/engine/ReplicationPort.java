package io.peerflash.node.engine;

import io.peerflash.node.index.VolumeInfo;
import java.util.concurrent.CompletableFuture;

/**
 * How the write path reaches a volume's replicas. The cluster layer implements it; a single node
 * uses {@link #NONE}.
 */
public interface ReplicationPort {
  /**
   * Resolves where a write of {@code volume} goes now, from one read of the cluster map. Called
   * under the volume's gate, after {@link #admit}: a replica added for re-protection takes the gate
   * exclusively once the map names it, so every write placed after that barrier copies to it.
   */
  Placement place(VolumeInfo volume);

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
   * writes under its on-peer-loss policy. A write that must not wait asks its placement instead
   * ({@link Placement#admitsNow}).
   *
   * @throws CacheException UNAVAILABLE when the wait ran out
   */
  default void admit(VolumeInfo volume) throws CacheException {}

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
        public Placement place(VolumeInfo volume) {
          return Placement.LOCAL;
        }

        @Override
        public void released(VolumeInfo volume, long[] blocks, long[] seqs) {}
      };
}
