package io.peerflash.node.engine;

import static io.peerflash.node.engine.BlockStore.BLOCK;

import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.index.BlockEntry;
import io.peerflash.node.index.KeyValueStorage.Batch;
import io.peerflash.node.index.VolumeInfo.CacheMode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Reads: cached blocks from their slots (checksum checked), misses from shared storage, which are
 * then promoted into the cache as clean blocks unless the read is part of a long sequential run.
 */
final class ReadPath {
  private static final Logger log = LoggerFactory.getLogger(ReadPath.class);

  private final BlockStore store;
  private final EngineConfig config;

  ReadPath(BlockStore store) {
    this.store = store;
    this.config = store.config;
  }

  /** Returns {@code length} bytes at {@code offset}: the latest acknowledged data of every byte. */
  byte[] read(String name, long offset, long length) throws CacheException {
    CachedVolume v = store.volume(name);
    return read(v, BlockStore.range(v, "read", offset, length), true);
  }

  /**
   * Starts a read and returns at once; the future completes with the data or fails with a {@link
   * CacheException}. A read that every cached block answers runs on the calling thread (a transport
   * thread: no hand-off); one that misses, or finds its blocks busy, runs {@link #read} on {@code
   * waits}.
   */
  CompletableFuture<byte[]> submitRead(String name, long offset, long length, Executor waits) {
    CompletableFuture<byte[]> done = new CompletableFuture<>();
    try {
      CachedVolume v = store.volume(name);
      byte[] hit = read(v, BlockStore.range(v, "read", offset, length), false);
      if (hit != null) {
        done.complete(hit);
        return done;
      }
    } catch (CacheException | RuntimeException e) {
      done.completeExceptionally(e);
      return done;
    }
    WritePath.runOn(waits, done, () -> done.complete(read(name, offset, length)));
    return done;
  }

  /**
   * @param mayWait false: return null, having changed nothing, instead of reading shared storage or
   *     waiting for a lock
   */
  private byte[] read(CachedVolume v, IoRange range, boolean mayWait) throws CacheException {
    String name = v.name();
    long offset = range.offset();
    int length = range.length();
    if (mayWait) {
      v.gate.readLock().lock();
    } else if (!v.gate.readLock().tryLock()) {
      return null;
    }
    byte[] out = new byte[length];
    try {
      store.checkServable(v);
      long first = range.firstBlock();
      int count = range.blockCount();
      long[] missing = new long[count];
      long[] versions = new long[count];
      int misses = 0;
      int hits = 0;
      byte[] missData;
      List<long[]> badClean = null;
      BlockLocks.Held held =
          mayWait
              ? v.locks.lockRange(first, count, false)
              : v.locks.tryLockRange(first, count, false);
      if (held == null) {
        return null;
      }
      try (held) {
        ByteBuffer scratch = BlockStore.scratch();
        for (int i = 0; i < count; i++) {
          long block = first + i;
          long blockStart = block * BLOCK;
          int from = range.fromInBlock(block);
          int to = range.toInBlock(block);
          int outPos = range.dataPosition(block);
          BlockEntry e = v.blocks.get(block);
          if (e == null) {
            if (!mayWait) {
              return null;
            }
            versions[misses] = v.locks.version(block);
            missing[misses++] = block;
            continue;
          }
          if (e.isZero()) {
            hits++;
            continue; // out is already zeros
          }
          if (v.corruptBlocks.contains(block)) {
            throw new CacheException(
                Reason.DATA_LOSS,
                "volume '"
                    + name
                    + "' block "
                    + block
                    + " (offset "
                    + blockStart
                    + "): cached dirty data failed its checksum");
          }
          boolean whole = from == 0 && to == BLOCK;
          ByteBuffer dst = whole ? ByteBuffer.wrap(out, outPos, BLOCK) : scratch.clear();
          if (store.readSlotVerified(v, block, e, dst)) {
            if (!whole) {
              System.arraycopy(scratch.array(), from, out, outPos, to - from);
            }
            store.evictor.touch(e.slot());
            hits++;
          } else {
            if (!mayWait) {
              return null;
            }
            versions[misses] = v.locks.version(block);
            missing[misses++] = block;
            badClean = badClean == null ? new ArrayList<>() : badClean;
            badClean.add(new long[] {block, e.slot()});
          }
        }
        store.stats.readHits.add(hits);
        store.stats.readMisses.add(misses);
        missData = misses == 0 ? null : readMisses(v, range, out, missing, misses);
      }
      // Counted once the read goes ahead (a read retried on another thread would count twice).
      long run = v.noteRead(offset, length);
      boolean promote =
          v.info.mode() != CacheMode.WRITE_AROUND
              && (config.sequentialCutoffBytes() == 0 || run <= config.sequentialCutoffBytes());
      if (badClean != null) {
        // Drop damaged clean copies so the next read promotes a good one from shared storage.
        for (long[] b : badClean) {
          store.space.tryEvict((int) b[1], v.id(), b[0]);
        }
      } else if (promote && missData != null) {
        promote(v, missing, versions, misses, missData);
      }
    } finally {
      v.gate.readLock().unlock();
    }
    return out;
  }

  /**
   * Reads missed blocks whole from shared storage (adjacent ones in one request), copies the
   * requested part into {@code out}, and returns the whole blocks for promotion.
   */
  private byte[] readMisses(CachedVolume v, IoRange range, byte[] out, long[] missing, int misses)
      throws CacheException {
    byte[] data = new byte[misses * BLOCK];
    int i = 0;
    while (i < misses) {
      int j = i + 1;
      while (j < misses && missing[j] == missing[j - 1] + 1) {
        j++;
      }
      try {
        store.backing.read(
            v.name(), missing[i] * BLOCK, ByteBuffer.wrap(data, i * BLOCK, (j - i) * BLOCK));
      } catch (IOException e) {
        throw CacheException.unavailable(
            "shared storage read of volume '" + v.name() + "' failed", e);
      }
      i = j;
    }
    for (int k = 0; k < misses; k++) {
      int from = range.fromInBlock(missing[k]);
      int to = range.toInBlock(missing[k]);
      System.arraycopy(data, k * BLOCK + from, out, range.dataPosition(missing[k]), to - from);
    }
    return data;
  }

  /**
   * Inserts blocks read from shared storage as clean entries, unless anything touched their stripe
   * since the read (then the data may be stale) or there is no free space without waiting.
   */
  private void promote(CachedVolume v, long[] blocks, long[] versions, int n, byte[] data) {
    int[] newSlots;
    try {
      newSlots = store.space.reserve(n, false);
    } catch (CacheException e) {
      return;
    }
    if (newSlots == null) {
      return;
    }
    int used = 0;
    try (BlockLocks.Held held = v.locks.lockBlocks(blocks, n, true)) {
      if (v.deleted) {
        return;
      }
      Batch batch = new Batch();
      BlockEntry[] fresh = new BlockEntry[n];
      long now = store.time.nowMs();
      for (int i = 0; i < n; i++) {
        if (v.blocks.containsKey(blocks[i]) || v.locks.version(blocks[i]) != versions[i]) {
          continue;
        }
        ByteBuffer content = ByteBuffer.wrap(data, i * BLOCK, BLOCK);
        int slot = newSlots[used++];
        int crc = BlockStore.crc(content.duplicate());
        store.writeSlot(slot, content);
        fresh[i] = new BlockEntry(slot, v.nextSeq.getAndIncrement(), crc, false, now);
        store.index.put(batch, v.id(), blocks[i], fresh[i]);
      }
      store.commitUnsynced(batch);
      for (int i = 0; i < n; i++) {
        if (fresh[i] != null) {
          store.install(v, blocks[i], fresh[i]);
        }
      }
    } catch (CacheException e) {
      log.debug("promotion skipped: {}", e.getMessage());
      used = 0; // nothing installed: the batch failed before install
    } finally {
      if (used < n) {
        store.slots.freeAll(newSlots, used, n);
      }
    }
  }
}
