package io.peerflash.node.engine;

import io.peerflash.node.cache.CacheFile;
import io.peerflash.node.cache.ClockEvictor;
import io.peerflash.node.cache.SlotAllocator;
import io.peerflash.node.cache.SlotReservations;
import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.index.BlockEntry;
import io.peerflash.node.index.BlockIndex;
import io.peerflash.node.index.KeyValueStorage;
import io.peerflash.node.index.KeyValueStorage.Batch;
import io.peerflash.node.index.VolumeCatalog;
import io.peerflash.node.index.VolumeInfo;
import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.index.VolumeInfo.Role;
import io.peerflash.node.storage.BackingStore;
import io.peerflash.replication.data.Replicas;
import io.peerflash.replication.fault.FaultPoints;
import io.peerflash.util.Texts;
import io.peerflash.util.Time;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Predicate;
import java.util.zip.CRC32C;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The node's flash cache: volumes, the write path, the read path and recovery. The write path of a
 * write-back volume is {@link #writeBack}; read it top to bottom.
 *
 * <p>Ordering rules that make a crash at any instant safe:
 *
 * <ul>
 *   <li>A block's data is written to a free slot before the index entry pointing to it is
 *       committed; the entry carries the data's CRC32C, so a torn slot is detected.
 *   <li>A dirty block is never overwritten in place: a new version takes a new slot, and the old
 *       slot is freed only after the new entry is committed.
 *   <li>One request's blocks are committed in one index batch: after a crash a request is either
 *       wholly there or wholly absent.
 *   <li>Only clean blocks are evicted; a block becomes clean only after shared storage has synced
 *       it.
 * </ul>
 */
public final class CacheEngine implements AutoCloseable {
  public static final int BLOCK = CacheFile.SLOT_SIZE;
  public static final int SECTOR = IoRange.SECTOR;
  public static final int MAX_IO_BYTES = IoRange.MAX_IO_BYTES;
  public static final long MAX_VOLUME_BYTES = VolumeProvisioner.MAX_VOLUME_BYTES;
  private static final long REPLICATION_WAIT_BACKSTOP_MS = 30_000;

  private static final Logger log = LoggerFactory.getLogger(CacheEngine.class);
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
  private final VolumeProvisioner provisioner;
  private final DirtyShare dirtyShare;
  final Destager destager;
  volatile ReplicationPort replication = ReplicationPort.NONE;

  /** Whether this node may serve and destage an owned volume now (its cluster lease is valid). */
  volatile Predicate<VolumeInfo> mayServe = v -> true;

  volatile FaultPoints faults = new FaultPoints();

  private final ConcurrentHashMap<String, CachedVolume> volumesByName = new ConcurrentHashMap<>();
  private final ConcurrentHashMap<Long, CachedVolume> volumesById = new ConcurrentHashMap<>();
  private final Object createLock = new Object();

  /** Slots holding dirty data (zero blocks hold none). Drives the watermarks. */
  final AtomicLong dirtySlots = new AtomicLong();

  // Writers short of free slots wait here in arrival order; the destager signals after cleaning.
  final SlotReservations space;
  private final LocalSync localSync;

  private CacheEngine(
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
    this.space =
        new SlotReservations(
            slots,
            new SlotReservations.SpaceSource() {
              @Override
              public long reclaimableSlots() {
                return slots.totalSlots() - dirtySlots.get();
              }

              @Override
              public void reclaim(int missing) {
                reclaimClean(missing);
              }
            },
            throttleReserveSlots(config, cacheFile.slots()),
            time,
            this::onSpaceWait);
    this.backing = backing;
    this.provisioner = new VolumeProvisioner(backing, config.maxVolumes());
    this.dirtyShare =
        new DirtyShare(
            config.volumeDirtyShare(),
            cacheFile.slots(),
            config.writeBackpressureTimeoutMs(),
            time);
    this.committer = new GroupCommitter(kv, cacheFile, config.syncWrites(), durability);
    this.localSync = new LocalSync(cacheFile, kv, durability);
    this.destager = new Destager(this);
  }

  /**
   * Opens (or creates) the cache in {@code config.dataDir()} and recovers every volume and block
   * entry. Dirty blocks are checked against their checksum now, so damage shows up at start.
   */
  public static CacheEngine open(EngineConfig config, BackingStore backing, Time time)
      throws IOException {
    return open(config, backing, time, LocalStorageOpener.REAL);
  }

  /** {@link #open(EngineConfig, BackingStore, Time)} on local storage opened by {@code local}. */
  public static CacheEngine open(
      EngineConfig config, BackingStore backing, Time time, LocalStorageOpener local)
      throws IOException {
    LocalDurability durability = new LocalDurability();
    io.peerflash.util.Directories.createDurably(config.dataDir());
    KeyValueStorage kv =
        new DurabilityCheckedStorage(
            local.openIndex(config.dataDir().resolve("index")), durability);
    CacheFile cacheFile = null;
    try {
      Path cachePath = config.dataDir().resolve("cache.slots");
      boolean newCacheFile = !Files.exists(cachePath);
      cacheFile = new CacheFile(cachePath, config.cacheSizeBytes(), local::openCacheFile);
      if (newCacheFile) {
        // A new file's name is durable only once its directory is: after a power cut the
        // index (also in this directory) could otherwise point into a cache file that is gone.
        local.syncDirectory(config.dataDir());
      }
      CacheEngine engine =
          new CacheEngine(config, time, kv, cacheFile, backing, new BitSet(), durability);
      CacheEngine recovered = engine.recover();
      recovered.finishDeletes();
      return recovered;
    } catch (IOException | RuntimeException e) {
      if (cacheFile != null) {
        cacheFile.close();
      }
      kv.close();
      throw e;
    }
  }

  /** Rebuilds in-memory state from the index; returns a fresh engine with the right free slots. */
  private CacheEngine recover() throws IOException {
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
              BlockEntry loser = pickLoser(prev, e);
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
    quarantine(outside, infos, drop);
    kv.write(drop, true);
    CacheEngine engine = new CacheEngine(config, time, kv, cacheFile, backing, used, durability);
    long dirtyBlocks = 0;
    long corrupt = 0;
    for (VolumeInfo info : infos.values()) {
      CachedVolume v = new CachedVolume(info, maxSeq.getOrDefault(info.id(), 0L) + 1);
      for (Map.Entry<Long, BlockEntry> me : entries.getOrDefault(info.id(), Map.of()).entrySet()) {
        long block = me.getKey();
        BlockEntry e = me.getValue();
        v.blocks.put(block, e);
        if (!e.isZero()) {
          engine.evictor.occupy(e.slot(), info.id(), block, e.dirty());
        }
        if (e.dirty()) {
          dirtyBlocks++;
          if (!e.isZero()) {
            engine.dirtySlots.incrementAndGet();
            v.dirtySlots.incrementAndGet();
            if (!engine.checksumMatches(e)) {
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
      engine.volumesByName.put(info.name(), v);
      engine.volumesById.put(info.id(), v);
    }
    log.info(
        "recovered {} volumes, {} cached blocks ({} dirty, {} corrupt) in {} ms",
        infos.size(),
        used.cardinality(),
        dirtyBlocks,
        corrupt,
        TimeUnit.NANOSECONDS.toMillis(time.nanoTime() - started));
    return engine;
  }

  /** An index entry whose block lies outside its volume. */
  private record OutsideEntry(long volumeId, long block, BlockEntry entry) {}

  /**
   * Moves entries of blocks outside their volume out of the index, with their data, and says so
   * loudly: such a block cannot be destaged (the destager would fail on it forever, pinning its
   * slot and making the volume unflushable) nor read, so it must not come back at every start.
   */
  private void quarantine(List<OutsideEntry> outside, Map<Long, VolumeInfo> infos, Batch batch)
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

  /**
   * Finishes deletes cut short by a crash: a volume whose backing file was moved aside is
   * forgotten, and moved-aside files are removed. Shared storage that cannot be listed now only
   * delays this to the next start.
   */
  private void finishDeletes() {
    List<Long> retired;
    try {
      retired = backing.retired();
    } catch (IOException e) {
      log.warn("cannot look for deletes cut short on shared storage: {}", e.getMessage());
      return;
    }
    for (long id : retired) {
      CachedVolume v = volumesById.get(id);
      try {
        if (v != null) {
          synchronized (createLock) {
            forget(v);
          }
          log.info("finished deleting volume {}", v.name());
        }
        backing.purgeRetired(id);
      } catch (IOException e) {
        log.warn("cannot finish deleting volume id {}: {}", id, e.getMessage());
      }
    }
  }

  private BlockEntry pickLoser(BlockEntry a, BlockEntry b) throws IOException {
    boolean aOk = checksumMatches(a);
    boolean bOk = checksumMatches(b);
    if (aOk != bOk) {
      return aOk ? b : a;
    }
    if (a.dirty() != b.dirty()) {
      return a.dirty() ? b : a;
    }
    return a.seq() >= b.seq() ? b : a;
  }

  private boolean checksumMatches(BlockEntry e) throws IOException {
    ByteBuffer buf = SCRATCH.get().clear();
    cacheFile.read(e.slot(), buf);
    return crc(buf.flip()) == e.crc();
  }

  /** Connects the write path to the cluster's replicas (before {@link #start}). */
  public void setReplicationPort(ReplicationPort port) {
    this.replication = port;
  }

  /**
   * Installs the check that fences a node without a valid lease: owned volumes are neither served
   * nor destaged while it fails.
   */
  public void setServeGuard(Predicate<VolumeInfo> guard) {
    this.mayServe = guard;
  }

  /** Where tests inject faults (the node shares one instance among its parts). */
  public void setFaultPoints(FaultPoints faults) {
    this.faults = faults;
    committer.faults = faults;
  }

  /**
   * Null while local flash has kept every fsync; otherwise why this node acknowledges nothing until
   * it is restarted ({@link LocalDurability}). A clustered node stops renewing its lease.
   */
  public String localFailure() {
    return durability.failure();
  }

  /** Starts background work (the destager). */
  public void start() {
    destager.start();
  }

  // ---------------------------------------------------------------------------------------------
  // Volumes

  /** Creates a volume of a single node with a new backing file. */
  public VolumeInfo createVolume(String name, long sizeBytes, CacheMode mode, int replicas)
      throws CacheException {
    return createVolume(name, sizeBytes, mode, replicas, false);
  }

  /**
   * Creates a volume of a single node (in a cluster the map places volumes: {@link
   * #prepareBackingFile}, then {@link #adoptVolume}).
   *
   * @param adoptExisting use the file already on shared storage under this name as the volume's
   *     content (see {@link #prepareBackingFile}); false: such a file is refused with
   *     ALREADY_EXISTS
   */
  public VolumeInfo createVolume(
      String name, long sizeBytes, CacheMode mode, int replicas, boolean adoptExisting)
      throws CacheException {
    VolumeProvisioner.checkName(name);
    checkPolicy(mode, replicas);
    synchronized (createLock) {
      if (volumesByName.containsKey(name)) {
        throw new CacheException(
            Reason.ALREADY_EXISTS, "volume " + Texts.quote(name) + " already exists");
      }
      provisioner.checkCount(volumesByName.size());
      VolumeProvisioner.BackingFile file = provisioner.prepare(name, sizeBytes, adoptExisting);
      try {
        VolumeInfo info = catalog.create(name, file.sizeBytes(), mode, replicas);
        CachedVolume v = new CachedVolume(info, 1);
        volumesById.put(info.id(), v);
        volumesByName.put(name, v);
        log.info(
            "created volume {} of {} bytes, {}{}",
            name,
            file.sizeBytes(),
            mode,
            file.created() ? "" : " (adopted its existing file)");
        return info;
      } catch (IOException e) {
        provisioner.undo(file);
        throw unavailable("cannot store the definition of volume " + Texts.quote(name), e);
      }
    }
  }

  /**
   * Readies shared storage for a new cluster volume before the map records it: checks the name and
   * the size (against PeerFlash's limit and the largest file shared storage holds), then creates
   * the backing file, or with {@code adoptExisting} adopts the file already there.
   *
   * @param sizeBytes the wire value (unsigned); with {@code adoptExisting}, 0 takes the file's size
   * @return the volume's size
   * @throws CacheException ALREADY_EXISTS when a file is there and not to be adopted
   */
  public long prepareBackingFile(String name, long sizeBytes, boolean adoptExisting)
      throws CacheException {
    return provisioner.prepare(name, sizeBytes, adoptExisting).sizeBytes();
  }

  /**
   * Removes a backing file {@link #prepareBackingFile} created for a volume the map then refused.
   */
  public void discardNewBackingFile(String name) {
    provisioner.undo(new VolumeProvisioner.BackingFile(name, 0, true));
  }

  /** Refuses one more volume when {@code existing} are there already (max-volumes). */
  public void checkVolumeCount(int existing) throws CacheException {
    provisioner.checkCount(existing);
  }

  /** The largest volume this node can create. */
  public long maxVolumeBytes() throws CacheException {
    return provisioner.maxVolumeBytes();
  }

  /**
   * Creates or updates a volume whose definition comes from the cluster map (id, policy and this
   * node's role). Only the owner creating a new volume creates its backing file.
   */
  public VolumeInfo adoptVolume(VolumeInfo wanted, boolean createBackingFile)
      throws CacheException {
    synchronized (createLock) {
      CachedVolume v = volumesByName.get(wanted.name());
      if (v != null && v.id() != wanted.id()) {
        throw new CacheException(
            Reason.FAILED_PRECONDITION,
            "volume '"
                + wanted.name()
                + "' is held locally with id "
                + v.id()
                + ", not "
                + wanted.id());
      }
      if (v == null) {
        try {
          // Never re-create an existing file: that would empty a volume's destaged data.
          if (createBackingFile && !backing.exists(wanted.name())) {
            try {
              backing.create(wanted.name(), wanted.sizeBytes());
            } catch (java.nio.file.FileAlreadyExistsException raced) {
              // made meanwhile by the node that took the create request: the volume's file
            }
          }
          catalog.put(wanted);
        } catch (IOException e) {
          throw unavailable("cannot adopt volume '" + wanted.name() + "'", e);
        }
        CachedVolume fresh = new CachedVolume(wanted, 1);
        volumesById.put(wanted.id(), fresh);
        volumesByName.put(wanted.name(), fresh);
        log.info("adopted volume {} as {}", wanted.name(), wanted.role());
        return wanted;
      }
    }
    CachedVolume v = volume(wanted.name());
    if (v.info.mode() != wanted.mode() || v.info.replicas() != wanted.replicas()) {
      setPolicy(wanted.name(), wanted.mode(), wanted.replicas());
    }
    if (v.info.role() != wanted.role()) {
      setRole(wanted.name(), wanted.role());
    }
    return v.info;
  }

  /**
   * Forgets a volume on this node, dirty copies included, without touching its backing file: for
   * copies a newer epoch superseded (the data is safe with the current owner and replicas).
   */
  public void dropLocalVolume(String name) throws CacheException {
    CachedVolume v = volume(name);
    v.gate.writeLock().lock();
    try {
      synchronized (createLock) {
        if (v.deleted) {
          return;
        }
        forget(v);
        log.info("dropped local copies of volume {}", name);
      }
    } catch (IOException e) {
      throw unavailable("dropping volume '" + name + "' failed", e);
    } finally {
      v.gate.writeLock().unlock();
    }
    signalSpace();
  }

  public VolumeInfo getVolume(String name) throws CacheException {
    return volume(name).info;
  }

  public List<VolumeInfo> listVolumes() {
    List<VolumeInfo> all = new ArrayList<>();
    for (CachedVolume v : volumesByName.values()) {
      all.add(v.info);
    }
    all.sort(Comparator.comparing(VolumeInfo::name));
    return all;
  }

  /** Drops the volume, its cached blocks (dirty ones too) and its backing file. */
  public void deleteVolume(String name) throws CacheException {
    CachedVolume v = volume(name);
    v.gate.writeLock().lock();
    // Held to the end: a volume created under the same name meanwhile would lose its backing file.
    try {
      synchronized (createLock) {
        deleteLocked(v, name);
      }
    } finally {
      v.gate.writeLock().unlock();
    }
    signalSpace();
  }

  /**
   * Deletes in three durable steps, so that a crash at any point leaves either the volume or
   * nothing (never an orphaned backing file that blocks re-creating the name): the backing file is
   * moved aside under a name that carries the volume id, the volume is forgotten, the file is
   * removed. Recovery finishes a delete that found a moved file.
   */
  private void deleteLocked(CachedVolume v, String name) throws CacheException {
    if (v.deleted) {
      throw CacheException.notFound(name);
    }
    try {
      backing.retire(name, v.id());
    } catch (IOException e) {
      throw unavailable("deleting volume " + Texts.quote(name) + " failed", e);
    }
    try {
      forget(v);
    } catch (IOException e) {
      // The file is aside; the next start finishes the delete.
      throw unavailable(
          "deleting volume " + Texts.quote(name) + " failed (the next start finishes it)", e);
    }
    try {
      backing.purgeRetired(v.id());
    } catch (IOException e) {
      log.warn("volume {} deleted; its old file is removed at the next start: {}", name, e);
    }
    log.info("deleted volume {}", name);
  }

  /**
   * Removes a volume from this node: its definition and block entries (one synced batch), then its
   * slots. Call with the gate held exclusively and under the create lock.
   */
  private void forget(CachedVolume v) throws IOException {
    v.deleted = true;
    volumesByName.remove(v.name(), v);
    Batch batch = new Batch();
    index.deleteVolume(batch, v.id());
    catalog.delete(v.info, batch);
    for (Map.Entry<Long, BlockEntry> me : v.blocks.entrySet()) {
      try (BlockLocks.Held h = v.locks.lockRange(me.getKey(), 1, true)) {
        BlockEntry e = v.blocks.remove(me.getKey());
        if (e != null && !e.isZero()) {
          if (e.dirty()) {
            dirtyDropped(v);
          }
          evictor.release(e.slot());
          slots.free(e.slot());
        }
      }
    }
    volumesById.remove(v.id());
  }

  /**
   * Changes the cache mode and replica count. Leaving write-back destages every dirty block before
   * returning.
   */
  public VolumeInfo setPolicy(String name, CacheMode mode, int replicas) throws CacheException {
    checkPolicy(mode, replicas);
    CachedVolume v = volume(name);
    VolumeInfo before;
    VolumeInfo after;
    long destageTarget;
    // Exclusive: in-flight writes finish under the old mode, later ones see the new mode.
    v.gate.writeLock().lock();
    try {
      if (v.deleted) {
        throw CacheException.notFound(name);
      }
      before = v.info;
      after = before.withPolicy(mode, replicas);
      catalog.update(after);
      v.info = after;
      // Every write-back write has finished (we hold the gate): this is the last one to destage.
      destageTarget = v.nextSeq.get() - 1;
    } catch (IOException e) {
      throw unavailable("cannot store the policy of volume '" + name + "'", e);
    } finally {
      v.gate.writeLock().unlock();
    }
    if (before.mode() == CacheMode.WRITE_BACK
        && mode != CacheMode.WRITE_BACK
        && after.role() == Role.OWNER) {
      try {
        destager.flush(v, destageTarget);
      } catch (CacheException e) {
        // The dirty data could not be destaged: the volume stays write-back (what status then
        // says is true), and the change can be asked for again.
        revertPolicy(v, after, before);
        throw new CacheException(
            e.reason(),
            "volume "
                + Texts.quote(name)
                + " stays "
                + before.mode()
                + ": its dirty data could not be destaged first: "
                + e.getMessage(),
            e);
      }
    }
    log.info("volume {} policy {} -> {}", name, before.mode(), mode);
    return after;
  }

  /** Puts a policy back unless something else changed it meanwhile. */
  private void revertPolicy(CachedVolume v, VolumeInfo changed, VolumeInfo back) {
    v.gate.writeLock().lock();
    try {
      if (v.deleted || v.info != changed) {
        return;
      }
      VolumeInfo restored = changed.withPolicy(back.mode(), back.replicas());
      catalog.update(restored);
      v.info = restored;
    } catch (IOException e) {
      log.warn("volume {}: cannot put its policy back: {}", v.name(), e.getMessage());
    } finally {
      v.gate.writeLock().unlock();
    }
  }

  private static void checkPolicy(CacheMode mode, int replicas) throws CacheException {
    if (mode == null) {
      throw CacheException.invalid("cache mode must be given");
    }
    if (replicas < 0 || replicas > Replicas.MAX_REPLICAS) {
      throw CacheException.invalid(
          "replicas " + replicas + " out of range: must be 0 to " + Replicas.MAX_REPLICAS);
    }
  }

  CachedVolume volume(String name) throws CacheException {
    CachedVolume v = name == null ? null : volumesByName.get(name);
    if (v == null) {
      throw CacheException.notFound(name);
    }
    return v;
  }

  List<CachedVolume> volumes() {
    return new ArrayList<>(volumesById.values());
  }

  // ---------------------------------------------------------------------------------------------
  // Write

  /**
   * Writes {@code data} (its remaining bytes) at {@code offset}, acknowledged per the volume's mode
   * when this returns.
   */
  public void write(String name, long offset, ByteBuffer data) throws CacheException {
    CachedVolume v = volume(name);
    awaitAck(v, store(v, range(v, "write", offset, data.remaining()), data));
  }

  /** Discards a range: it reads as zeros afterwards, and shared storage gets zeros. */
  public void trim(String name, long offset, long length) throws CacheException {
    CachedVolume v = volume(name);
    awaitAck(v, store(v, range(v, "trim", offset, length), null));
  }

  /**
   * Starts a write and returns at once; the future completes when the write may be acknowledged
   * (when {@link #write} would return) or fails with a {@link CacheException}.
   *
   * <p>A write-back write that needs no wait runs on the calling thread (a transport thread, so
   * that it costs no thread hand-off): admitted by its on-peer-loss policy, whole blocks, at most
   * {@link #MAX_WRITE_NOW_BYTES}, space free, its blocks unlocked, no synced commit. Its copies go
   * out, it is stored and becomes visible, and the future completes on the thread that receives the
   * last replica's ack. Every other write runs {@link #write} on {@code waits}, as does the destage
   * a write needs before its ack when a replica could not take its copies.
   *
   * @param storeAfterSend null, or the calling thread's own task queue (its event loop): a write
   *     stored without waiting then stores this node's copy in a task queued there after its copies
   *     were sent. A copy handed to a peer channel goes out when the event loop flushes it, after
   *     the task that sent it; storing first would hold the copy back for the whole local store.
   *     Tasks must run on the calling thread (the write holds the volume's gate until then).
   */
  public CompletableFuture<Void> submitWrite(
      String name, long offset, ByteBuffer data, Executor waits, Executor storeAfterSend) {
    CompletableFuture<Void> acked = new CompletableFuture<>();
    try {
      CachedVolume v = volume(name);
      Stored now = storeNow(v, range(v, "write", offset, data.remaining()), data, storeAfterSend);
      if (now != null) {
        ackWhenReplicated(v, now, waits, acked);
        return acked;
      }
    } catch (CacheException | RuntimeException e) {
      acked.completeExceptionally(e);
      return acked;
    }
    runOn(
        waits,
        acked,
        () -> {
          write(name, offset, data);
          acked.complete(null);
        });
    return acked;
  }

  /** Same as {@link #submitWrite(String, long, ByteBuffer, Executor, Executor)} storing inline. */
  public CompletableFuture<Void> submitWrite(
      String name, long offset, ByteBuffer data, Executor waits) {
    return submitWrite(name, offset, data, waits, null);
  }

  /**
   * A write that is stored locally and visible (or will be, when {@code local} completes), and what
   * it needs before its ack.
   *
   * @param copies its copies on their way to the replicas, or null
   * @param lastSeq the highest sequence a destage before the ack must reach
   * @param destageFirst destage up to {@code lastSeq} before the ack even if the copies arrive
   * @param local null, or this node's own store still to come: it completes (on the thread that
   *     stored) when the write is durable locally and visible, or fails the write
   */
  private record Stored(
      CompletableFuture<Void> copies,
      long lastSeq,
      boolean destageFirst,
      CompletableFuture<Void> local) {
    static final Stored ACK_NOW = new Stored(null, -1, false, null);

    Stored(CompletableFuture<Void> copies, long lastSeq, boolean destageFirst) {
      this(copies, lastSeq, destageFirst, null);
    }
  }

  /**
   * Stores a write (or a trim, {@code data == null}) per the volume's mode, waiting for admission,
   * space, its blocks and shared storage as needed; returns with its copies on their way.
   */
  private Stored store(CachedVolume v, IoRange range, ByteBuffer data) throws CacheException {
    if (v.info.mode() == CacheMode.WRITE_BACK) {
      replication.admit(v.info);
    }
    v.gate.readLock().lock();
    try {
      checkNotDeleted(v);
      return v.info.mode() == CacheMode.WRITE_BACK
          ? writeBack(v, range, data, true, null)
          : writeToStorage(v, range, data);
    } finally {
      v.gate.readLock().unlock();
    }
  }

  /**
   * Largest write stored on the calling (network) thread. A larger one would hold that thread for
   * milliseconds (a 1 MiB write is 256 slot writes and index entries), delaying every call and
   * replica ack it serves; an ack read late can even look like a lost replica.
   */
  static final int MAX_WRITE_NOW_BYTES = 16 * BLOCK;

  /**
   * {@link #store} for a small write-back write that needs no wait at all; null when it would need
   * one (nothing is changed then).
   */
  private Stored storeNow(CachedVolume v, IoRange range, ByteBuffer data, Executor storeAfterSend)
      throws CacheException {
    if (v.info.mode() != CacheMode.WRITE_BACK
        || config.syncWrites()
        || range.length() > MAX_WRITE_NOW_BYTES
        || range.partialBlocks() > 0
        || !replication.admitsNow(v.info)
        || !v.gate.readLock().tryLock()) {
      return null;
    }
    Stored stored = null;
    try {
      checkNotDeleted(v);
      stored = writeBack(v, range, data, false, storeAfterSend);
      return stored;
    } finally {
      if (stored != null && stored.local() != null) {
        // The store still to come holds the gate; it completes on this thread (see submitWrite).
        stored.local().whenComplete((ok, failure) -> v.gate.readLock().unlock());
      } else {
        v.gate.readLock().unlock();
      }
    }
  }

  /** Waits until a stored write may be acknowledged. Outside the gate: see {@link #store}. */
  private void awaitAck(CachedVolume v, Stored stored) throws CacheException {
    boolean destage = stored.destageFirst();
    if (stored.copies() != null && !awaitCopies(v, stored.copies())) {
      destage = true;
    }
    if (destage) {
      // Outside the gate: a policy change or delete queued on it must not stall the destager.
      destager.flush(v, stored.lastSeq());
    }
  }

  /** {@link #awaitAck} without waiting: completes {@code acked} from the replica ack's thread. */
  private void ackWhenReplicated(
      CachedVolume v, Stored stored, Executor waits, CompletableFuture<Void> acked) {
    if (stored.local() != null) {
      // Own store first: a destage before the ack must find the write in place.
      stored
          .local()
          .whenComplete(
              (ok, failure) -> {
                if (failure != null) {
                  acked.completeExceptionally(failure);
                } else {
                  ackWhenReplicated(
                      v,
                      new Stored(stored.copies(), stored.lastSeq(), stored.destageFirst()),
                      waits,
                      acked);
                }
              });
      return;
    }
    if (stored.copies() == null) {
      acked.complete(null);
      return;
    }
    stored
        .copies()
        .whenComplete(
            (ok, failure) -> {
              if (failure == null) {
                acked.complete(null);
                return;
              }
              CacheException refused = refusal(v, failure);
              if (refused != null) {
                acked.completeExceptionally(refused);
                return;
              }
              runOn(
                  waits,
                  acked,
                  () -> {
                    destager.flush(v, stored.lastSeq());
                    acked.complete(null);
                  });
            });
  }

  private interface Step {
    void run() throws CacheException;
  }

  /** Runs {@code step} on {@code executor}; its failure (or a refused hand-off) fails {@code f}. */
  private static void runOn(Executor executor, CompletableFuture<?> f, Step step) {
    try {
      executor.execute(
          () -> {
            try {
              step.run();
            } catch (CacheException | RuntimeException e) {
              f.completeExceptionally(e);
            }
          });
    } catch (RejectedExecutionException e) {
      f.completeExceptionally(
          new CacheException(Reason.UNAVAILABLE, "node is shutting down; write not acknowledged"));
    }
  }

  /**
   * The write-back path. {@code data == null} writes zeros (trim): whole blocks become zero entries
   * that need no slot. The new versions are durable locally and visible when this returns (or, with
   * {@code storeAfterSend}, when the returned {@link Stored#local} completes); their copies may
   * still be on their way to the replicas.
   *
   * @param mayWait false: return null instead of waiting for space or a block lock (only for whole
   *     blocks: a partial block may need a read of shared storage)
   * @param storeAfterSend null, or where to run steps 5-7 after the copies went out (see {@link
   *     #submitWrite(String, long, ByteBuffer, Executor, Executor)})
   */
  private Stored writeBack(
      CachedVolume v, IoRange range, ByteBuffer data, boolean mayWait, Executor storeAfterSend)
      throws CacheException {
    long first = range.firstBlock();
    int count = range.blockCount();
    // 1. Reserve slots before locking blocks: a writer waiting for space must not hold locks the
    //    destager needs to make space.
    int needed = data != null ? count : range.partialBlocks();
    // Within the volume's share first, outside the queue for free slots: a volume held at its
    // share must not hold back the other volumes' writers.
    if (!dirtyShare.admits(v, needed)) {
      if (!mayWait) {
        return null;
      }
      dirtyShare.await(v, needed);
    }
    int[] newSlots = mayWait ? reserveSlots(v, needed) : space.reserveNow(needed);
    if (newSlots == null) {
      return null;
    }
    LocalStore local = new LocalStore(v, first, count, newSlots, needed);
    boolean storeLater = false;
    try {
      local.held =
          mayWait
              ? v.locks.lockRange(first, count, true)
              : v.locks.tryLockRange(first, count, true);
      if (local.held == null) {
        return null;
      }
      // 2. Sequence numbers: their order is the destage order.
      local.seq0 = v.nextSeq.getAndAdd(count);
      local.nowMs = time.nowMs();
      List<ReplicaBlock> images = new ArrayList<>(count);
      // 3. The new content of each block, and the same images for the replicas.
      for (int i = 0; i < count; i++) {
        long block = first + i;
        int from = range.fromInBlock(block);
        int to = range.toInBlock(block);
        boolean whole = range.coversWhole(block);
        if (data == null && whole) {
          images.add(new ReplicaBlock(block, local.seq0 + i, null)); // a zero block: no slot
          continue;
        }
        ByteBuffer content;
        if (whole) {
          content = wholeBlock(data, range.dataPosition(block));
        } else {
          ByteBuffer merged = currentContent(v, block);
          if (data == null) {
            merged.put(from, new byte[to - from]);
          } else {
            merged.put(from, data, data.position() + range.dataPosition(block), to - from);
          }
          // The merge happens in a scratch buffer reused by the next block: keep a copy.
          content = ByteBuffer.allocate(BLOCK).put(merged.duplicate()).flip();
        }
        local.contents[i] = content;
        images.add(new ReplicaBlock(block, local.seq0 + i, content));
      }
      // 4. Copies to the replicas first: they travel while this node stores its own. Until they
      //    are acked the destager leaves these blocks alone (CachedVolume.copiesInFlight).
      CompletableFuture<Void> copies = replication.replicate(v.info, images);
      long lastSeq = local.seq0 + count - 1;
      if (copies == null) {
        local.store();
        return Stored.ACK_NOW;
      }
      long seq0 = local.seq0;
      v.copiesSent(first, count);
      copies = copies.whenComplete((ok, failure) -> copiesDone(v, first, count, seq0));
      if (storeAfterSend != null) {
        storeLater = true;
        return new Stored(copies, lastSeq, false, local.storeLater(storeAfterSend));
      }
      local.store();
      return new Stored(copies, lastSeq, false);
    } finally {
      if (!storeLater) {
        local.close();
      }
    }
  }

  /**
   * Steps 5-7 of a write-back write (its own store), and what the write holds until they are done:
   * its reserved slots and its block locks.
   */
  private final class LocalStore {
    private final CachedVolume v;
    private final long first;
    private final int[] newSlots;
    private final int needed;
    private final ByteBuffer[] contents;
    BlockLocks.Held held;
    long seq0;
    long nowMs;
    private int usedSlots;
    private boolean commitTried;

    LocalStore(CachedVolume v, long first, int count, int[] newSlots, int needed) {
      this.v = v;
      this.first = first;
      this.newSlots = newSlots;
      this.needed = needed;
      this.contents = new ByteBuffer[count]; // null: a zero block
    }

    void store() throws CacheException {
      int count = contents.length;
      BlockEntry[] fresh = new BlockEntry[count];
      Batch batch = new Batch();
      // 5. Data into fresh slots (never over the current version), then index entries.
      for (int i = 0; i < count; i++) {
        if (contents[i] == null) {
          fresh[i] = new BlockEntry(BlockEntry.NO_SLOT, seq0 + i, 0, true, nowMs);
        } else {
          int slot = newSlots[usedSlots++];
          writeSlot(slot, contents[i]);
          fresh[i] = new BlockEntry(slot, seq0 + i, crc(contents[i].duplicate()), true, nowMs);
        }
        index.put(batch, v.id(), first + i, fresh[i]);
      }
      // 6. Durable locally: data before index (group fsync with --sync).
      commitTried = true;
      try {
        commit(batch);
      } catch (CacheException e) {
        commitTried = mayBeApplied(e);
        throw e;
      }
      // 7. Visible: swap the in-memory entries, free the superseded slots, let the next writer of
      //    these blocks in. The ack still waits for the copies; a reader may see the new data
      //    before that, as with any write in flight.
      for (int i = 0; i < count; i++) {
        install(v, first + i, fresh[i]);
      }
    }

    /**
     * Runs {@link #store} and {@link #close} as a task on {@code executor} (here and now if it
     * refuses the task); the future completes after both, on the thread that ran them.
     */
    CompletableFuture<Void> storeLater(Executor executor) {
      CompletableFuture<Void> stored = new CompletableFuture<>();
      Runnable task =
          () -> {
            Throwable failure = null;
            try {
              store();
            } catch (CacheException | RuntimeException | Error e) {
              failure = e;
            } finally {
              close();
            }
            if (failure == null) {
              stored.complete(null);
            } else {
              stored.completeExceptionally(failure);
              if (failure instanceof Error error) {
                throw error;
              }
            }
          };
      try {
        executor.execute(task);
      } catch (RejectedExecutionException e) { // the event loop is shutting down
        task.run();
      }
      return stored;
    }

    /** Lets the next writer of these blocks in and frees the slots no entry points to. */
    void close() {
      if (held != null) {
        held.close();
      }
      // Slots written but never committed hold nothing anyone points to: free them. After a
      // failed commit the index may still point to them (a sync that failed after the write):
      // keep them until the next start rebuilds the free list from the index. A commit the index
      // refused for lack of space applied nothing (commitTried is false again).
      releaseReserved(newSlots, commitTried ? usedSlots : 0, needed);
      destager.noteDirty();
    }
  }

  /** A write's copies were acked or failed: the destager may take its blocks again. */
  private void copiesDone(CachedVolume v, long first, int count, long firstSeq) {
    v.copiesDone(first, count);
    if (v.flushTargetSeq.get() >= firstSeq) {
      destager.wake(); // a Flush (or a destage before an ack) waits on them
    }
  }

  /** The 4 KiB of {@code data} at {@code at} (relative to its position) for one block. */
  private static ByteBuffer wholeBlock(ByteBuffer data, int at) {
    ByteBuffer content = data.duplicate();
    content.position(data.position() + at).limit(content.position() + BLOCK);
    return content.slice();
  }

  private void releaseReserved(int[] reserved, int from, int to) {
    if (reserved != null && from < to) {
      slots.freeAll(reserved, from, to);
    }
  }

  /**
   * Waits for the replicas' acks. The port bounds the wait; the timeout here only backs it up.
   *
   * @return false when a replica could not take the copies (the write must be destaged before its
   *     ack)
   * @throws CacheException when the write must not be acknowledged at all (see {@link #refusal})
   */
  private boolean awaitCopies(CachedVolume v, CompletableFuture<Void> copies)
      throws CacheException {
    Throwable failure;
    try {
      copies.get(REPLICATION_WAIT_BACKSTOP_MS, TimeUnit.MILLISECONDS);
      return true;
    } catch (ExecutionException e) {
      failure = e.getCause();
    } catch (TimeoutException e) {
      failure = e;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return false;
    }
    CacheException refused = refusal(v, failure);
    if (refused != null) {
      throw refused;
    }
    return false;
  }

  /**
   * What a replica's failure to take a write's copies means for that write: null when it may still
   * be acknowledged once destaged; otherwise the error to answer with. FAILED_PRECONDITION when a
   * replica refused this node's epoch: it is no longer the owner and must not acknowledge (nor
   * write through to shared storage). UNAVAILABLE when a replica could neither be reached nor be
   * removed from the map.
   */
  private CacheException refusal(CachedVolume v, Throwable failure) {
    Throwable cause =
        failure instanceof CompletionException || failure instanceof ExecutionException
            ? failure.getCause()
            : failure;
    if (cause instanceof ReplicationPort.StuckException s) {
      return new CacheException(
          Reason.UNAVAILABLE, "volume '" + v.name() + "': " + s.getMessage() + "; retry");
    }
    if (cause instanceof ReplicationPort.FencedException f) {
      return new CacheException(
          Reason.FAILED_PRECONDITION,
          "volume '" + v.name() + "': this node is no longer its owner: " + f.getMessage());
    }
    log.warn(
        "volume {}: copies did not reach every replica ({}); destaging the write before its ack",
        v.name(),
        cause == null ? String.valueOf(failure) : cause.getMessage());
    return null;
  }

  /**
   * Write-through and write-around: shared storage first (synced), then the cache. A block that is
   * still dirty (left from write-back mode) takes the write-back path and is destaged before the
   * acknowledgement, so storage never sees writes out of order.
   *
   * @return the sequence the caller must see destaged before acknowledging, or -1
   */
  private Stored writeToStorage(CachedVolume v, IoRange range, ByteBuffer data)
      throws CacheException {
    long first = range.firstBlock();
    int count = range.blockCount();
    boolean fillCache = v.info.mode() == CacheMode.WRITE_THROUGH && data != null;
    int[] newSlots = fillCache ? reserveSlots(count, false) : null;
    int usedSlots = 0;
    boolean commitTried = false;
    boolean hasDirty = false;
    try (BlockLocks.Held held = v.locks.lockRange(first, count, true)) {
      for (int i = 0; i < count && !hasDirty; i++) {
        BlockEntry e = v.blocks.get(first + i);
        hasDirty = e != null && e.dirty();
      }
      if (!hasDirty) {
        // Cached copies of the range go first, durably (synced with --sync): storage is about to
        // change under them, and if the commit of the new copies below then failed, or a power
        // cut lost it, an old copy would be served as if it were current.
        boolean[] hadCopy = new boolean[count];
        for (int i = 0; i < count; i++) {
          hadCopy[i] = v.blocks.get(first + i) != null;
        }
        dropRange(v, first, count);
        try {
          storageWrite(v, range, data);
        } finally {
          // Shared storage changed under these blocks: a promotion that read them before must
          // not install what it read.
          for (int i = 0; i < count; i++) {
            v.locks.bump(first + i);
          }
        }
        if (newSlots == null) {
          return Stored.ACK_NOW;
        }
        Batch batch = new Batch();
        BlockEntry[] fresh = new BlockEntry[count];
        long now = time.nowMs();
        for (int i = 0; i < count; i++) {
          long block = first + i;
          boolean whole = range.coversWhole(block);
          if (whole || hadCopy[i]) {
            // A partial block reads the rest from storage, which holds the new bytes now.
            ByteBuffer content =
                whole ? wholeBlock(data, range.dataPosition(block)) : currentContent(v, block);
            int slot = newSlots[usedSlots++];
            int crc = crc(content.duplicate());
            writeSlot(slot, content);
            fresh[i] = new BlockEntry(slot, v.nextSeq.getAndIncrement(), crc, false, now);
            index.put(batch, v.id(), block, fresh[i]);
          }
        }
        // Not synced: a lost entry only leaves the block uncached, and a clean copy whose data
        // a power cut lost fails its checksum and is read from storage instead.
        commitTried = true;
        try {
          commitUnsynced(batch);
        } catch (CacheException e) {
          // Its slots stay reserved until the next start when the index may point to them.
          commitTried = mayBeApplied(e);
          log.warn("volume {}: caching a write-through write failed: {}", v.name(), e.getMessage());
          return Stored.ACK_NOW;
        }
        for (int i = 0; i < count; i++) {
          if (fresh[i] != null) {
            install(v, first + i, fresh[i]);
          }
        }
        return Stored.ACK_NOW;
      }
    } finally {
      if (newSlots != null) {
        releaseReserved(newSlots, commitTried ? usedSlots : 0, newSlots.length);
      }
    }
    Stored stored = writeBack(v, range, data, true, null);
    return new Stored(stored.copies(), v.nextSeq.get() - 1, true);
  }

  /**
   * Drops the clean cached copies of a range, durably (synced with --sync). Call with the blocks
   * write-locked.
   */
  private void dropRange(CachedVolume v, long first, int count) throws CacheException {
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
    try {
      kv.write(batch, config.syncWrites());
    } catch (IOException e) {
      throw unavailable("local index commit failed", e);
    }
    for (int i = 0; i < count; i++) {
      BlockEntry e = v.blocks.get(first + i);
      if (e != null && !e.dirty()) {
        drop(v, first + i);
      }
    }
  }

  private void storageWrite(CachedVolume v, IoRange range, ByteBuffer data) throws CacheException {
    try {
      if (data == null) {
        backing.writeZeros(v.name(), range.offset(), range.length());
      } else {
        backing.write(v.name(), range.offset(), data.duplicate());
      }
      backing.sync(v.name());
    } catch (IOException e) {
      throw unavailable("shared storage write of volume '" + v.name() + "' failed", e);
    }
  }

  /** The block's current 4 KiB (cache or shared storage), in a scratch buffer. Call locked. */
  private ByteBuffer currentContent(CachedVolume v, long block) throws CacheException {
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
      throw unavailable(
          "shared storage read of volume '"
              + v.name()
              + "' failed (needed to merge a write not"
              + " aligned to 4096 bytes)",
          ex);
    }
    return buf.clear();
  }

  /**
   * Reads a slot and checks its CRC. A failed clean block returns false (read shared storage
   * instead); a failed dirty block is acknowledged data damaged on flash and throws DATA_LOSS.
   */
  private boolean readSlotVerified(CachedVolume v, long block, BlockEntry e, ByteBuffer dst)
      throws CacheException {
    int start = dst.position();
    try {
      cacheFile.read(e.slot(), dst);
    } catch (IOException ex) {
      throw unavailable("local flash read failed", ex);
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
        "volume {} block {}: clean cached copy failed its checksum; re-reading shared" + " storage",
        v.name(),
        block);
    return false;
  }

  /** Publishes a committed entry. Call with the block write-locked. */
  private void install(CachedVolume v, long block, BlockEntry fresh) {
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
  void markDestaged(CachedVolume v, long block, long seq, Batch batch) {
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
  private void drop(CachedVolume v, long block) {
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
    signalSpace();
  }

  private void commit(Batch batch) throws CacheException {
    try {
      committer.commit(batch);
    } catch (IOException e) {
      throw unavailable("local index commit failed", e);
    }
  }

  /**
   * Whether a failed {@link #commit} may still have applied its batch, so that the index may point
   * to the slots it wrote. Not when the index refused it for lack of space: those slots are free.
   */
  private static boolean mayBeApplied(CacheException commitFailure) {
    return !(commitFailure.getCause() instanceof IOException io
        && KeyValueStorage.wroteNothing(io));
  }

  private void commitUnsynced(Batch batch) throws CacheException {
    try {
      kv.write(batch, false);
    } catch (IOException e) {
      throw unavailable("local index commit failed", e);
    }
  }

  private void writeSlot(int slot, ByteBuffer content) throws CacheException {
    try {
      cacheFile.write(slot, content.duplicate());
    } catch (IOException e) {
      throw unavailable("local flash write failed", e);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Space: reservation, eviction, backpressure

  /**
   * Takes {@code n} free slots, evicting clean blocks if needed. When {@code wait}, waits up to the
   * backpressure timeout for the destager to clean blocks, then fails with RESOURCE_EXHAUSTED;
   * otherwise returns null at once when there is no space.
   */
  /** Takes {@code n} slots for a write of {@code v}, waiting as {@link #reserveSlots} does. */
  private int[] reserveSlots(CachedVolume v, int n) throws CacheException {
    int[] now = space.reserveNow(n);
    if (now != null) {
      return now;
    }
    dirtyShare.enterSpaceWait(v);
    try {
      return reserveSlots(n, true);
    } finally {
      dirtyShare.exitSpaceWait(v);
    }
  }

  int[] reserveSlots(int n, boolean wait) throws CacheException {
    if (!wait) {
      return space.tryReserve(n);
    }
    if (n > slots.totalSlots()) {
      throw new CacheException(
          Reason.RESOURCE_EXHAUSTED,
          String.format(
              "a write of %d blocks needs more than the cache's %d slots", n, slots.totalSlots()));
    }
    int[] out;
    try {
      out = space.reserve(n, TimeUnit.MILLISECONDS.toNanos(config.writeBackpressureTimeoutMs()));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new CacheException(Reason.UNAVAILABLE, "interrupted while waiting for space");
    }
    if (out == null) {
      stats.backpressureRejections.increment();
      KeyValueStorage.Health index = kv.health();
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
              dirtySlots.get(),
              slots.totalSlots(),
              slots.freeSlots(),
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
            2L * config.destageBatchBytes() / BLOCK);
    return Math.min(reserve, (long) ((1 - config.destageHighWatermark()) * totalSlots));
  }

  /** Slots that hold dirty data no longer: space the throttle may hand out again. */
  private void dirtyDropped(CachedVolume v) {
    dirtySlots.decrementAndGet();
    v.dirtySlots.decrementAndGet();
    dirtyShare.signal();
    space.reclaimed(1);
  }

  /** Evicts clean blocks for a reservation that found too few free slots. */
  private void reclaimClean(int missing) {
    long clean = slots.totalSlots() - slots.freeSlots() - dirtySlots.get();
    if (clean > 0) {
      evictor.evict(missing, this::tryEvict);
    }
  }

  /** A writer starts waiting for space: the destager must go flat out now. */
  private void onSpaceWait() {
    stats.backpressureWaits.increment();
    destager.wake();
  }

  void signalSpace() {
    space.spaceFreed();
  }

  /** Evicts one clean block if it is still where the clock saw it and nobody holds it. */
  private boolean tryEvict(int slot, long volumeId, long block) {
    CachedVolume v = volumesById.get(volumeId);
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
      index.delete(batch, volumeId, block);
      kv.write(batch, false);
      v.blocks.remove(block);
      v.locks.bump(block);
      evictor.release(slot);
      slots.free(slot);
      stats.evictedBlocks.increment();
      return true;
    } catch (IOException e) {
      log.warn("evicting volume {} block {} failed: {}", v.name(), block, e.getMessage());
      return false;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Read

  /** Returns {@code length} bytes at {@code offset}: the latest acknowledged data of every byte. */
  public byte[] read(String name, long offset, long length) throws CacheException {
    CachedVolume v = volume(name);
    return read(v, range(v, "read", offset, length), true);
  }

  /**
   * Starts a read and returns at once; the future completes with the data or fails with a {@link
   * CacheException}. A read that every cached block answers runs on the calling thread (a transport
   * thread: no hand-off); one that misses, or finds its blocks busy, runs {@link #read} on {@code
   * waits}.
   */
  public CompletableFuture<byte[]> submitRead(
      String name, long offset, long length, Executor waits) {
    CompletableFuture<byte[]> done = new CompletableFuture<>();
    try {
      CachedVolume v = volume(name);
      byte[] hit = read(v, range(v, "read", offset, length), false);
      if (hit != null) {
        done.complete(hit);
        return done;
      }
    } catch (CacheException | RuntimeException e) {
      done.completeExceptionally(e);
      return done;
    }
    runOn(waits, done, () -> done.complete(read(name, offset, length)));
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
      checkNotDeleted(v);
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
        ByteBuffer scratch = SCRATCH.get();
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
          if (readSlotVerified(v, block, e, dst)) {
            if (!whole) {
              System.arraycopy(scratch.array(), from, out, outPos, to - from);
            }
            evictor.touch(e.slot());
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
        stats.readHits.add(hits);
        stats.readMisses.add(misses);
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
          tryEvict((int) b[1], v.id(), b[0]);
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
        backing.read(
            v.name(), missing[i] * BLOCK, ByteBuffer.wrap(data, i * BLOCK, (j - i) * BLOCK));
      } catch (IOException e) {
        throw unavailable("shared storage read of volume '" + v.name() + "' failed", e);
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
      newSlots = reserveSlots(n, false);
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
      long now = time.nowMs();
      for (int i = 0; i < n; i++) {
        if (v.blocks.containsKey(blocks[i]) || v.locks.version(blocks[i]) != versions[i]) {
          continue;
        }
        ByteBuffer content = ByteBuffer.wrap(data, i * BLOCK, BLOCK);
        int slot = newSlots[used++];
        int crc = crc(content.duplicate());
        writeSlot(slot, content);
        fresh[i] = new BlockEntry(slot, v.nextSeq.getAndIncrement(), crc, false, now);
        index.put(batch, v.id(), blocks[i], fresh[i]);
      }
      commitUnsynced(batch);
      for (int i = 0; i < n; i++) {
        if (fresh[i] != null) {
          install(v, blocks[i], fresh[i]);
        }
      }
    } catch (CacheException e) {
      log.debug("promotion skipped: {}", e.getMessage());
      used = 0; // nothing installed: the batch failed before install
    } finally {
      if (used < n) {
        slots.freeAll(newSlots, used, n);
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Replica copies (this node holds another node's dirty blocks)

  /**
   * A whole block image from a volume's owner.
   *
   * @param data exactly 4 KiB, or null for a zero block (a trimmed block)
   */
  public record ReplicaBlock(long block, long seq, ByteBuffer data) {}

  /**
   * Changes how this node holds a volume. Becoming OWNER turns every held copy into this node's own
   * dirty data (served and destaged from now on); becoming REPLICA stops serving and destaging. The
   * caller (the cluster layer) decides, under the volume's epoch.
   */
  public void setRole(String name, Role role) throws CacheException {
    CachedVolume v = volume(name);
    v.gate.writeLock().lock();
    try {
      if (v.deleted) {
        throw CacheException.notFound(name);
      }
      if (v.info.role() == role) {
        return;
      }
      VolumeInfo after = v.info.withRole(role);
      catalog.update(after);
      v.info = after;
      log.info("volume {} is now held as {}", name, role);
    } catch (IOException e) {
      throw unavailable("cannot store the role of volume '" + name + "'", e);
    } finally {
      v.gate.writeLock().unlock();
    }
    destager.wake();
  }

  /**
   * Stores copies of an owner's dirty blocks, durable like this node's own write-back writes (group
   * commit with sync). A copy not newer than the one held for its block is ignored, so retransmits
   * and reordering are harmless. All blocks of one call commit atomically.
   */
  public void applyReplicaBlocks(String name, List<ReplicaBlock> blocks) throws CacheException {
    applyReplicaBlocks(name, blocks, true);
  }

  /**
   * {@link #applyReplicaBlocks(String, List)} for a caller that must not wait (a transport thread):
   * returns false, having changed nothing, when storing the copies would mean waiting for cache
   * space, a lock or an fsync (with sync, every apply waits for one).
   */
  public boolean tryApplyReplicaBlocks(String name, List<ReplicaBlock> blocks)
      throws CacheException {
    return !config.syncWrites() && applyReplicaBlocks(name, blocks, false);
  }

  private boolean applyReplicaBlocks(String name, List<ReplicaBlock> blocks, boolean mayWait)
      throws CacheException {
    durability.check();
    CachedVolume v = volume(name);
    int n = blocks.size();
    int needed = 0;
    long[] blockNos = new long[n];
    for (int i = 0; i < n; i++) {
      ReplicaBlock b = blocks.get(i);
      IoRange.checkBlock("replica copy of", name, v.info.sizeBytes(), b.block());
      if (b.data() != null && b.data().remaining() != BLOCK) {
        throw CacheException.invalid(
            "replica block image of " + b.data().remaining() + " bytes; must be 4096");
      }
      needed += b.data() == null ? 0 : 1;
      blockNos[i] = b.block();
    }
    if (mayWait) {
      v.gate.readLock().lock();
    } else if (!v.gate.readLock().tryLock()) {
      return false;
    }
    try {
      if (v.deleted) {
        throw CacheException.notFound(name);
      }
      if (v.info.role() != Role.REPLICA) {
        throw new CacheException(
            Reason.FAILED_PRECONDITION,
            "volume '" + name + "' is owned by this node; it takes no replica copies");
      }
      if (!dirtyShare.admits(v, needed)) {
        if (!mayWait) {
          return false;
        }
        dirtyShare.await(v, needed);
      }
      int[] newSlots = mayWait ? reserveSlots(v, needed) : reserveSlots(needed, false);
      if (newSlots == null) {
        return false;
      }
      int used = 0;
      BlockLocks.Held held =
          mayWait ? v.locks.lockBlocks(blockNos, n, true) : v.locks.tryLockBlocks(blockNos, n);
      if (held == null) {
        slots.freeAll(newSlots, 0, needed);
        return false;
      }
      try (held) {
        Batch batch = new Batch();
        BlockEntry[] fresh = new BlockEntry[n];
        long now = time.nowMs();
        long maxSeq = -1;
        for (int i = 0; i < n; i++) {
          ReplicaBlock b = blocks.get(i);
          BlockEntry held0 = v.blocks.get(b.block());
          if (held0 != null && held0.seq() >= b.seq()) {
            continue;
          }
          for (int j = 0; j < i; j++) {
            // Two images of one block in one call: keep the newer.
            if (fresh[j] != null && blockNos[j] == b.block() && fresh[j].seq() >= b.seq()) {
              b = null;
              break;
            }
          }
          if (b == null) {
            continue;
          }
          if (b.data() == null) {
            fresh[i] = new BlockEntry(BlockEntry.NO_SLOT, b.seq(), 0, true, now);
          } else {
            int slot = newSlots[used++];
            writeSlot(slot, b.data());
            fresh[i] = new BlockEntry(slot, b.seq(), crc(b.data().duplicate()), true, now);
          }
          index.put(batch, v.id(), b.block(), fresh[i]);
          maxSeq = Math.max(maxSeq, b.seq());
        }
        commit(batch);
        for (int i = 0; i < n; i++) {
          if (fresh[i] != null) {
            BlockEntry current = v.blocks.get(blockNos[i]);
            if (current == null || current.seq() < fresh[i].seq()) {
              install(v, blockNos[i], fresh[i]);
            }
          }
        }
        long next = maxSeq + 1;
        v.nextSeq.accumulateAndGet(next, Math::max);
      } finally {
        if (used < needed) {
          slots.freeAll(newSlots, used, needed);
        }
      }
    } finally {
      v.gate.readLock().unlock();
    }
    return true;
  }

  /**
   * Re-protection begins on this replica: drops every copy of the volume below {@code belowSeq}
   * (left from an earlier time this node held it), so only the owner's current blocks remain.
   */
  public void resetReplica(String name, long belowSeq) throws CacheException {
    CachedVolume v = volume(name);
    v.gate.writeLock().lock();
    try {
      if (v.deleted || v.info.role() != Role.REPLICA) {
        throw new CacheException(
            Reason.FAILED_PRECONDITION, "volume '" + name + "' is not held here as a replica");
      }
      Batch batch = new Batch();
      List<Long> stale = new ArrayList<>();
      for (Map.Entry<Long, BlockEntry> e : v.blocks.entrySet()) {
        if (e.getValue().seq() < belowSeq) {
          index.delete(batch, v.id(), e.getKey());
          stale.add(e.getKey());
        }
      }
      try {
        kv.write(batch, config.syncWrites());
      } catch (IOException e) {
        throw unavailable("local index commit failed", e);
      }
      for (long block : stale) {
        drop(v, block);
      }
      if (!stale.isEmpty()) {
        log.info(
            "volume {}: dropped {} stale replica copies before re-protection", name, stale.size());
      }
    } finally {
      v.gate.writeLock().unlock();
    }
  }

  /** Where re-protection sends an owned volume's dirty blocks: one new replica, in order. */
  public interface CopySink {
    /**
     * Called once, under the volume's write barrier (no write in flight, none starting): every
     * write that follows reaches the new replica through the write path. Must not block.
     *
     * @param resetBelowSeq the replica must first drop copies below this sequence
     */
    void begin(long resetBelowSeq);

    /**
     * Sends one batch; called with its blocks locked, so a release of them is ordered after it.
     * Must not block; the data is not touched afterwards.
     */
    CompletableFuture<Void> send(List<ReplicaBlock> blocks);
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
  public long copyDirtyBlocks(
      String name, CopySink sink, long batchTimeoutMs, java.util.function.LongConsumer progress)
      throws CacheException {
    CachedVolume v = volume(name);
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
    java.util.ArrayDeque<CompletableFuture<Void>> window = new java.util.ArrayDeque<>();
    long sentBytes = 0;
    long ackedBytes = 0;
    java.util.ArrayDeque<Long> batchBytes = new java.util.ArrayDeque<>();
    for (int from = 0; from < blocks.length; from += COPY_BATCH_BLOCKS) {
      int n = Math.min(COPY_BATCH_BLOCKS, blocks.length - from);
      long[] chunk = Arrays.copyOfRange(blocks, from, from + n);
      List<ReplicaBlock> images = new ArrayList<>(n);
      ByteBuffer buf = ByteBuffer.allocate(n * BLOCK);
      try (BlockLocks.Held held = v.locks.lockBlocks(chunk, n, false)) {
        for (long block : chunk) {
          BlockEntry e = v.blocks.get(block);
          if (e == null || !e.dirty()) {
            continue; // destaged meanwhile: storage has it, and its release went out already
          }
          if (e.isZero()) {
            images.add(new ReplicaBlock(block, e.seq(), null));
            continue;
          }
          ByteBuffer slice = buf.slice(images.size() * BLOCK, BLOCK);
          try {
            if (!readSlotVerified(v, block, e, slice.duplicate())) {
              continue;
            }
          } catch (CacheException ex) {
            if (ex.reason() == Reason.DATA_LOSS) {
              continue; // reported already; nothing sound to copy
            }
            throw ex;
          }
          images.add(new ReplicaBlock(block, e.seq(), slice));
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

  /** Dirty blocks of a volume now (for re-protection progress). */
  public int dirtyBlocks(String name) throws CacheException {
    return volume(name).dirty.size();
  }

  /** The highest sequence this node holds for a volume and how many dirty blocks. */
  public long[] describeCopies(String name) throws CacheException {
    CachedVolume v = volume(name);
    return new long[] {v.nextSeq.get() - 1, v.dirty.size()};
  }

  /**
   * Drops held copies the owner has destaged: a copy goes only if its sequence is at most the
   * released one (a newer copy is still needed). Not synced: a lost release only keeps a copy
   * longer.
   */
  public void releaseReplicaBlocks(String name, long[] blocks, long[] seqs) throws CacheException {
    CachedVolume v = volume(name);
    v.gate.readLock().lock();
    try {
      if (v.deleted || v.info.role() != Role.REPLICA) {
        return; // an owner keeps its dirty data until its own destager cleans it
      }
      try (BlockLocks.Held held = v.locks.lockBlocks(blocks, blocks.length, true)) {
        Batch batch = new Batch();
        boolean[] drop = new boolean[blocks.length];
        for (int i = 0; i < blocks.length; i++) {
          BlockEntry e = v.blocks.get(blocks[i]);
          if (e != null && e.dirty() && e.seq() <= seqs[i]) {
            index.delete(batch, v.id(), blocks[i]);
            drop[i] = true;
          }
        }
        // Synced with --sync, for the same reason as marking blocks clean.
        try {
          kv.write(batch, config.syncWrites());
        } catch (IOException e) {
          throw unavailable("local index commit failed", e);
        }
        for (int i = 0; i < blocks.length; i++) {
          if (drop[i]) {
            drop(v, blocks[i]);
          }
        }
      }
    } finally {
      v.gate.readLock().unlock();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Flush and status

  /**
   * Returns once every write acknowledged before this call is on shared storage (synced).
   *
   * @return bytes the destager wrote for this volume while the flush waited
   */
  public long flush(String name) throws CacheException {
    return flush(name, Long.MAX_VALUE);
  }

  /**
   * Like {@link #flush(String)}, but fails with DEADLINE_EXCEEDED once this engine's clock reaches
   * {@code deadlineMs}.
   */
  public long flush(String name, long deadlineMs) throws CacheException {
    CachedVolume v = volume(name);
    checkNotDeleted(v);
    long before = v.destagedBytes.sum();
    destager.flush(v, v.nextSeq.get() - 1, deadlineMs);
    return v.destagedBytes.sum() - before;
  }

  /**
   * Returns once every write acknowledged before this call is on this node's non-volatile flash
   * (cache file and index synced), also without {@code --sync}; concurrent calls share syncs. See
   * {@link LocalSync}.
   */
  public void syncLocal() throws CacheException {
    try {
      localSync.sync();
    } catch (IOException e) {
      throw unavailable("sync of local flash", e);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Handover of an owned volume to another node

  /**
   * Readies an owned volume for another node to take over: from now on I/O on it is refused with
   * UNAVAILABLE (it is moving), writes in flight finish (write barrier), every dirty block is
   * destaged, and then destaging stops for good, after any destage batch still running has ended.
   * When this returns, shared storage holds every acknowledged write and this node will not write
   * the volume to shared storage again; the caller commits the new owner, or calls {@link
   * #cancelHandover}. On failure the volume is served again before this throws.
   *
   * @param deadlineMs this engine's clock time by which every wait must be over
   * @return bytes destaged by the handover
   * @throws CacheException DEADLINE_EXCEEDED when a wait ran past the deadline; UNAVAILABLE or
   *     DATA_LOSS when the remaining dirty blocks could not be destaged
   */
  public long prepareHandover(String name, long deadlineMs) throws CacheException {
    CachedVolume v = volume(name);
    synchronized (v) {
      checkNotDeleted(v);
      v.handover = CachedVolume.Handover.DRAINING;
    }
    boolean ready = false;
    try {
      // Writes check the state under the gate, so once the barrier is passed none is running and
      // none can start; the last sequence issued is final.
      barrier(v, deadlineMs, "writes in flight");
      long before = v.destagedBytes.sum();
      destager.flush(v, v.nextSeq.get() - 1, deadlineMs);
      v.handover = CachedVolume.Handover.FENCED;
      // A destage batch holds the gate shared from its fencing check to its storage write, so
      // after this barrier none is running and every later one sees FENCED.
      barrier(v, deadlineMs, "the destager's batch");
      if (v.dirty.size() > 0) {
        throw new CacheException(
            v.corruptBlocks.isEmpty() ? Reason.UNAVAILABLE : Reason.DATA_LOSS,
            "volume '"
                + name
                + "' still has "
                + v.dirty.size()
                + " dirty blocks after destaging"
                + (v.corruptBlocks.isEmpty() ? "" : " (" + v.corruptBlocks.size() + " corrupt)"));
      }
      ready = true;
      return v.destagedBytes.sum() - before;
    } finally {
      if (!ready) {
        cancelHandover(v);
      }
    }
  }

  /** Serves a volume again after {@link #prepareHandover} when no other node took it over. */
  public void cancelHandover(String name) throws CacheException {
    cancelHandover(volume(name));
  }

  private void cancelHandover(CachedVolume v) {
    synchronized (v) {
      v.handover = CachedVolume.Handover.NONE;
    }
    destager.wake();
  }

  /** Whether the volume is being handed to another node (I/O refused). */
  public boolean handingOver(String name) throws CacheException {
    return volume(name).handover != CachedVolume.Handover.NONE;
  }

  /** Takes and releases the gate exclusively: everything holding it shared has finished. */
  private void barrier(CachedVolume v, long deadlineMs, String what) throws CacheException {
    long waitMs = Math.max(0, deadlineMs - time.nowMs());
    boolean locked;
    try {
      locked = v.gate.writeLock().tryLock(waitMs, TimeUnit.MILLISECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new CacheException(Reason.UNAVAILABLE, "interrupted while waiting for " + what);
    }
    if (!locked) {
      throw new CacheException(
          Reason.DEADLINE_EXCEEDED,
          "volume '" + v.name() + "': " + what + " did not finish in time");
    }
    v.gate.writeLock().unlock();
  }

  /** Destaging an owned volume is allowed: the node may serve it and has not handed it over. */
  boolean mayDestage(CachedVolume v) {
    // After a failed fsync the cached data may not be what was written: destaging it could put
    // old bytes on shared storage. A replica takes the volume over instead.
    return durability.ok() && v.handover != CachedVolume.Handover.FENCED && mayServe.test(v.info);
  }

  /**
   * Asks the destager to write every dirty block of the volume now, without waiting: for a volume
   * whose dirty data has fewer copies than its policy wants.
   */
  public void destageSoon(String name) throws CacheException {
    CachedVolume v = volume(name);
    v.flushTargetSeq.accumulateAndGet(v.nextSeq.get() - 1, Math::max);
    destager.wake();
  }

  public VolumeStatusView volumeStatus(String name) throws CacheException {
    return status(volume(name));
  }

  VolumeStatusView status(CachedVolume v) {
    long now = time.nowMs();
    long oldestAge = 0;
    Map.Entry<Long, Long> oldest = v.dirty.first();
    if (oldest != null) {
      BlockEntry e = v.blocks.get(oldest.getValue());
      oldestAge = e == null ? 0 : Math.max(0, now - e.writtenAtMs());
    }
    VolumeStatusView.Health health = VolumeStatusView.Health.HEALTHY;
    String detail = "";
    String localFailure = durability.failure();
    if (localFailure != null) {
      health = VolumeStatusView.Health.LOCAL_FLASH_FAILED;
      detail = localFailure;
    } else if (!v.corruptBlocks.isEmpty()) {
      health = VolumeStatusView.Health.CORRUPT_DIRTY_DATA;
      detail = v.corruptBlocks.size() + " dirty blocks failed their checksum";
    } else if (v.storageFailing(now, config.storageFailingAfterMs())) {
      health = VolumeStatusView.Health.STORAGE_FAILING;
      detail =
          "shared storage failing for "
              + (now - v.storageFailingSinceMs)
              + " ms: "
              + v.lastStorageError;
    }
    long dirtyBlocks = v.dirty.size();
    return new VolumeStatusView(
        v.info,
        health,
        detail,
        dirtyBlocks * BLOCK,
        (long) v.blocks.size() * BLOCK,
        oldestAge,
        v.corruptBlocks.size(),
        v.destagedBytes.sum());
  }

  public NodeStatusView status() {
    List<VolumeStatusView> vols = new ArrayList<>();
    for (VolumeInfo info : listVolumes()) {
      CachedVolume v = volumesByName.get(info.name());
      if (v != null) {
        vols.add(status(v));
      }
    }
    long used = (long) (slots.totalSlots() - slots.freeSlots()) * BLOCK;
    return new NodeStatusView(
        cacheFile.sizeBytes(),
        used,
        dirtySlots.get() * BLOCK,
        stats.readHits.sum(),
        stats.readMisses.sum(),
        config.syncWrites(),
        stats.destagedBytes.sum(),
        stats.evictedBlocks.sum(),
        stats.backpressureWaits.sum(),
        stats.backpressureRejections.sum(),
        committer.groups.sum(),
        committer.batches.sum(),
        vols,
        durability.failure(),
        kv.health().state() == KeyValueStorage.Health.State.OK ? null : kv.health().detail());
  }

  // ---------------------------------------------------------------------------------------------
  // Helpers

  /** The request's range, checked against the volume ({@link IoRange#check}). */
  private static IoRange range(CachedVolume v, String op, long offset, long length)
      throws CacheException {
    return IoRange.check(op, v.name(), v.info.sizeBytes(), offset, length);
  }

  private void checkNotDeleted(CachedVolume v) throws CacheException {
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
    if (!mayServe.test(v.info)) {
      throw new CacheException(
          Reason.UNAVAILABLE,
          "volume '" + v.name() + "': this node's cluster lease is not valid; not serving");
    }
  }

  static int crc(ByteBuffer content) {
    CRC32C c = CRC.get();
    c.reset();
    c.update(content);
    return (int) c.getValue();
  }

  static CacheException unavailable(String what, IOException e) {
    return new CacheException(Reason.UNAVAILABLE, what + ": " + e.getMessage(), e);
  }

  /** Stops the destager and closes local storage. Dirty data stays for the next start. */
  @Override
  public void close() {
    if (!destager.stop()) {
      log.error("destager still busy after 10 s; leaving local storage open (nothing is lost)");
      return;
    }
    try {
      kv.sync();
    } catch (IOException e) {
      log.warn("index sync at close failed: {}", e.getMessage());
    }
    kv.close();
    try {
      cacheFile.force();
    } catch (IOException e) {
      durability.failed("an fsync of the cache file at close", e);
    }
    try {
      cacheFile.close();
    } catch (IOException e) {
      log.warn("cache file close failed: {}", e.getMessage());
    }
    backing.close();
  }
}
