package io.peerflash.node.engine;

import io.peerflash.node.cache.CacheFile;
import io.peerflash.node.cache.ClockEvictor;
import io.peerflash.node.cache.SlotAllocator;
import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.index.BlockEntry;
import io.peerflash.node.index.BlockIndex;
import io.peerflash.node.index.KeyValueStorage;
import io.peerflash.node.index.KeyValueStorage.Batch;
import io.peerflash.node.index.VolumeCatalog;
import io.peerflash.node.index.VolumeInfo;
import io.peerflash.node.index.VolumeInfo.Role;
import io.peerflash.node.storage.BackingStore;
import io.peerflash.replication.fault.FaultPoints;
import io.peerflash.util.Time;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;
import java.util.function.Predicate;
import java.util.zip.CRC32C;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The cache's blocks: the volumes held here, the cache file's slots, the block index and its
 * commits, and the in-memory mirror of the index that every path reads. The write path, read path,
 * replica store, destager and recovery all change blocks only through {@link #install}, {@link
 * #markDestaged} and {@link #drop}, which keep the slot, dirty and eviction accounting in step.
 */
final class BlockStore implements DestageSource {
  static final int BLOCK = CacheFile.SLOT_SIZE;

  private static final Logger log = LoggerFactory.getLogger(BlockStore.class);
  private static final ThreadLocal<ByteBuffer> SCRATCH =
      ThreadLocal.withInitial(() -> ByteBuffer.allocate(BLOCK));
  private static final ThreadLocal<CRC32C> CRC = ThreadLocal.withInitial(CRC32C::new);

  final EngineConfig config;
  final Time time;
  final KeyValueStorage kv;
  final BlockIndex index;
  final VolumeCatalog catalog;
  final CacheFile cacheFile;
  final SlotAllocator slots;
  final ClockEvictor evictor;
  final BackingStore backing;
  final GroupCommitter committer;
  final EngineStats stats = new EngineStats();
  final LocalDurability durability;
  final DirtyShare dirtyShare;

  /** Slots holding dirty data (zero blocks hold none). Drives the watermarks. */
  final AtomicLong dirtySlots = new AtomicLong();

  /** Free slots for writers, eviction, and the wait for the destager. */
  final CacheSpace space;

  /** Whether this node may serve and destage an owned volume now (its cluster lease is valid). */
  volatile Predicate<VolumeInfo> mayServe = v -> true;

  volatile FaultPoints faults = new FaultPoints();

  volatile EngineObserver observer = EngineObserver.NONE;

  private final ConcurrentHashMap<String, CachedVolume> volumesByName = new ConcurrentHashMap<>();
  private final ConcurrentHashMap<Long, CachedVolume> volumesById = new ConcurrentHashMap<>();

  BlockStore(
      EngineConfig config,
      Time time,
      KeyValueStorage kv,
      CacheFile cacheFile,
      BackingStore backing,
      BitSet usedSlots,
      LocalDurability durability) {
    this.config = config;
    this.time = time;
    this.kv = kv;
    this.durability = durability;
    this.index = new BlockIndex(kv);
    try {
      this.catalog = new VolumeCatalog(kv);
    } catch (IOException e) {
      throw new IllegalStateException(e);
    }
    this.cacheFile = cacheFile;
    this.slots = new SlotAllocator(cacheFile.slots(), usedSlots);
    this.evictor = new ClockEvictor(cacheFile.slots());
    this.backing = backing;
    this.dirtyShare =
        new DirtyShare(
            config.volumeDirtyShare(),
            cacheFile.slots(),
            config.writeBackpressureTimeoutMs(),
            time);
    this.committer = new GroupCommitter(kv, cacheFile, config.syncWrites(), durability);
    this.space = new CacheSpace(this);
  }

  void setObserver(EngineObserver observer) {
    this.observer = observer;
    committer.observer = observer;
  }

  void setFaultPoints(FaultPoints faults) {
    this.faults = faults;
    committer.faults = faults;
  }

  // ---------------------------------------------------------------------------------------------
  // Volumes held here

  CachedVolume volume(String name) throws CacheException {
    CachedVolume v = name == null ? null : volumesByName.get(name);
    if (v == null) {
      throw CacheException.notFound(name);
    }
    return v;
  }

  /** The volume of that name, or null. */
  CachedVolume find(String name) {
    return volumesByName.get(name);
  }

  CachedVolume byId(long id) {
    return volumesById.get(id);
  }

  @Override
  public List<CachedVolume> volumes() {
    return new ArrayList<>(volumesById.values());
  }

  int volumeCount() {
    return volumesByName.size();
  }

  void register(CachedVolume v) {
    volumesById.put(v.id(), v);
    volumesByName.put(v.name(), v);
  }

  void unregisterName(CachedVolume v) {
    volumesByName.remove(v.name(), v);
  }

  void unregisterId(CachedVolume v) {
    volumesById.remove(v.id());
  }

  /**
   * Lets I/O on an owned volume go ahead: local flash has kept its fsyncs, the volume exists and is
   * owned here, is not being handed over, and the node's lease is valid.
   */
  void checkServable(CachedVolume v) throws CacheException {
    checkServable(v, () -> mayServe.test(v.info));
  }

  /** {@link #checkServable(CachedVolume)} for a write, by the fencing verdict of its placement. */
  void checkServable(CachedVolume v, Placement placement) throws CacheException {
    checkServable(v, placement::mayServe);
  }

  private void checkServable(CachedVolume v, BooleanSupplier mayServe) throws CacheException {
    durability.check();
    if (v.deleted) {
      throw CacheException.notFound(v.name());
    }
    if (v.info.role() != Role.OWNER) {
      throw new CacheException(
          Reason.FAILED_PRECONDITION,
          "volume '" + v.name() + "' is held on this node as a replica; its owner serves it");
    }
    if (v.handover != CachedVolume.Handover.NONE) {
      throw new CacheException(
          Reason.UNAVAILABLE, "volume '" + v.name() + "' is moving to another node; retry shortly");
    }
    if (!mayServe.getAsBoolean()) {
      throw new CacheException(
          Reason.UNAVAILABLE,
          "volume '" + v.name() + "': this node's cluster lease is not valid; not serving");
    }
  }

  /** Destaging an owned volume is allowed: the node may serve it and has not handed it over. */
  @Override
  public boolean mayDestage(CachedVolume v) {
    // After a failed fsync the cached data may not be what was written: destaging it could put
    // old bytes on shared storage. A replica takes the volume over instead.
    return durability.ok() && v.handover != CachedVolume.Handover.FENCED && mayServe.test(v.info);
  }

  /** The request's range, checked against the volume ({@link IoRange#check}). */
  static IoRange range(CachedVolume v, String op, long offset, long length) throws CacheException {
    return IoRange.check(op, v.name(), v.info.sizeBytes(), offset, length);
  }

  // ---------------------------------------------------------------------------------------------
  // Block entries: the only places that change a volume's block map

  /** Publishes a committed entry. Call with the block write-locked. */
  void install(CachedVolume v, long block, BlockEntry fresh) {
    BlockEntry old = v.blocks.put(block, fresh);
    if (old != null) {
      release(v, old);
    }
    v.corruptBlocks.remove(block);
    if (fresh.dirty()) {
      v.dirty.add(fresh.seq(), block);
      if (!fresh.isZero()) {
        dirtySlots.incrementAndGet();
        v.dirtySlots.incrementAndGet();
      }
    }
    if (!fresh.isZero()) {
      evictor.occupy(fresh.slot(), v.id(), block, fresh.dirty());
    }
    v.locks.bump(block);
  }

  /**
   * Marks a destaged version clean (a zero block is dropped: shared storage now reads as zeros),
   * unless a newer version replaced it meanwhile. Call with the block write-locked.
   */
  @Override
  public void markDestaged(CachedVolume v, long block, long seq, Batch batch) {
    BlockEntry e = v.blocks.get(block);
    if (e == null || e.seq() != seq || !e.dirty()) {
      return;
    }
    v.dirty.remove(seq);
    if (e.isZero()) {
      v.blocks.remove(block);
      index.delete(batch, v.id(), block);
    } else {
      BlockEntry clean = e.asClean();
      v.blocks.put(block, clean);
      index.put(batch, v.id(), block, clean);
      dirtyDropped(v);
      evictor.markClean(e.slot());
    }
    v.locks.bump(block);
  }

  /** Removes a committed-deleted entry. Call with the block write-locked. */
  void drop(CachedVolume v, long block) {
    BlockEntry old = v.blocks.remove(block);
    if (old != null) {
      release(v, old);
      v.corruptBlocks.remove(block);
      v.locks.bump(block);
    }
  }

  private void release(CachedVolume v, BlockEntry old) {
    if (old.dirty()) {
      v.dirty.remove(old.seq());
      if (!old.isZero()) {
        dirtyDropped(v);
      }
    }
    if (!old.isZero()) {
      evictor.release(old.slot());
      slots.free(old.slot());
    }
    space.spaceFreed();
  }

  /** Slots that hold dirty data no longer: space the throttle may hand out again. */
  void dirtyDropped(CachedVolume v) {
    dirtySlots.decrementAndGet();
    v.dirtySlots.decrementAndGet();
    dirtyShare.signal();
    space.reclaimed(1);
  }

  /**
   * Drops the clean cached copies of a range, durably (synced with --sync). Call with the blocks
   * write-locked.
   */
  void dropClean(CachedVolume v, long first, int count) throws CacheException {
    Batch batch = new Batch();
    for (int i = 0; i < count; i++) {
      BlockEntry e = v.blocks.get(first + i);
      if (e != null && !e.dirty()) {
        index.delete(batch, v.id(), first + i);
      }
    }
    if (batch.isEmpty()) {
      return;
    }
    commitMaybeSynced(batch);
    for (int i = 0; i < count; i++) {
      BlockEntry e = v.blocks.get(first + i);
      if (e != null && !e.dirty()) {
        drop(v, first + i);
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Index commits and slot I/O

  /** Commits a batch of new dirty entries after the data they point to (group commit). */
  void commit(Batch batch) throws CacheException {
    try {
      committer.commit(batch);
    } catch (IOException e) {
      throw CacheException.unavailable("local index commit failed", e);
    }
  }

  /**
   * Returns once everything written so far is on this node's non-volatile flash (cache file and
   * index synced), also without --sync; shares the fsync of concurrent commits and syncs ({@link
   * GroupCommitter#sync}).
   */
  void syncLocal() throws CacheException {
    try {
      committer.sync();
    } catch (IOException e) {
      throw CacheException.unavailable("sync of local flash", e);
    }
  }

  /**
   * Whether a failed {@link #commit} may still have applied its batch, so that the index may point
   * to the slots it wrote. Not when the index refused it for lack of space: those slots are free.
   */
  static boolean mayBeApplied(CacheException commitFailure) {
    return !(commitFailure.getCause() instanceof IOException io
        && KeyValueStorage.wroteNothing(io));
  }

  /** Commits entries a power cut may lose without harm (clean copies, evictions). */
  void commitUnsynced(Batch batch) throws CacheException {
    try {
      kv.write(batch, false);
    } catch (IOException e) {
      throw CacheException.unavailable("local index commit failed", e);
    }
  }

  /** Commits a removal that must survive a power cut when the node runs with --sync. */
  void commitMaybeSynced(Batch batch) throws CacheException {
    try {
      kv.write(batch, config.syncWrites());
    } catch (IOException e) {
      throw CacheException.unavailable("local index commit failed", e);
    }
  }

  void writeSlot(int slot, ByteBuffer content) throws CacheException {
    try {
      cacheFile.write(slot, content.duplicate());
    } catch (IOException e) {
      throw CacheException.unavailable("local flash write failed", e);
    }
  }

  /** Frees reserved slots {@code from} to {@code to} that no entry points to. */
  void releaseReserved(int[] reserved, int from, int to) {
    if (reserved != null && from < to) {
      slots.freeAll(reserved, from, to);
    }
  }

  /**
   * Reads a slot and checks its CRC. A failed clean block returns false (read shared storage
   * instead); a failed dirty block is acknowledged data damaged on flash and throws DATA_LOSS.
   */
  boolean readSlotVerified(CachedVolume v, long block, BlockEntry e, ByteBuffer dst)
      throws CacheException {
    int start = dst.position();
    try {
      cacheFile.read(e.slot(), dst);
    } catch (IOException ex) {
      throw CacheException.unavailable("local flash read failed", ex);
    }
    ByteBuffer check = dst.duplicate().position(start).limit(start + BLOCK);
    if (crc(check) == e.crc()) {
      return true;
    }
    stats.checksumFailures.increment();
    if (e.dirty()) {
      v.corruptBlocks.add(block);
      log.error("volume {} block {}: dirty data failed its checksum", v.name(), block);
      throw new CacheException(
          Reason.DATA_LOSS,
          "volume '"
              + v.name()
              + "' block "
              + block
              + " (offset "
              + block * BLOCK
              + "): cached dirty data failed its checksum");
    }
    log.warn(
        "volume {} block {}: clean cached copy failed its checksum; re-reading shared storage",
        v.name(),
        block);
    return false;
  }

  /** Whether a slot still holds what its entry's checksum says (read at start). */
  boolean checksumMatches(BlockEntry e) throws IOException {
    ByteBuffer buf = SCRATCH.get().clear();
    cacheFile.read(e.slot(), buf);
    return crc(buf.flip()) == e.crc();
  }

  /** The block's current 4 KiB (cache or shared storage), in a scratch buffer. Call locked. */
  ByteBuffer currentContent(CachedVolume v, long block) throws CacheException {
    ByteBuffer buf = SCRATCH.get().clear();
    BlockEntry e = v.blocks.get(block);
    if (e != null && e.isZero()) {
      buf.put(0, new byte[BLOCK]);
      return buf;
    }
    if (e != null && readSlotVerified(v, block, e, buf.clear())) {
      return buf.clear();
    }
    try {
      backing.read(v.name(), block * BLOCK, buf.clear());
    } catch (IOException ex) {
      throw CacheException.unavailable(
          "shared storage read of volume '"
              + v.name()
              + "' failed (needed to merge a write not aligned to 4096 bytes)",
          ex);
    }
    return buf.clear();
  }

  // ---------------------------------------------------------------------------------------------
  // What the destager sees ({@link DestageSource})

  @Override
  public double dirtyFraction() {
    return (double) dirtySlots.get() / slots.totalSlots();
  }

  @Override
  public boolean writersWaitForSpace() {
    return space.waiting() > 0;
  }

  @Override
  public void readSlot(int slot, ByteBuffer dst) throws IOException {
    cacheFile.read(slot, dst);
  }

  @Override
  public void commitDestaged(Batch batch) throws IOException {
    // Synced with --sync: once a clean block's slot is reused, the durable index must not still
    // call it dirty, or a power cut would make its data look damaged.
    kv.write(batch, config.syncWrites());
  }

  @Override
  public void destaged(CachedVolume v, long bytes, long nanos) {
    observer.destaged(nanos, bytes);
    v.destagedBytes.add(bytes);
    stats.destagedBytes.add(bytes);
    space.spaceFreed();
  }

  @Override
  public void checksumFailed() {
    stats.checksumFailures.increment();
  }

  @Override
  public FaultPoints faults() {
    return faults;
  }

  /** A scratch block buffer of the calling thread. */
  static ByteBuffer scratch() {
    return SCRATCH.get();
  }

  static int crc(ByteBuffer content) {
    CRC32C c = CRC.get();
    c.reset();
    c.update(content);
    return (int) c.getValue();
  }
}
