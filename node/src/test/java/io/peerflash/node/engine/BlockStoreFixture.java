package io.peerflash.node.engine;

import io.peerflash.node.cache.CacheFile;
import io.peerflash.node.index.BlockEntry;
import io.peerflash.node.index.KeyValueStorage;
import io.peerflash.node.index.KeyValueStorage.Batch;
import io.peerflash.node.index.VolumeInfo;
import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.index.VolumeInfo.Role;
import io.peerflash.node.storage.FileBackingStore;
import io.peerflash.util.Time;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.BitSet;
import java.util.function.UnaryOperator;

/**
 * A {@link BlockStore} on its own, as the engine builds it: a real cache file, a real RocksDB index
 * (optionally wrapped, e.g. in a {@code FaultyKeyValueStorage}) behind the durability check, and
 * shared storage in files. No destager, no paths: a test drives the store's own methods.
 */
final class BlockStoreFixture implements AutoCloseable {
  static final int BLOCK = BlockStore.BLOCK;

  final LocalDurability durability = new LocalDurability();
  final KeyValueStorage kv;
  final CacheFile cacheFile;
  final FileBackingStore backing;
  final BlockStore store;
  final Path dataDir;

  /**
   * @param index wraps the RocksDB index the store gets (identity for the plain one)
   */
  BlockStoreFixture(Path dir, EngineConfig config, Time time, UnaryOperator<KeyValueStorage> index)
      throws IOException {
    dataDir = dir.resolve("data");
    kv =
        new DurabilityCheckedStorage(
            index.apply(LocalStorageOpener.REAL.openIndex(dataDir.resolve("index"))), durability);
    cacheFile = new CacheFile(dataDir.resolve("cache.slots"), config.cacheSizeBytes());
    backing = new FileBackingStore(dir.resolve("shared"));
    store = new BlockStore(config, time, kv, cacheFile, backing, new BitSet(), durability);
  }

  /** A store of {@code cacheBytes} on the plain RocksDB index and a stopped manual clock. */
  static BlockStoreFixture plain(Path dir, long cacheBytes) throws IOException {
    return new BlockStoreFixture(
        dir,
        EngineConfig.defaults(dir.resolve("data"), cacheBytes),
        new io.peerflash.util.ManualTime(),
        UnaryOperator.identity());
  }

  /** A write-back volume owned here, registered with the store. */
  CachedVolume volume(long id, String name, long sizeBytes) {
    CachedVolume v =
        new CachedVolume(
            new VolumeInfo(id, name, sizeBytes, CacheMode.WRITE_BACK, 0, Role.OWNER), 1);
    store.register(v);
    return v;
  }

  /** 4 KiB whose every byte derives from {@code tag}. */
  static ByteBuffer content(int tag) {
    ByteBuffer b = ByteBuffer.allocate(BLOCK);
    for (int i = 0; i < BLOCK; i++) {
      b.put(i, (byte) (tag * 31 + i));
    }
    return b;
  }

  /**
   * Takes a free slot, writes {@code tag}'s content there and returns its entry (not installed).
   */
  BlockEntry written(CachedVolume v, int tag, boolean dirty) throws CacheException {
    int[] slot = new int[1];
    if (!store.slots.tryAllocate(1, slot)) {
      throw new IllegalStateException("no free slot");
    }
    ByteBuffer data = content(tag);
    store.writeSlot(slot[0], data);
    return new BlockEntry(
        slot[0], v.nextSeq.getAndIncrement(), BlockStore.crc(data.duplicate()), dirty, 0);
  }

  /** Commits and installs an entry, as a path does, with the block locked. */
  void install(CachedVolume v, long block, BlockEntry e) throws CacheException {
    Batch batch = new Batch();
    store.index.put(batch, v.id(), block, e);
    store.commit(batch);
    try (BlockLocks.Held held = v.locks.lockRange(block, 1, true)) {
      store.install(v, block, e);
    }
  }

  /** Marks a version destaged (committing the batch), as the destager does. */
  void markDestaged(CachedVolume v, long block, long seq) throws CacheException {
    Batch batch = new Batch();
    try (BlockLocks.Held held = v.locks.lockRange(block, 1, true)) {
      store.markDestaged(v, block, seq, batch);
    }
    if (!batch.isEmpty()) {
      store.commitUnsynced(batch);
    }
  }

  void drop(CachedVolume v, long block) {
    try (BlockLocks.Held held = v.locks.lockRange(block, 1, true)) {
      store.drop(v, block);
    }
  }

  int freeSlots() {
    return store.slots.freeSlots();
  }

  @Override
  public void close() throws IOException {
    kv.close();
    cacheFile.close();
    backing.close();
  }
}
