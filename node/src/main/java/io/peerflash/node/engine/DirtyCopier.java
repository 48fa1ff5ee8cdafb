package io.peerflash.node.engine;

import static io.peerflash.node.engine.BlockStore.BLOCK;

import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.index.BlockEntry;
import io.peerflash.node.index.VolumeInfo.Role;
import io.peerflash.replication.data.BlockCopy;
import java.nio.ByteBuffer;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.LongConsumer;

/** Re-protection's source side: an owned volume's dirty blocks sent to a new replica. */
final class DirtyCopier {
  private final BlockStore store;

  DirtyCopier(BlockStore store) {
    this.store = store;
  }

  private static final int COPY_BATCH_BLOCKS = 64;
  private static final int COPY_WINDOW = 8;

  /**
   * Re-protection: sends every dirty block of an owned volume to a new replica, while writes go on.
   * Returns once the replica acknowledged all of them.
   *
   * @param progress told the bytes acknowledged so far, after each batch
   * @return bytes copied
   * @throws CacheException UNAVAILABLE when a batch failed or timed out
   */
  long copyDirtyBlocks(String name, CopySink sink, long batchTimeoutMs, LongConsumer progress)
      throws CacheException {
    CachedVolume v = store.volume(name);
    long[][] dirty;
    v.gate.writeLock().lock();
    try {
      if (v.deleted || v.info.role() != Role.OWNER) {
        throw new CacheException(
            Reason.FAILED_PRECONDITION, "volume '" + name + "' is not owned by this node");
      }
      dirty = v.dirty.snapshot();
      sink.begin(v.nextSeq.get());
    } finally {
      v.gate.writeLock().unlock();
    }
    long[] blocks = dirty[1].clone();
    Arrays.sort(blocks);
    ArrayDeque<CompletableFuture<Void>> window = new ArrayDeque<>();
    long sentBytes = 0;
    long ackedBytes = 0;
    ArrayDeque<Long> batchBytes = new ArrayDeque<>();
    for (int from = 0; from < blocks.length; from += COPY_BATCH_BLOCKS) {
      int n = Math.min(COPY_BATCH_BLOCKS, blocks.length - from);
      long[] chunk = Arrays.copyOfRange(blocks, from, from + n);
      List<BlockCopy> images = new ArrayList<>(n);
      ByteBuffer buf = ByteBuffer.allocate(n * BLOCK);
      try (BlockLocks.Held held = v.locks.lockBlocks(chunk, n, false)) {
        for (long block : chunk) {
          BlockEntry e = v.blocks.get(block);
          if (e == null || !e.dirty()) {
            continue; // destaged meanwhile: storage has it, and its release went out already
          }
          if (e.isZero()) {
            images.add(new BlockCopy(block, e.seq(), null));
            continue;
          }
          ByteBuffer slice = buf.slice(images.size() * BLOCK, BLOCK);
          try {
            if (!store.readSlotVerified(v, block, e, slice.duplicate())) {
              continue;
            }
          } catch (CacheException ex) {
            if (ex.reason() == Reason.DATA_LOSS) {
              continue; // reported already; nothing sound to copy
            }
            throw ex;
          }
          images.add(new BlockCopy(block, e.seq(), slice));
        }
        if (!images.isEmpty()) {
          window.add(sink.send(images));
          batchBytes.add((long) images.size() * BLOCK);
          sentBytes += (long) images.size() * BLOCK;
        }
      }
      while (window.size() >= COPY_WINDOW) {
        awaitCopy(name, window.poll(), batchTimeoutMs);
        ackedBytes += batchBytes.poll();
        progress.accept(ackedBytes);
      }
    }
    while (!window.isEmpty()) {
      awaitCopy(name, window.poll(), batchTimeoutMs);
      ackedBytes += batchBytes.poll();
      progress.accept(ackedBytes);
    }
    return sentBytes;
  }

  private static void awaitCopy(String name, CompletableFuture<Void> f, long timeoutMs)
      throws CacheException {
    try {
      f.get(timeoutMs, TimeUnit.MILLISECONDS);
    } catch (ExecutionException | TimeoutException e) {
      Throwable cause = e instanceof ExecutionException ? e.getCause() : e;
      throw new CacheException(
          Reason.UNAVAILABLE,
          "re-protection of volume '" + name + "': the new replica did not take a batch: " + cause,
          cause);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new CacheException(Reason.UNAVAILABLE, "interrupted");
    }
  }
}
