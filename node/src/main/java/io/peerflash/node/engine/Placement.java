package io.peerflash.node.engine;

import io.peerflash.node.index.VolumeInfo;
import io.peerflash.replication.data.BlockCopy;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * Where one write of a volume goes and whether this node may take it, resolved once, from one read
 * of the cluster map, under the volume's gate ({@link ReplicationPort#place}): the fencing verdict
 * (lease, in step with the map, named owner), admission under the on-peer-loss policy, and the
 * replicas and epoch its copies go to. The write path passes it down to its serve check and to the
 * copies, so one write never acts on two versions of the map.
 */
public interface Placement {
  /**
   * This node may serve the volume: the fencing rule ({@code Fencing.serve} in a cluster) said yes.
   */
  boolean mayServe();

  /** The volume's on-peer-loss policy lets it take a write now, without waiting. */
  boolean admitsNow();

  /**
   * Sends the block images of one write to this placement's replicas at its epoch, in parallel with
   * the local write. The images' data must not be modified until the future completes.
   *
   * @return null when the volume needs no copies; otherwise a future that completes when every
   *     required replica has the copies durably, or fails (bounded in time) when one cannot; it
   *     fails with {@link ReplicationPort.FencedException} when a replica refused this node's epoch
   */
  CompletableFuture<Void> replicate(VolumeInfo volume, List<BlockCopy> blocks);

  /** A single node's placement: it serves, admits and keeps no copies elsewhere. */
  Placement LOCAL = serving((volume, blocks) -> null);

  /** A placement that serves and admits, with its copies sent by {@code copies}. */
  static Placement serving(Copies copies) {
    return new Placement() {
      @Override
      public boolean mayServe() {
        return true;
      }

      @Override
      public boolean admitsNow() {
        return true;
      }

      @Override
      public CompletableFuture<Void> replicate(VolumeInfo volume, List<BlockCopy> blocks) {
        return copies.replicate(volume, blocks);
      }
    };
  }

  /** How a {@link #serving} placement sends copies. */
  @FunctionalInterface
  interface Copies {
    CompletableFuture<Void> replicate(VolumeInfo volume, List<BlockCopy> blocks);
  }
}
