package io.peerflash.node.engine;

import io.peerflash.replication.data.BlockCopy;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/** Where re-protection sends an owned volume's dirty blocks: one new replica, in order. */
public interface CopySink {
  /**
   * Called once, under the volume's write barrier (no write in flight, none starting): every write
   * that follows reaches the new replica through the write path. Must not block.
   *
   * @param resetBelowSeq the replica must first drop copies below this sequence
   */
  void begin(long resetBelowSeq);

  /**
   * Sends one batch; called with its blocks locked, so a release of them is ordered after it. Must
   * not block; the data is not touched afterwards.
   */
  CompletableFuture<Void> send(List<BlockCopy> blocks);
}
