package io.peerflash.node.engine;

import io.peerflash.node.cache.SlotReservations;
import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.index.BlockEntry;
import io.peerflash.node.index.KeyValueStorage;
import io.peerflash.node.index.KeyValueStorage.Batch;
import java.io.IOException;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Free slots for writers: reservation in arrival order, eviction of clean blocks, the write
 * throttle, and the bounded wait for the destager when the cache is full of dirty data.
 */
final class CacheSpace {
  private static final Logger log = LoggerFactory.getLogger(CacheSpace.class);

  private final BlockStore store;
  private final EngineConfig config;

  // Writers short of free slots wait here in arrival order; the destager signals after cleaning.
  private final SlotReservations reservations;

  /** Told when a writer starts waiting for space: the destager must go flat out now. */
  private volatile Runnable onWait = () -> {};

  CacheSpace(BlockStore store) {
    this.store = store;
    this.config = store.config;
    this.reservations =
        new SlotReservations(
            store.slots,
            new SlotReservations.SpaceSource() {
              @Override
              public long reclaimableSlots() {
                return store.slots.totalSlots() - store.dirtySlots.get();
              }

              @Override
              public void reclaim(int missing) {
                reclaimClean(missing);
              }
            },
            throttleReserveSlots(config, store.cacheFile.slots()),
            store.time,
            this::onSpaceWait);
  }

  void onWait(Runnable hook) {
    this.onWait = hook;
  }

  /** Takes {@code n} slots for a write of {@code v}, waiting as {@link #reserve} does. */
  int[] reserve(CachedVolume v, int n) throws CacheException {
    int[] now = reservations.reserveNow(n);
    if (now != null) {
      return now;
    }
    store.dirtyShare.enterSpaceWait(v);
    try {
      return reserve(n, true);
    } finally {
      store.dirtyShare.exitSpaceWait(v);
    }
  }

  /** {@code n} slots at once if they are free without waiting or throttling; else null. */
  int[] reserveNow(int n) {
    return reservations.reserveNow(n);
  }

  /**
   * Takes {@code n} free slots, evicting clean blocks if needed. When {@code wait}, waits up to the
   * backpressure timeout for the destager to clean blocks, then fails with RESOURCE_EXHAUSTED;
   * otherwise returns null at once when there is no space.
   */
  int[] reserve(int n, boolean wait) throws CacheException {
    if (!wait) {
      return reservations.tryReserve(n);
    }
    if (n > store.slots.totalSlots()) {
      throw new CacheException(
          Reason.RESOURCE_EXHAUSTED,
          String.format(
              "a write of %d blocks needs more than the cache's %d slots",
              n, store.slots.totalSlots()));
    }
    int[] out;
    try {
      out =
          reservations.reserve(
              n, TimeUnit.MILLISECONDS.toNanos(config.writeBackpressureTimeoutMs()));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new CacheException(Reason.UNAVAILABLE, "interrupted while waiting for space");
    }
    if (out == null) {
      store.stats.backpressureRejections.increment();
      KeyValueStorage.Health index = store.kv.health();
      if (index.state() != KeyValueStorage.Health.State.OK) {
        // The destager cannot mark a destaged block clean while the index takes no writes, so the
        // space this write waited for comes back only with the index: say that, not "cache full".
        throw new CacheException(
            Reason.UNAVAILABLE,
            String.format(
                "a write of %d blocks waited %d ms (write-backpressure-timeout-ms) for space the"
                    + " destager cannot free while the index takes no writes: %s",
                n, config.writeBackpressureTimeoutMs(), index.detail()));
      }
      throw new CacheException(
          Reason.RESOURCE_EXHAUSTED,
          String.format(
              "cache full: %d of %d slots hold dirty data and %d are free; a write of %d"
                  + " blocks waited %d ms (write-backpressure-timeout-ms) for the destager",
              store.dirtySlots.get(),
              store.slots.totalSlots(),
              store.slots.freeSlots(),
              n,
              config.writeBackpressureTimeoutMs()));
    }
    return out;
  }

  /**
   * The write throttle's reserve: the configured share of the cache, but at least two destage
   * batches (space comes back a batch at a time), and never past the high watermark.
   */
  static long throttleReserveSlots(EngineConfig config, int totalSlots) {
    if (config.writeThrottleReserve() <= 0) {
      return 0;
    }
    long reserve =
        Math.max(
            (long) (config.writeThrottleReserve() * totalSlots),
            2L * config.destageBatchBytes() / BlockStore.BLOCK);
    return Math.min(reserve, (long) ((1 - config.destageHighWatermark()) * totalSlots));
  }

  /** Slots came free: the head of the queue may go. */
  void spaceFreed() {
    reservations.spaceFreed();
  }

  /** Dirty slots became clean (or went): the throttle's measure of the destager's pace. */
  void reclaimed(int n) {
    reservations.reclaimed(n);
  }

  /** Writers waiting for space now. */
  int waiting() {
    return reservations.waiting();
  }

  /** Evicts clean blocks for a reservation that found too few free slots. */
  private void reclaimClean(int missing) {
    long clean = store.slots.totalSlots() - store.slots.freeSlots() - store.dirtySlots.get();
    if (clean > 0) {
      store.evictor.evict(missing, this::tryEvict);
    }
  }

  private void onSpaceWait() {
    store.stats.backpressureWaits.increment();
    onWait.run();
  }

  /** Evicts one clean block if it is still where the clock saw it and nobody holds it. */
  boolean tryEvict(int slot, long volumeId, long block) {
    CachedVolume v = store.byId(volumeId);
    if (v == null) {
      return false;
    }
    BlockLocks.Held held = v.locks.tryLockBlock(block);
    if (held == null) {
      return false;
    }
    try (held) {
      BlockEntry e = v.blocks.get(block);
      if (v.deleted || e == null || e.dirty() || e.slot() != slot) {
        return false;
      }
      Batch batch = new Batch();
      store.index.delete(batch, volumeId, block);
      store.kv.write(batch, false);
      v.blocks.remove(block);
      v.locks.bump(block);
      store.evictor.release(slot);
      store.slots.free(slot);
      store.stats.evictedBlocks.increment();
      return true;
    } catch (IOException e) {
      log.warn("evicting volume {} block {} failed: {}", v.name(), block, e.getMessage());
      return false;
    }
  }
}
