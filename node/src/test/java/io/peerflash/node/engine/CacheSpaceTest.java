package io.peerflash.node.engine;

import static io.peerflash.node.engine.EngineTestSupport.awaitTrue;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.index.BlockEntry;
import io.peerflash.node.index.FaultyKeyValueStorage;
import io.peerflash.node.index.KeyValueStorage;
import io.peerflash.util.ManualTime;
import io.peerflash.util.NamedThreadFactory;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link CacheSpace} over a {@link BlockStore} of its own, on a stopped clock: reservations with
 * and without waiting, what a write that waited in vain is told, and which blocks eviction may
 * take.
 */
class CacheSpaceTest {
  private static final long CACHE_BYTES = 4L << 20;
  private static final long BACKPRESSURE_MS = 5000;

  @TempDir Path dir;
  private final ManualTime time = new ManualTime();
  private final ExecutorService pool =
      Executors.newCachedThreadPool(new NamedThreadFactory("space-test", true));
  private final AtomicReference<FaultyKeyValueStorage> faulty = new AtomicReference<>();
  private BlockStoreFixture f;
  private BlockStore store;
  private CacheSpace space;
  private CachedVolume v;
  private int total;

  @BeforeEach
  void open() throws IOException {
    // No throttle: these tests are about space itself (the reserve's size is tested below).
    EngineConfig config =
        EngineConfig.defaults(dir.resolve("data"), CACHE_BYTES)
            .withThrottleReserve(0)
            .withVolumeDirtyShare(1)
            .withBackpressureTimeoutMs(BACKPRESSURE_MS);
    f =
        new BlockStoreFixture(
            dir,
            config,
            time,
            kv -> {
              faulty.set(new FaultyKeyValueStorage(kv));
              return faulty.get();
            });
    store = f.store;
    space = store.space;
    total = store.slots.totalSlots();
    v = f.volume(1, "v", 2 * CACHE_BYTES);
  }

  @AfterEach
  void close() throws IOException {
    pool.shutdownNow();
    f.close();
  }

  /** Fills every free slot with a dirty block (blocks 0..), so nothing is free or evictable. */
  private void fillDirty() throws CacheException {
    for (long block = 0; f.freeSlots() > 0; block++) {
      f.install(v, block, f.written(v, (int) block, true));
    }
  }

  @Test
  void reserveTakesFreeSlotsAtOnceAndWithoutWaitingReturnsNullWhenThereAreNone() throws Exception {
    int[] three = space.reserve(3, false);
    assertThat(three).hasSize(3).doesNotHaveDuplicates();
    int[] two = space.reserve(v, 2);
    assertThat(two).hasSize(2);
    assertThat(f.freeSlots()).isEqualTo(total - 5);
    store.releaseReserved(three, 0, 3);
    store.releaseReserved(two, 0, 2);

    fillDirty();
    assertThat(space.reserve(1, false)).as("nothing free, nothing clean").isNull();
    assertThat(space.reserveNow(1)).isNull();
    assertThat(store.stats.backpressureWaits.sum()).as("no wait").isZero();
  }

  @Test
  void aWaitingReservationTakesTheSlotFreedForIt() throws Exception {
    fillDirty();
    Future<int[]> waiting = pool.submit(() -> space.reserve(v, 1));
    awaitTrue(10_000, "the writer queued for space", () -> space.waiting() == 1);
    assertThat(v.waitingForSpace.get()).as("counted for the volume's share").isEqualTo(1);

    int freed = v.blocks.get(7L).slot();
    f.drop(v, 7);
    assertThat(waiting.get(10, TimeUnit.SECONDS)).containsExactly(freed);
    assertThat(store.stats.backpressureWaits.sum()).isEqualTo(1);
    assertThat(space.waiting()).isZero();
    assertThat(v.waitingForSpace.get()).isZero();
  }

  @Test
  void aWaitingReservationEvictsABlockTheDestagerCleaned() throws Exception {
    fillDirty();
    Future<int[]> waiting = pool.submit(() -> space.reserve(v, 1));
    awaitTrue(10_000, "the writer queued for space", () -> space.waiting() == 1);

    BlockEntry e = v.blocks.get(9L);
    f.markDestaged(v, 9, e.seq());
    assertThat(waiting.get(10, TimeUnit.SECONDS)).containsExactly(e.slot());
    assertThat(v.blocks).as("evicted").doesNotContainKey(9L);
    assertThat(store.stats.evictedBlocks.sum()).isEqualTo(1);
  }

  @Test
  void aWriteThatWaitedInVainIsToldTheBoundAndTheCounts() throws Exception {
    fillDirty();
    Future<int[]> waiting = pool.submit(() -> space.reserve(v, 2));
    awaitTrue(10_000, "the writer queued for space", () -> space.waiting() == 1);
    time.advanceMs(BACKPRESSURE_MS);

    assertThat(refusal(waiting)).isEqualTo(Reason.RESOURCE_EXHAUSTED);
    assertThat(message)
        .contains(
            "cache full: " + total + " of " + total + " slots hold dirty data and 0 are free",
            "a write of 2 blocks waited " + BACKPRESSURE_MS + " ms",
            "write-backpressure-timeout-ms");
    assertThat(store.stats.backpressureRejections.sum()).isEqualTo(1);
    assertThat(space.waiting()).isZero();
    assertThat(f.freeSlots()).as("nothing taken").isZero();

    assertThatThrownBy(() -> space.reserve(v, total + 1))
        .isInstanceOfSatisfying(
            CacheException.class,
            e -> {
              assertThat(e.reason()).isEqualTo(Reason.RESOURCE_EXHAUSTED);
              assertThat(e.getMessage())
                  .contains(
                      "a write of "
                          + (total + 1)
                          + " blocks needs more than the cache's "
                          + total
                          + " slots");
            });
  }

  @Test
  void aWriteThatWaitedWhileTheIndexTakesNoWritesIsToldAboutTheIndex() throws Exception {
    fillDirty();
    faulty.get().setFull(true);
    assertThat(store.kv.health().state()).isEqualTo(KeyValueStorage.Health.State.NO_SPACE);
    Future<int[]> waiting = pool.submit(() -> space.reserve(v, 1));
    awaitTrue(10_000, "the writer queued for space", () -> space.waiting() == 1);
    time.advanceMs(BACKPRESSURE_MS);

    assertThat(refusal(waiting)).isEqualTo(Reason.UNAVAILABLE);
    assertThat(message)
        .contains(
            "waited " + BACKPRESSURE_MS + " ms (write-backpressure-timeout-ms)",
            "the index takes no writes",
            "index: no space left on device (injected)")
        .doesNotContain("cache full");
  }

  private String message;

  private Reason refusal(Future<int[]> waiting) throws Exception {
    try {
      int[] got = waiting.get(10, TimeUnit.SECONDS);
      throw new AssertionError("reserved " + Arrays.toString(got) + " instead of failing");
    } catch (ExecutionException e) {
      assertThat(e.getCause()).isInstanceOf(CacheException.class);
      message = e.getCause().getMessage();
      return ((CacheException) e.getCause()).reason();
    }
  }

  @Test
  void tryEvictTakesOnlyACleanUnlockedBlockStillInThatSlot() throws Exception {
    BlockEntry clean = f.written(v, 1, false);
    BlockEntry dirty = f.written(v, 2, true);
    f.install(v, 1, clean);
    f.install(v, 2, dirty);
    CachedVolume other = f.volume(2, "other", CACHE_BYTES);
    BlockEntry ofOther = f.written(other, 3, false);
    f.install(other, 1, ofOther);
    int used = total - f.freeSlots();

    assertThat(space.tryEvict(dirty.slot(), v.id(), 2)).as("dirty").isFalse();
    assertThat(space.tryEvict(ofOther.slot(), v.id(), 1))
        .as("the slot no longer holds what the clock saw")
        .isFalse();
    assertThat(space.tryEvict(clean.slot(), 99, 1)).as("an unknown volume").isFalse();
    Future<Boolean> whileLocked;
    try (BlockLocks.Held held = v.locks.lockRange(1, 1, true)) {
      whileLocked = pool.submit(() -> space.tryEvict(clean.slot(), v.id(), 1));
      assertThat(whileLocked.get(10, TimeUnit.SECONDS)).as("locked by a writer").isFalse();
    }
    v.deleted = true;
    assertThat(space.tryEvict(clean.slot(), v.id(), 1)).as("a deleted volume").isFalse();
    v.deleted = false;
    assertThat(v.blocks).containsKeys(1L, 2L);
    assertThat(f.freeSlots()).isEqualTo(total - used);
    assertThat(store.stats.evictedBlocks.sum()).isZero();

    assertThat(space.tryEvict(clean.slot(), v.id(), 1)).isTrue();
    assertThat(v.blocks).doesNotContainKey(1L);
    assertThat(store.index.get(v.id(), 1)).as("gone from the index too").isNull();
    assertThat(f.freeSlots()).isEqualTo(total - used + 1);
    assertThat(store.stats.evictedBlocks.sum()).isEqualTo(1);
    assertThat(other.blocks.get(1L)).as("the other volume's block 1").isEqualTo(ofOther);
    assertThat(space.tryEvict(clean.slot(), v.id(), 1)).as("evicted already").isFalse();
  }

  @Test
  void theThrottleReserveIsTheShareButAtLeastTwoBatchesAndNeverPastTheHighWatermark() {
    EngineConfig base = EngineConfig.defaults(dir, CACHE_BYTES); // batch 1 MiB = 256 slots
    assertThat(CacheSpace.throttleReserveSlots(base.withThrottleReserve(0), 100_000))
        .as("no throttle")
        .isZero();
    assertThat(CacheSpace.throttleReserveSlots(base.withThrottleReserve(0.05), 100_000))
        .as("the share")
        .isEqualTo(5000);
    assertThat(CacheSpace.throttleReserveSlots(base.withThrottleReserve(0.05), 4096))
        .as("two destage batches")
        .isEqualTo(512);
    assertThat(
            CacheSpace.throttleReserveSlots(
                base.withThrottleReserve(0.05).withDestage(0.9, 0.4, 30_000), 1024))
        .as("the room above the high watermark")
        .isEqualTo(102);
  }
}
