package io.peerflash.node.engine;

import io.peerflash.node.cache.CacheFile;
import io.peerflash.node.index.BlockEntry;
import io.peerflash.node.index.KeyValueStorage;
import io.peerflash.node.index.VolumeInfo;
import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.index.VolumeInfo.Role;
import io.peerflash.node.storage.BackingStore;
import io.peerflash.replication.data.BlockCopy;
import io.peerflash.replication.data.ReplicaSink;
import io.peerflash.replication.fault.FaultPoints;
import io.peerflash.util.Time;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.function.LongConsumer;
import java.util.function.Predicate;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The node's flash cache, as its callers (the RPC adapters and the cluster layer) see it. Each
 * concern is a class of its own over one {@link BlockStore}: {@link WritePath} (read it top to
 * bottom), {@link ReadPath}, {@link ReplicaStore} (other nodes' copies), {@link VolumeAdmin},
 * {@link Handover}, {@link DirtyCopier} (re-protection), {@link Destager} and {@link Recovery}.
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
  public static final int BLOCK = BlockStore.BLOCK;
  public static final int SECTOR = IoRange.SECTOR;
  public static final int MAX_IO_BYTES = IoRange.MAX_IO_BYTES;
  public static final long MAX_VOLUME_BYTES = VolumeProvisioner.MAX_VOLUME_BYTES;

  private static final Logger log = LoggerFactory.getLogger(CacheEngine.class);

  final BlockStore store;
  final Destager destager;
  private final WritePath writes;
  private final ReadPath reads;
  private final ReplicaStore replicas;
  private final VolumeAdmin volumes;
  private final Handover handover;
  private final DirtyCopier copier;
  private volatile ReplicationPort replication = ReplicationPort.NONE;

  private CacheEngine(BlockStore store) {
    this.store = store;
    this.destager = new Destager(store, store.backing, store.config, store.time);
    store.space.onWait(destager::wake);
    this.writes = new WritePath(store, destager);
    this.reads = new ReadPath(store);
    this.replicas = new ReplicaStore(store);
    this.volumes = new VolumeAdmin(store, destager);
    this.handover = new Handover(store, destager);
    this.copier = new DirtyCopier(store);
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
          new CacheEngine(Recovery.recover(config, time, kv, cacheFile, backing, durability));
      engine.volumes.finishDeletes();
      return engine;
    } catch (IOException | RuntimeException e) {
      if (cacheFile != null) {
        cacheFile.close();
      }
      kv.close();
      throw e;
    }
  }

  /** Connects the write path and the destager to the cluster's replicas (before {@link #start}). */
  public void setReplicationPort(ReplicationPort port) {
    replication = port;
    writes.setReplicationPort(port);
    destager.setReplicationPort(port);
  }

  /**
   * Installs the check that fences a node without a valid lease: owned volumes are neither served
   * nor destaged while it fails.
   */
  public void setServeGuard(Predicate<VolumeInfo> guard) {
    store.mayServe = guard;
  }

  /** Who is told how long the engine's inner stages take (the node's metrics). */
  public void setObserver(EngineObserver observer) {
    store.setObserver(observer);
  }

  /** Where tests inject faults (the node shares one instance among its parts). */
  public void setFaultPoints(FaultPoints faults) {
    store.setFaultPoints(faults);
  }

  /**
   * Null while local flash has kept every fsync; otherwise why this node acknowledges nothing until
   * it is restarted ({@link LocalDurability}). A clustered node stops renewing its lease.
   */
  public String localFailure() {
    return store.durability.failure();
  }

  /** Starts background work (the destager). */
  public void start() {
    destager.start();
  }

  // ---------------------------------------------------------------------------------------------
  // Volumes ({@link VolumeAdmin})

  /** Creates a volume of a single node with a new backing file. */
  public VolumeInfo createVolume(String name, long sizeBytes, CacheMode mode, int replicas)
      throws CacheException {
    return volumes.createVolume(name, sizeBytes, mode, replicas, false);
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
    return volumes.createVolume(name, sizeBytes, mode, replicas, adoptExisting);
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
    return volumes.prepareBackingFile(name, sizeBytes, adoptExisting);
  }

  /**
   * Removes a backing file {@link #prepareBackingFile} created for a volume the map then refused.
   */
  public void discardNewBackingFile(String name) {
    volumes.discardNewBackingFile(name);
  }

  /** Refuses one more volume when {@code existing} are there already (max-volumes). */
  public void checkVolumeCount(int existing) throws CacheException {
    volumes.checkVolumeCount(existing);
  }

  /** The largest volume this node can create. */
  public long maxVolumeBytes() throws CacheException {
    return volumes.maxVolumeBytes();
  }

  /**
   * Creates or updates a volume whose definition comes from the cluster map (id, policy and this
   * node's role). Only the owner creating a new volume creates its backing file.
   */
  public VolumeInfo adoptVolume(VolumeInfo wanted, boolean createBackingFile)
      throws CacheException {
    return volumes.adoptVolume(wanted, createBackingFile, 0);
  }

  /**
   * {@link #adoptVolume(VolumeInfo, boolean)}; held as OWNER, the volume's writes take sequences of
   * at least {@code ownerSeqFloor} from now on (raised before the role changes).
   */
  public VolumeInfo adoptVolume(VolumeInfo wanted, boolean createBackingFile, long ownerSeqFloor)
      throws CacheException {
    return volumes.adoptVolume(wanted, createBackingFile, ownerSeqFloor);
  }

  /**
   * Forgets a volume on this node, dirty copies included, without touching its backing file: for
   * copies a newer epoch superseded (the data is safe with the current owner and replicas).
   */
  public void dropLocalVolume(String name) throws CacheException {
    volumes.dropLocalVolume(name);
  }

  public VolumeInfo getVolume(String name) throws CacheException {
    return volumes.getVolume(name);
  }

  public List<VolumeInfo> listVolumes() {
    return volumes.listVolumes();
  }

  /** Drops the volume, its cached blocks (dirty ones too) and its backing file. */
  public void deleteVolume(String name) throws CacheException {
    volumes.deleteVolume(name);
  }

  /**
   * Changes the cache mode and replica count. Leaving write-back destages every dirty block before
   * returning.
   */
  public VolumeInfo setPolicy(String name, CacheMode mode, int replicas) throws CacheException {
    return volumes.setPolicy(name, mode, replicas);
  }

  /**
   * Changes how this node holds a volume. Becoming OWNER turns every held copy into this node's own
   * dirty data (served and destaged from now on); becoming REPLICA stops serving and destaging. The
   * caller (the cluster layer) decides, under the volume's epoch.
   */
  public void setRole(String name, Role role) throws CacheException {
    volumes.setRole(name, role);
  }

  // ---------------------------------------------------------------------------------------------
  // I/O ({@link WritePath}, {@link ReadPath})

  /**
   * Writes {@code data} (its remaining bytes) at {@code offset}, acknowledged per the volume's mode
   * when this returns.
   */
  public WriteAck write(String name, long offset, ByteBuffer data) throws CacheException {
    return writes.write(name, offset, data);
  }

  /** Discards a range: it reads as zeros afterwards, and shared storage gets zeros. */
  public WriteAck trim(String name, long offset, long length) throws CacheException {
    return writes.trim(name, offset, length);
  }

  /**
   * Starts a write and returns at once; the future completes when the write may be acknowledged
   * (when {@link #write} would return) or fails with a {@link CacheException}.
   *
   * <p>A write-back write that needs no wait runs on the calling thread (a transport thread, so
   * that it costs no thread hand-off): admitted by its on-peer-loss policy, whole blocks, at most
   * {@link WritePath#MAX_WRITE_NOW_BYTES}, space free, its blocks unlocked, no synced commit. Its
   * copies go out, it is stored and becomes visible, and the future completes on the thread that
   * receives the last replica's ack. Every other write runs {@link #write} on {@code waits}, as
   * does the destage a write needs before its ack when a replica could not take its copies.
   *
   * @param storeAfterSend null, or the calling thread's own task queue (its event loop): a write
   *     stored without waiting then stores this node's copy in a task queued there after its copies
   *     were sent. A copy handed to a peer channel goes out when the event loop flushes it, after
   *     the task that sent it; storing first would hold the copy back for the whole local store.
   *     Tasks must run on the calling thread (the write holds the volume's gate until then). The
   *     index entries of the writes stored in one turn of it are committed together, by a task
   *     queued behind them ({@code TurnCommits}).
   */
  public CompletableFuture<WriteAck> submitWrite(
      String name, long offset, ByteBuffer data, Executor waits, Executor storeAfterSend) {
    return writes.submitWrite(name, offset, data, waits, storeAfterSend, storeAfterSend != null);
  }

  /**
   * Like {@link #submitWrite(String, long, ByteBuffer, Executor, Executor)}, storing this node's
   * copy right after the copies are sent; {@code callersLoop} (null, or the event loop the calling
   * thread runs) commits the index entries of the writes stored in one of its turns together.
   */
  public CompletableFuture<WriteAck> submitWriteOnLoop(
      String name, long offset, ByteBuffer data, Executor waits, Executor callersLoop) {
    return writes.submitWrite(name, offset, data, waits, callersLoop, false);
  }

  /** Same as {@link #submitWrite(String, long, ByteBuffer, Executor, Executor)} storing inline. */
  public CompletableFuture<WriteAck> submitWrite(
      String name, long offset, ByteBuffer data, Executor waits) {
    return writes.submitWrite(name, offset, data, waits, null, false);
  }

  /** Returns {@code length} bytes at {@code offset}: the latest acknowledged data of every byte. */
  public byte[] read(String name, long offset, long length) throws CacheException {
    return reads.read(name, offset, length);
  }

  /**
   * Starts a read and returns at once; the future completes with the data or fails with a {@link
   * CacheException}. A read that every cached block answers runs on the calling thread (a transport
   * thread: no hand-off); one that misses, or finds its blocks busy, runs on {@code waits}.
   */
  public CompletableFuture<byte[]> submitRead(
      String name, long offset, long length, Executor waits) {
    return reads.submitRead(name, offset, length, waits);
  }

  // ---------------------------------------------------------------------------------------------
  // Replica copies ({@link ReplicaStore}) and re-protection ({@link DirtyCopier})

  /** Where the replication service stores the copies owners send this node. */
  public ReplicaSink replicaSink() {
    return replicas;
  }

  // The four methods below change copies without an epoch check: for a caller that is its own
  // check (an engine driven alone). A node's replication service goes through replicaSink(),
  // whose every change decides the request's epoch check together with the change.

  /**
   * Stores copies of an owner's dirty blocks, durable like this node's own write-back writes (group
   * commit with sync). A copy not newer than the one held for its block is ignored, so retransmits
   * and reordering are harmless. All blocks of one call commit atomically.
   */
  public void applyReplicaBlocks(String name, List<BlockCopy> blocks) throws CacheException {
    replicas.applyReplicaBlocks(name, blocks, ReplicaStore.NO_EPOCH_CHECK, true);
  }

  /**
   * {@link #applyReplicaBlocks} for a caller that must not wait (a transport thread): returns
   * false, having changed nothing, when storing the copies would mean waiting for cache space, a
   * lock or an fsync (with sync, every apply waits for one).
   */
  public boolean tryApplyReplicaBlocks(String name, List<BlockCopy> blocks) throws CacheException {
    return replicas.tryApplyReplicaBlocks(name, blocks, ReplicaStore.NO_EPOCH_CHECK);
  }

  /**
   * Re-protection begins on this replica: drops every copy of the volume below {@code belowSeq}
   * (left from an earlier time this node held it), so only the owner's current blocks remain.
   */
  public void resetReplica(String name, long belowSeq) throws CacheException {
    replicas.resetReplica(name, belowSeq, ReplicaStore.NO_EPOCH_CHECK);
  }

  /**
   * Drops held copies the owner has destaged: a copy goes only if its sequence is at most the
   * released one (a newer copy is still needed).
   */
  public void releaseReplicaBlocks(String name, long[] blocks, long[] seqs) throws CacheException {
    replicas.releaseReplicaBlocks(name, blocks, seqs, ReplicaStore.NO_EPOCH_CHECK);
  }

  /** The highest sequence this node holds for a volume and how many dirty blocks. */
  public long[] describeCopies(String name) throws CacheException {
    return replicas.describeCopies(name);
  }

  /** Dirty blocks of a volume now (for re-protection progress). */
  public int dirtyBlocks(String name) throws CacheException {
    return replicas.dirtyBlocks(name);
  }

  /**
   * Re-protection: sends every dirty block of an owned volume to a new replica, while writes go on.
   * Returns once the replica acknowledged all of them.
   *
   * @param progress told the bytes acknowledged so far, after each batch
   * @return bytes copied
   * @throws CacheException UNAVAILABLE when a batch failed or timed out
   */
  public long copyDirtyBlocks(
      String name, CopySink sink, long batchTimeoutMs, LongConsumer progress)
      throws CacheException {
    return copier.copyDirtyBlocks(name, sink, batchTimeoutMs, progress);
  }

  // ---------------------------------------------------------------------------------------------
  // Flush, handover ({@link Handover}) and status

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
    CachedVolume v = store.volume(name);
    store.checkServable(v);
    long before = v.destagedBytes.sum();
    destager.flush(v, v.nextSeq.get() - 1, deadlineMs);
    return v.destagedBytes.sum() - before;
  }

  /**
   * Returns once every write acknowledged before this call is on this node's non-volatile flash
   * (cache file and index synced), also without {@code --sync}; concurrent calls share syncs with
   * each other and with group commits ({@link GroupCommitter#sync}).
   */
  public void syncLocal() throws CacheException {
    store.syncLocal();
  }

  /**
   * Fsyncs of the cache file so far (each followed by a sync of the index): group commits with
   * {@code --sync} and syncs asked for by FLUSH, here or by an owner this node is a replica of.
   */
  public long localFsyncs() {
    return store.committer.fsyncs.sum();
  }

  /** Syncs of local flash asked for so far ({@link #syncLocal}, an owner's SyncCopies). */
  public long localSyncRequests() {
    return store.committer.syncRequests.sum();
  }

  /**
   * A block device's FLUSH, or a write with FUA, for one volume: completes once every write to it
   * acknowledged before this call is on non-volatile storage of every copy its policy asks for,
   * also without {@code --sync}: this node's flash ({@link #syncLocal}) and, in parallel, each
   * in-sync replica's ({@link ReplicationPort#syncCopies}). Where fewer copies exist than the
   * policy asks for and it does not accept that, the volume's writes up to now are destaged
   * instead, as a write's ack would go through. A write-through volume's writes are on shared
   * storage already: only the local sync runs (harmless). Shared storage is not otherwise involved
   * ({@link #flush} is the destage).
   *
   * @param waits where the local sync and any destage wait (never the calling thread)
   * @return fails with a {@link CacheException}: NOT_FOUND for no such volume, UNAVAILABLE when a
   *     sync failed or a replica that must be covered did not sync
   */
  public CompletableFuture<Void> syncVolume(String name, Executor waits) {
    CachedVolume v;
    try {
      v = store.volume(name);
    } catch (CacheException e) {
      return CompletableFuture.failedFuture(e);
    }
    // Every write acknowledged before this call has a sequence up to this one.
    long coveredSeq = v.nextSeq.get() - 1;
    VolumeInfo info = v.info;
    CompletableFuture<ReplicationPort.CopiesSynced> copies;
    try {
      copies =
          info.mode() == CacheMode.WRITE_BACK && info.role() == Role.OWNER
              ? replication.syncCopies(info)
              : null;
    } catch (RuntimeException e) {
      return CompletableFuture.failedFuture(e);
    }
    CompletableFuture<Void> local =
        CompletableFuture.runAsync(
            () -> {
              try {
                store.syncLocal();
              } catch (CacheException e) {
                throw new java.util.concurrent.CompletionException(e);
              }
            },
            waits);
    if (copies == null) {
      return local;
    }
    CompletableFuture<ReplicationPort.CopiesSynced> replicas =
        copies.handle(
            (verdict, failure) -> {
              if (failure == null) {
                return verdict;
              }
              Throwable cause =
                  failure instanceof java.util.concurrent.CompletionException
                          && failure.getCause() != null
                      ? failure.getCause()
                      : failure;
              throw new java.util.concurrent.CompletionException(
                  new CacheException(
                      cause instanceof ReplicationPort.FencedException
                          ? CacheException.Reason.FAILED_PRECONDITION
                          : CacheException.Reason.UNAVAILABLE,
                      "flush of volume '" + name + "': " + cause.getMessage(),
                      cause));
            });
    return local
        .thenCombine(replicas, (ok, verdict) -> verdict)
        .thenCompose(
            verdict ->
                verdict == ReplicationPort.CopiesSynced.SYNCED
                    ? CompletableFuture.completedFuture(null)
                    : CompletableFuture.runAsync(
                        () -> {
                          try {
                            destager.flush(v, coveredSeq);
                          } catch (CacheException e) {
                            throw new java.util.concurrent.CompletionException(e);
                          }
                        },
                        waits));
  }

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
    return handover.prepareHandover(name, deadlineMs);
  }

  /** Serves a volume again after {@link #prepareHandover} when no other node took it over. */
  public void cancelHandover(String name) throws CacheException {
    handover.cancelHandover(name);
  }

  /** Whether the volume is being handed to another node (I/O refused). */
  public boolean handingOver(String name) throws CacheException {
    return handover.handingOver(name);
  }

  /**
   * Asks the destager to write every dirty block of the volume now, without waiting: for a volume
   * whose dirty data has fewer copies than its policy wants.
   */
  public void destageSoon(String name) throws CacheException {
    CachedVolume v = store.volume(name);
    v.flushTargetSeq.accumulateAndGet(v.nextSeq.get() - 1, Math::max);
    destager.wake();
  }

  public VolumeStatusView volumeStatus(String name) throws CacheException {
    return status(store.volume(name));
  }

  VolumeStatusView status(CachedVolume v) {
    long now = store.time.nowMs();
    long oldestAge = 0;
    Map.Entry<Long, Long> oldest = v.dirty.first();
    if (oldest != null) {
      BlockEntry e = v.blocks.get(oldest.getValue());
      oldestAge = e == null ? 0 : Math.max(0, now - e.writtenAtMs());
    }
    VolumeStatusView.Health health = VolumeStatusView.Health.HEALTHY;
    String detail = "";
    String localFailure = store.durability.failure();
    if (localFailure != null) {
      health = VolumeStatusView.Health.LOCAL_FLASH_FAILED;
      detail = localFailure;
    } else if (!v.corruptBlocks.isEmpty()) {
      health = VolumeStatusView.Health.CORRUPT_DIRTY_DATA;
      detail = v.corruptBlocks.size() + " dirty blocks failed their checksum";
    } else if (v.destage.failing(now, store.config.storageFailingAfterMs())) {
      health = VolumeStatusView.Health.STORAGE_FAILING;
      detail =
          "shared storage failing for "
              + (now - v.destage.failingSinceMs())
              + " ms: "
              + v.destage.lastError();
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
      CachedVolume v = store.find(info.name());
      if (v != null) {
        vols.add(status(v));
      }
    }
    long used = (long) (store.slots.totalSlots() - store.slots.freeSlots()) * BLOCK;
    return new NodeStatusView(
        store.cacheFile.sizeBytes(),
        used,
        store.dirtySlots.get() * BLOCK,
        store.stats.readHits.sum(),
        store.stats.readMisses.sum(),
        store.config.syncWrites(),
        store.stats.destagedBytes.sum(),
        store.stats.evictedBlocks.sum(),
        store.stats.backpressureWaits.sum(),
        store.stats.backpressureRejections.sum(),
        store.committer.groups.sum(),
        store.committer.batches.sum(),
        vols,
        store.durability.failure(),
        store.kv.health().state() == KeyValueStorage.Health.State.OK
            ? null
            : store.kv.health().detail());
  }

  /** Stops the destager and closes local storage. Dirty data stays for the next start. */
  @Override
  public void close() {
    if (!destager.stop()) {
      log.error("destager still busy after 10 s; leaving local storage open (nothing is lost)");
      return;
    }
    try {
      store.kv.sync();
    } catch (IOException e) {
      log.warn("index sync at close failed: {}", e.getMessage());
    }
    store.kv.close();
    try {
      store.cacheFile.force();
    } catch (IOException e) {
      store.durability.failed("an fsync of the cache file at close", e);
    }
    try {
      store.cacheFile.close();
    } catch (IOException e) {
      log.warn("cache file close failed: {}", e.getMessage());
    }
    store.backing.close();
  }
}
