package io.peerflash.node.engine;

import static io.peerflash.node.engine.BlockStoreFixture.BLOCK;
import static io.peerflash.node.engine.BlockStoreFixture.content;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.peerflash.node.cache.ClockEvictor;
import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.index.BlockEntry;
import io.peerflash.node.index.VolumeInfo.Role;
import io.peerflash.util.ManualTime;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link BlockStore} on its own: the three changes of a block map keep slots, dirty counts and the
 * evictor in step; checksums of slots; which volumes may be served.
 */
class BlockStoreTest {
  private static final long CACHE_BYTES = 4L << 20;

  @TempDir Path dir;
  private BlockStoreFixture f;
  private BlockStore store;
  private int total;

  @BeforeEach
  void open() throws IOException {
    EngineConfig config = EngineConfig.defaults(dir.resolve("data"), CACHE_BYTES);
    f = new BlockStoreFixture(dir, config, new ManualTime(), UnaryOperator.identity());
    store = f.store;
    total = store.slots.totalSlots();
  }

  @AfterEach
  void close() throws IOException {
    f.close();
  }

  /** Slots the clock would offer for eviction now (clean ones), by a dry run that takes none. */
  private Set<Integer> evictable() {
    Set<Integer> offered = new TreeSet<>();
    ClockEvictor.EvictionTarget refuse =
        (slot, volumeId, block) -> {
          offered.add(slot);
          return false;
        };
    store.evictor.evict(total, refuse);
    return offered;
  }

  private void assertAccounting(
      String when, long storeDirty, CachedVolume v, long volumeDirtySlots, int used) {
    assertThat(store.dirtySlots.get())
        .as("%s: the store's dirty slots", when)
        .isEqualTo(storeDirty);
    assertThat(v.dirtySlots.get())
        .as("%s: volume %s's dirty slots", when, v.name())
        .isEqualTo(volumeDirtySlots);
    assertThat(store.evictor.countDirty())
        .as("%s: dirty slots in the evictor", when)
        .isEqualTo((int) storeDirty);
    assertThat(f.freeSlots()).as("%s: free slots", when).isEqualTo(total - used);
  }

  @Test
  void installMarkDestagedAndDropKeepSlotsDirtyCountsAndTheEvictorInStep() throws Exception {
    CachedVolume v = f.volume(1, "v", 1 << 20);
    CachedVolume w = f.volume(2, "w", 1 << 20);

    BlockEntry first = f.written(v, 1, true);
    f.install(v, 10, first);
    assertAccounting("a dirty block", 1, v, 1, 1);
    assertThat(v.dirty.size()).isEqualTo(1);
    assertThat(evictable()).as("a dirty block is no candidate").isEmpty();

    BlockEntry second = f.written(v, 2, true);
    f.install(v, 10, second);
    assertAccounting("overwritten by a new dirty version", 1, v, 1, 1);
    assertThat(v.blocks.get(10L)).isEqualTo(second);
    assertThat(v.dirty.size()).as("only the newest version is dirty").isEqualTo(1);

    f.install(w, 10, f.written(w, 3, true));
    f.install(w, 11, f.written(w, 4, true));
    assertAccounting("two dirty blocks of another volume", 3, w, 2, 3);
    assertThat(v.dirtySlots.get()).as("per volume").isEqualTo(1);

    f.markDestaged(v, 10, first.seq());
    assertAccounting("an older version destaged: no change", 3, v, 1, 3);
    f.markDestaged(v, 10, second.seq());
    assertAccounting("the current version destaged", 2, v, 0, 3);
    assertThat(v.dirty.size()).isZero();
    assertThat(v.blocks.get(10L)).isEqualTo(second.asClean());
    assertThat(store.index.get(v.id(), 10)).as("durable as clean").isEqualTo(second.asClean());
    assertThat(evictable()).as("clean now: a candidate").containsExactly(second.slot());

    BlockEntry zero = new BlockEntry(BlockEntry.NO_SLOT, v.nextSeq.getAndIncrement(), 0, true, 0);
    f.install(v, 10, zero);
    assertAccounting("a trim: a zero block holds no slot", 2, v, 0, 2);
    assertThat(v.dirty.size()).as("but is dirty until destaged").isEqualTo(1);
    assertThat(evictable()).isEmpty();
    f.markDestaged(v, 10, zero.seq());
    assertThat(v.blocks).as("a destaged zero block is dropped").doesNotContainKey(10L);
    assertThat(store.index.get(v.id(), 10)).isNull();
    assertThat(v.dirty.size()).isZero();

    f.drop(w, 11);
    assertAccounting("a dirty block dropped", 1, w, 1, 1);
    assertThat(w.dirty.size()).isEqualTo(1);
    f.drop(w, 11); // nothing left to drop
    assertAccounting("dropped twice", 1, w, 1, 1);

    BlockEntry clean = f.written(w, 5, false);
    f.install(w, 10, clean);
    assertAccounting("a dirty block replaced by a clean copy", 0, w, 0, 1);
    assertThat(w.dirty.size()).isZero();
    assertThat(evictable()).containsExactly(clean.slot());
    f.drop(w, 10);
    assertAccounting("a clean block dropped", 0, w, 0, 0);
    assertThat(evictable()).isEmpty();
  }

  @Test
  void aCorruptCleanSlotIsAMissAndACorruptDirtySlotIsDataLoss() throws Exception {
    CachedVolume v = f.volume(1, "v", 1 << 20);
    BlockEntry clean = f.written(v, 1, false);
    BlockEntry dirty = f.written(v, 2, true);
    f.install(v, 3, clean);
    f.install(v, 4, dirty);

    ByteBuffer dst = ByteBuffer.allocate(BLOCK);
    assertThat(store.readSlotVerified(v, 3, clean, dst)).isTrue();
    assertThat(dst.flip()).isEqualTo(content(1));
    assertThat(store.readSlotVerified(v, 4, dirty, ByteBuffer.allocate(BLOCK))).isTrue();

    EngineTestSupport.corruptSlot(f.dataDir, clean.slot());
    EngineTestSupport.corruptSlot(f.dataDir, dirty.slot());

    assertThat(store.readSlotVerified(v, 3, clean, ByteBuffer.allocate(BLOCK)))
        .as("a clean copy: read shared storage instead")
        .isFalse();
    assertThat(v.corruptBlocks).isEmpty();
    assertThat(store.stats.checksumFailures.sum()).isEqualTo(1);

    assertThatThrownBy(() -> store.readSlotVerified(v, 4, dirty, ByteBuffer.allocate(BLOCK)))
        .isInstanceOfSatisfying(
            CacheException.class,
            e -> {
              assertThat(e.reason()).isEqualTo(Reason.DATA_LOSS);
              assertThat(e.getMessage())
                  .contains("'v' block 4 (offset " + 4 * BLOCK + ")", "dirty", "checksum");
            });
    assertThat(v.corruptBlocks).containsExactly(4L);
    assertThat(store.stats.checksumFailures.sum()).isEqualTo(2);
    assertThat(store.checksumMatches(dirty)).isFalse();

    // A new version of the block is sound again.
    f.install(v, 4, f.written(v, 3, true));
    assertThat(v.corruptBlocks).isEmpty();
  }

  @Test
  void checkServableRefusesWhatMayNotBeServedNow() throws Exception {
    CachedVolume v = f.volume(1, "v", 1 << 20);
    store.checkServable(v);
    assertThat(store.mayDestage(v)).isTrue();

    v.info = v.info.withRole(Role.REPLICA);
    assertRefused(v, Reason.FAILED_PRECONDITION, "held on this node as a replica");
    v.info = v.info.withRole(Role.OWNER);

    v.handover = CachedVolume.Handover.DRAINING;
    assertRefused(v, Reason.UNAVAILABLE, "moving to another node");
    assertThat(store.mayDestage(v)).as("draining: the rest is destaged").isTrue();
    v.handover = CachedVolume.Handover.FENCED;
    assertRefused(v, Reason.UNAVAILABLE, "moving to another node");
    assertThat(store.mayDestage(v)).as("fenced: the next owner may write").isFalse();
    v.handover = CachedVolume.Handover.NONE;

    store.mayServe = info -> !info.name().equals("v");
    assertRefused(v, Reason.UNAVAILABLE, "cluster lease is not valid");
    assertThat(store.mayDestage(v)).isFalse();
    CachedVolume other = f.volume(2, "other", 1 << 20);
    store.checkServable(other);
    store.mayServe = info -> true;
    store.checkServable(v);

    v.deleted = true;
    assertRefused(v, Reason.NOT_FOUND, "does not exist");
    v.deleted = false;

    f.durability.failed("an fsync of the cache file", new IOException("EIO"));
    assertRefused(v, Reason.UNAVAILABLE, "local flash failed");
    assertRefused(other, Reason.UNAVAILABLE, "local flash failed");
    assertThat(store.mayDestage(v)).isFalse();
  }

  private void assertRefused(CachedVolume v, Reason reason, String message) {
    assertThatThrownBy(() -> store.checkServable(v))
        .isInstanceOfSatisfying(
            CacheException.class,
            e -> {
              assertThat(e.reason()).isEqualTo(reason);
              assertThat(e.getMessage()).contains(message);
            });
  }
}
