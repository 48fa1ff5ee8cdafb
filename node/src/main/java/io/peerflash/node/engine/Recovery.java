package io.peerflash.node.engine;

import static io.peerflash.node.engine.BlockStore.BLOCK;

import io.peerflash.node.cache.CacheFile;
import io.peerflash.node.index.BlockEntry;
import io.peerflash.node.index.BlockIndex;
import io.peerflash.node.index.KeyValueStorage;
import io.peerflash.node.index.KeyValueStorage.Batch;
import io.peerflash.node.index.VolumeCatalog;
import io.peerflash.node.index.VolumeInfo;
import io.peerflash.node.storage.BackingStore;
import io.peerflash.util.Time;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Start: the block index read back into memory, checked against the cache file (a slot claimed
 * twice, a dirty block that fails its checksum, an entry outside its volume), into a {@link
 * BlockStore} whose free slots are those no entry points to.
 */
final class Recovery {
  private static final Logger log = LoggerFactory.getLogger(Recovery.class);

  private Recovery() {}

  /** Rebuilds in-memory state from the index: the block store, with the right free slots. */
  static BlockStore recover(
      EngineConfig config,
      Time time,
      KeyValueStorage kv,
      CacheFile cacheFile,
      BackingStore backing,
      LocalDurability durability)
      throws IOException {
    BlockIndex index = new BlockIndex(kv);
    VolumeCatalog catalog = new VolumeCatalog(kv);
    long started = time.nanoTime();
    Map<Long, VolumeInfo> infos = new HashMap<>();
    for (VolumeInfo info : catalog.loadAll()) {
      infos.put(info.id(), info);
    }
    BitSet used = new BitSet(cacheFile.slots());
    Map<Integer, long[]> slotOwner = new HashMap<>();
    Map<Long, Map<Long, BlockEntry>> entries = new HashMap<>();
    Map<Long, Long> maxSeq = new HashMap<>();
    Batch drop = new Batch();
    long[] dirtyBeyond = new long[1];
    List<OutsideEntry> outside = new ArrayList<>();
    index.forEach(
        (volumeId, block, e) -> {
          if (!infos.containsKey(volumeId)) {
            index.delete(drop, volumeId, block); // left over from a delete cut short
            return;
          }
          if (!IoRange.blockInside(infos.get(volumeId).sizeBytes(), block)) {
            outside.add(new OutsideEntry(volumeId, block, e)); // never served, never destaged
            return;
          }
          maxSeq.merge(volumeId, e.seq(), Math::max);
          if (!e.isZero()) {
            if (e.slot() >= cacheFile.slots()) {
              if (e.dirty()) {
                dirtyBeyond[0]++;
              } else {
                index.delete(drop, volumeId, block);
              }
              return;
            }
            if (used.get(e.slot())) {
              // Two entries for one slot: only possible when a clean entry's removal was lost
              // in a power cut. Keep the entry the slot's content matches.
              long[] other = slotOwner.get(e.slot());
              BlockEntry prev = entries.get(other[0]).get(other[1]);
              BlockEntry loser = pickLoser(cacheFile, prev, e);
              if (loser == e) {
                index.delete(drop, volumeId, block);
                return;
              }
              entries.get(other[0]).remove(other[1]);
              index.delete(drop, other[0], other[1]);
            }
            used.set(e.slot());
            slotOwner.put(e.slot(), new long[] {volumeId, block});
          }
          entries.computeIfAbsent(volumeId, k -> new HashMap<>()).put(block, e);
        });
    if (dirtyBeyond[0] > 0) {
      throw new IOException(
          dirtyBeyond[0]
              + " dirty blocks lie beyond the configured cache-size of "
              + config.cacheSizeBytes()
              + " bytes; restart with the cache-size they were written with");
    }
    quarantine(index, cacheFile, outside, infos, drop);
    kv.write(drop, true);
    BlockStore store = new BlockStore(config, time, kv, cacheFile, backing, used, durability);
    long dirtyBlocks = 0;
    long corrupt = 0;
    for (VolumeInfo info : infos.values()) {
      CachedVolume v = new CachedVolume(info, maxSeq.getOrDefault(info.id(), 0L) + 1);
      for (Map.Entry<Long, BlockEntry> me : entries.getOrDefault(info.id(), Map.of()).entrySet()) {
        long block = me.getKey();
        BlockEntry e = me.getValue();
        v.blocks.put(block, e);
        if (!e.isZero()) {
          store.evictor.occupy(e.slot(), info.id(), block, e.dirty());
        }
        if (e.dirty()) {
          dirtyBlocks++;
          if (!e.isZero()) {
            store.dirtySlots.incrementAndGet();
            v.dirtySlots.incrementAndGet();
            if (!store.checksumMatches(e)) {
              v.corruptBlocks.add(block);
              v.dirty.add(e.seq(), block);
              corrupt++;
              log.error(
                  "volume {} block {}: dirty data failed its checksum at start; it will not be"
                      + " served or destaged",
                  info.name(),
                  block);
              continue;
            }
          }
          v.dirty.add(e.seq(), block);
        }
      }
      store.register(v);
    }
    log.info(
        "recovered {} volumes, {} cached blocks ({} dirty, {} corrupt) in {} ms",
        infos.size(),
        used.cardinality(),
        dirtyBlocks,
        corrupt,
        TimeUnit.NANOSECONDS.toMillis(time.nanoTime() - started));
    return store;
  }

  /** An index entry whose block lies outside its volume. */
  private record OutsideEntry(long volumeId, long block, BlockEntry entry) {}

  /**
   * Moves entries of blocks outside their volume out of the index, with their data, and says so
   * loudly: such a block cannot be destaged (the destager would fail on it forever, pinning its
   * slot and making the volume unflushable) nor read, so it must not come back at every start.
   */
  private static void quarantine(
      BlockIndex index,
      CacheFile cacheFile,
      List<OutsideEntry> outside,
      Map<Long, VolumeInfo> infos,
      Batch batch)
      throws IOException {
    for (OutsideEntry o : outside) {
      BlockEntry e = o.entry();
      VolumeInfo info = infos.get(o.volumeId());
      byte[] data = null;
      if (!e.isZero() && e.slot() < cacheFile.slots()) {
        ByteBuffer buf = ByteBuffer.allocate(BLOCK);
        cacheFile.read(e.slot(), buf);
        data = buf.array();
      }
      index.quarantine(batch, o.volumeId(), o.block(), e, data);
      if (e.dirty()) {
        log.error(
            "volume {}: dirty block {} lies outside the volume ({} blocks); moved to the"
                + " quarantine table of the index with its data, never served or destaged",
            info.name(),
            o.block(),
            info.sizeBytes() / BLOCK);
      } else {
        log.warn(
            "volume {}: clean cached block {} lies outside the volume; moved to the quarantine"
                + " table of the index",
            info.name(),
            o.block());
      }
    }
  }

  private static BlockEntry pickLoser(CacheFile cacheFile, BlockEntry a, BlockEntry b)
      throws IOException {
    boolean aOk = checksumMatches(cacheFile, a);
    boolean bOk = checksumMatches(cacheFile, b);
    if (aOk != bOk) {
      return aOk ? b : a;
    }
    if (a.dirty() != b.dirty()) {
      return a.dirty() ? b : a;
    }
    return a.seq() >= b.seq() ? b : a;
  }

  private static boolean checksumMatches(CacheFile cacheFile, BlockEntry e) throws IOException {
    ByteBuffer buf = BlockStore.scratch().clear();
    cacheFile.read(e.slot(), buf);
    return BlockStore.crc(buf.flip()) == e.crc();
  }
}
