package io.peerflash.node.engine;

import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.index.BlockEntry;
import io.peerflash.node.index.KeyValueStorage.Batch;
import io.peerflash.node.index.VolumeInfo;
import io.peerflash.node.storage.BackingStore;
import io.peerflash.replication.fault.FaultPoints;
import io.peerflash.util.Time;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Writes dirty blocks to shared storage, one thread for the node, one volume batch at a time; the
 * batch's requests go out {@code destage-io-depth} at a time.
 *
 * <p>Per volume, blocks go oldest sequence first; a batch (up to {@code destage-batch} bytes) is
 * sorted by block so adjacent blocks become one write, then shared storage is fsynced, and only
 * then are the blocks marked clean (if no newer version arrived meanwhile). Overwrites coalesce by
 * construction: only a block's newest version is dirty.
 *
 * <p>Which volume next: a pending Flush first, then (above the high watermark, or while writers
 * wait for space) the volume with the oldest dirty data, then volumes whose oldest dirty block is
 * older than {@code max-dirty-age-ms}. Below the high watermark batches are paced to {@code
 * destage-background-rate} so foreground I/O keeps the disk.
 *
 * <p>Failures: a failed batch puts its volume into exponential backoff and splits later batches
 * into single blocks, so one bad block gets its own backoff and never holds back the rest. Other
 * volumes are not affected.
 */
final class Destager implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(Destager.class);
  private static final int BLOCK = BlockStore.BLOCK;
  private static final long IDLE_WAIT_MS = 100;
  private static final long NOTHING_TO_DO_BACKOFF_MS = 20;

  private final DestageSource source;
  private final BackingStore storage;
  private final Time time;
  private volatile ReplicationPort replication = ReplicationPort.NONE;
  private final EngineConfig config;
  private final DestageHealth.Backoff backoff;
  private final Thread thread;
  private final ReentrantLock lock = new ReentrantLock();
  private final Condition work = lock.newCondition();
  private final Condition progress = lock.newCondition();
  private volatile boolean closed;
  private volatile boolean flatOut;
  // Steps finished: a test waits for one that began after a change instead of sleeping.
  private final AtomicLong rounds = new AtomicLong();
  private int roundRobin;
  // Set by choose(): when the first volume it skipped for backoff may be tried again.
  private long earliestRetryAtMs = Long.MAX_VALUE;

  private final int batchBlocks;
  private final long[] seqs;
  private final long[] blocks;
  private final boolean[] isZero;
  private final boolean[] skip;
  private final ByteBuffer data;
  // Threads that write a batch's runs in parallel; null: the destager thread writes them itself.
  private final ExecutorService io;

  /**
   * @param source the cache's dirty blocks and the commit that marks them clean
   * @param storage shared storage, where they go
   * @param time the clock dirty age and backoff are measured on
   */
  Destager(DestageSource source, BackingStore storage, EngineConfig config, Time time) {
    this.source = source;
    this.storage = storage;
    this.time = time;
    this.config = config;
    this.backoff =
        new DestageHealth.Backoff(
            config.storageRetryInitialBackoffMs(), config.storageRetryMaxBackoffMs());
    this.batchBlocks = config.destageBatchBytes() / BLOCK;
    this.seqs = new long[batchBlocks];
    this.blocks = new long[batchBlocks];
    this.isZero = new boolean[batchBlocks];
    this.skip = new boolean[batchBlocks];
    this.data = BackingStore.allocateAligned(batchBlocks * BLOCK);
    this.thread = new Thread(this::run, "peerflash-destager");
    this.thread.setDaemon(true);
    this.io = config.destageIoDepth() > 1 ? ioThreads(config.destageIoDepth()) : null;
  }

  private static ExecutorService ioThreads(int n) {
    AtomicInteger count = new AtomicInteger();
    return Executors.newFixedThreadPool(
        n,
        r -> {
          Thread t = new Thread(r, "peerflash-destage-io-" + count.incrementAndGet());
          t.setDaemon(true);
          return t;
        });
  }

  /** Where releases of destaged blocks go: the volume's replicas (before {@link #start}). */
  void setReplicationPort(ReplicationPort port) {
    this.replication = port;
  }

  void start() {
    thread.start();
  }

  /** How many steps the destager thread has finished. */
  long rounds() {
    return rounds.get();
  }

  void wake() {
    lock.lock();
    try {
      work.signalAll();
    } finally {
      lock.unlock();
    }
  }

  /** Called after each write-back write: cheap unless the high watermark was just crossed. */
  void noteDirty() {
    if (!flatOut && source.dirtyFraction() >= config.destageHighWatermark()) {
      wake();
    }
  }

  /**
   * Waits until no dirty block of {@code v} with sequence at most {@code targetSeq} remains.
   * Bounded: fails with UNAVAILABLE when shared storage has failed without a success for {@code
   * flush-storage-failure-timeout-ms}, and with DATA_LOSS when corrupt dirty blocks remain.
   */
  void flush(CachedVolume v, long targetSeq) throws CacheException {
    flush(v, targetSeq, Long.MAX_VALUE);
  }

  /**
   * Like {@link #flush(CachedVolume, long)}, and fails with DEADLINE_EXCEEDED once the engine's
   * clock reaches {@code deadlineMs} (destage goes on in the background).
   */
  void flush(CachedVolume v, long targetSeq, long deadlineMs) throws CacheException {
    v.flushTargetSeq.accumulateAndGet(targetSeq, Math::max);
    long flushStartMs = time.nowMs();
    v.destage.retryNow();
    wake();
    while (v.dirty.firstSeqExcluding(v.corruptBlocks::contains, targetSeq) <= targetSeq) {
      if (closed) {
        throw new CacheException(Reason.UNAVAILABLE, "node is shutting down; flush interrupted");
      }
      if (v.deleted) {
        throw CacheException.notFound(v.name());
      }
      long now = time.nowMs();
      // Give up only on a failure seen after this flush began (storage may have healed).
      if (v.destage.lastErrorMs() >= flushStartMs
          && v.destage.failing(now, config.flushStorageFailureTimeoutMs())) {
        throw new CacheException(
            Reason.UNAVAILABLE,
            String.format(
                "flush of volume '%s' gave up: shared storage has failed for %d ms"
                    + " (flush-storage-failure-timeout-ms %d): %s; %d dirty blocks remain and"
                    + " destage keeps retrying",
                v.name(),
                now - v.destage.failingSinceMs(),
                config.flushStorageFailureTimeoutMs(),
                v.destage.lastError(),
                v.dirty.size()));
      }
      if (now >= deadlineMs) {
        throw new CacheException(
            Reason.DEADLINE_EXCEEDED,
            String.format(
                "destage of volume '%s' did not finish in time; %d dirty blocks remain",
                v.name(), v.dirty.size()));
      }
      lock.lock();
      try {
        progress.await(50, TimeUnit.MILLISECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new CacheException(Reason.UNAVAILABLE, "flush interrupted");
      } finally {
        lock.unlock();
      }
    }
    if (!v.corruptBlocks.isEmpty()) {
      throw new CacheException(
          Reason.DATA_LOSS,
          "volume '"
              + v.name()
              + "' has "
              + v.corruptBlocks.size()
              + " dirty blocks that failed their checksum and cannot be destaged; every other"
              + " write is on shared storage");
    }
  }

  private void run() {
    while (!closed) {
      try {
        long pauseMs = step();
        rounds.incrementAndGet();
        if (pauseMs > 0) {
          awaitWork(pauseMs);
        }
      } catch (RuntimeException | Error e) {
        log.error("destager step failed; continuing", e);
        awaitWork(IDLE_WAIT_MS);
      }
    }
  }

  private void awaitWork(long ms) {
    lock.lock();
    try {
      if (!closed) {
        work.await(ms, TimeUnit.MILLISECONDS);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } finally {
      lock.unlock();
    }
  }

  /**
   * Destages one batch of the most pressing volume.
   *
   * @return how long to pause before the next step (0: go on at once)
   */
  long step() {
    double dirty = source.dirtyFraction();
    if (dirty >= config.destageHighWatermark() || source.writersWaitForSpace()) {
      flatOut = true;
    } else if (dirty <= config.destageLowWatermark()) {
      flatOut = false;
    }
    long now = time.nowMs();
    CachedVolume v = choose(now);
    if (v == null) {
      // A volume backing off is due again sooner than the idle wait: sleeping past its retry
      // time let a failing block, due again at every wake-up, starve the volume's other blocks.
      return Math.max(1, Math.min(IDLE_WAIT_MS, earliestRetryAtMs - now));
    }
    boolean paced = !flatOut && !flushPending(v);
    long bytes = destageBatch(v, now);
    signalProgress();
    if (bytes == 0) {
      // Nothing destageable right now (blocks corrupt or backing off): look at others first.
      v.destage.pause(now + NOTHING_TO_DO_BACKOFF_MS);
    }
    if (bytes > 0 && paced) {
      return Math.max(1, bytes * 1000 / Math.max(1, config.destageBackgroundRateBytesPerSec()));
    }
    return 0;
  }

  private boolean flushPending(CachedVolume v) {
    long target = v.flushTargetSeq.get();
    return target >= 0 && v.dirty.firstSeqExcluding(v.corruptBlocks::contains, target) <= target;
  }

  private CachedVolume choose(long now) {
    List<CachedVolume> all = source.volumes();
    int n = all.size();
    if (n == 0) {
      return null;
    }
    roundRobin = (roundRobin + 1) % n;
    CachedVolume oldest = null;
    long oldestWrittenAt = Long.MAX_VALUE;
    CachedVolume aged = null;
    earliestRetryAtMs = Long.MAX_VALUE;
    for (int k = 0; k < n; k++) {
      CachedVolume v = all.get((roundRobin + k) % n);
      if (v.deleted || v.info.role() != VolumeInfo.Role.OWNER || v.dirty.size() == 0) {
        continue;
      }
      if (v.destage.backingOff(now)) {
        earliestRetryAtMs = Math.min(earliestRetryAtMs, v.destage.retryAtMs());
        continue;
      }
      if (flushPending(v)) {
        return v;
      }
      Map.Entry<Long, Long> first = v.dirty.first();
      BlockEntry e = first == null ? null : v.blocks.get(first.getValue());
      long writtenAt = e == null ? now : e.writtenAtMs();
      if (writtenAt < oldestWrittenAt) {
        oldestWrittenAt = writtenAt;
        oldest = v;
      }
      if (aged == null && now - writtenAt >= config.maxDirtyAgeMs()) {
        aged = v;
      }
    }
    return flatOut ? oldest : aged;
  }

  /**
   * @return bytes written to shared storage, 0 if there was nothing to do, -1 on failure
   */
  long destageBatch(CachedVolume v, long now) {
    // tryLock barges past a queued policy change or delete: they wait for writers that may in
    // turn wait for this destager to free space.
    if (!v.gate.readLock().tryLock()) {
      return 0;
    }
    try {
      if (v.deleted || v.info.role() != VolumeInfo.Role.OWNER) {
        return 0; // a replica never destages another node's data
      }
      if (!source.mayDestage(v)) {
        return 0; // no valid lease (another node may own the volume now), or handed over
      }
      int limit = v.destage.batchLimit(batchBlocks);
      long[] s = new long[limit];
      long[] b = new long[limit];
      int n =
          v.dirty.oldestWithNeighbours(
              s,
              b,
              x ->
                  v.corruptBlocks.contains(x)
                      || v.destage.blockBackingOff(x, now)
                      || v.copiesInFlight(x),
              x -> {
                BlockEntry e = v.blocks.get(x);
                return e != null && e.dirty() ? e.seq() : -1;
              });
      if (n == 0) {
        return 0;
      }
      // Oldest first with their dirty neighbours; block order is the write order, so runs merge.
      Integer[] order = new Integer[n];
      for (int i = 0; i < n; i++) {
        order[i] = i;
      }
      Arrays.sort(order, (x, y) -> Long.compare(b[x], b[y]));
      for (int i = 0; i < n; i++) {
        blocks[i] = b[order[i]];
        seqs[i] = s[order[i]];
      }
      int live = readBatch(v, n);
      if (live == 0) {
        return 0;
      }
      long bytes;
      long started = System.nanoTime();
      try {
        // Checked again right before touching shared storage: the lease may have run out while
        // the batch was read (a long pause).
        if (!source.mayDestage(v)) {
          return 0;
        }
        bytes = writeBatch(v, n);
        storage.sync(v.name());
        source.faults().hit(FaultPoints.DESTAGE_AFTER_STORAGE_WRITE, v.name());
      } catch (IOException e) {
        onFailure(v, n, e, now);
        return -1;
      }
      long nanos = System.nanoTime() - started;
      v.destage.succeeded(blocks, skip, n);
      markClean(v, n);
      source.destaged(v, bytes, nanos);
      return bytes;
    } catch (CacheException e) {
      // Local flash or index trouble counts like a storage failure: backoff, status, and a
      // bounded Flush.
      recordFailure(v, e.getMessage(), now);
      logFailure(v, now);
      return -1;
    } finally {
      v.gate.readLock().unlock();
    }
  }

  /** Copies each block's current dirty version into {@code data} (slot i holds block i). */
  private int readBatch(CachedVolume v, int n) throws CacheException {
    int live = 0;
    for (int i = 0; i < n; i++) {
      skip[i] = true;
      try (BlockLocks.Held h = v.locks.lockRange(blocks[i], 1, false)) {
        BlockEntry e = v.blocks.get(blocks[i]);
        if (e == null || e.seq() != seqs[i] || !e.dirty()) {
          continue; // superseded or trimmed since it was picked
        }
        isZero[i] = e.isZero();
        if (!isZero[i]) {
          ByteBuffer dst = data.duplicate().position(i * BLOCK).limit((i + 1) * BLOCK);
          try {
            source.readSlot(e.slot(), dst);
          } catch (IOException ex) {
            throw CacheException.unavailable("local flash read failed", ex);
          }
          ByteBuffer check = data.duplicate().position(i * BLOCK).limit((i + 1) * BLOCK);
          if (BlockStore.crc(check) != e.crc()) {
            corrupt(v, blocks[i]);
            continue;
          }
        }
        skip[i] = false;
        live++;
      }
    }
    return live;
  }

  private void corrupt(CachedVolume v, long block) {
    source.checksumFailed();
    log.error(
        "volume {} block {}: dirty data failed its checksum; not destaging it", v.name(), block);
    // It stays dirty (it is acknowledged data, and a later write may replace it); Flush and the
    // destager skip it, status reports it.
    v.corruptBlocks.add(block);
  }

  /**
   * Writes runs of adjacent blocks with one request each, up to {@code destage-io-depth} at once.
   * Waits for all of them; the first failure fails the batch (nothing of it is marked clean).
   */
  private long writeBatch(CachedVolume v, int n) throws IOException {
    List<Callable<Void>> runs = new ArrayList<>();
    long bytes = 0;
    int i = 0;
    while (i < n) {
      if (skip[i]) {
        i++;
        continue;
      }
      int j = i + 1;
      while (j < n && !skip[j] && blocks[j] == blocks[j - 1] + 1 && isZero[j] == isZero[i]) {
        j++;
      }
      long offset = blocks[i] * BLOCK;
      int len = (j - i) * BLOCK;
      boolean zeros = isZero[i];
      ByteBuffer src = zeros ? null : data.duplicate().position(i * BLOCK).limit(j * BLOCK);
      runs.add(
          () -> {
            writeRun(v, offset, len, src);
            return null;
          });
      bytes += len;
      i = j;
    }
    if (io == null || runs.size() == 1) {
      for (Callable<Void> run : runs) {
        call(run);
      }
      return bytes;
    }
    List<Future<Void>> done;
    try {
      done = io.invokeAll(runs);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("destage interrupted", e);
    }
    IOException failure = null;
    for (Future<Void> f : done) {
      try {
        f.get();
      } catch (ExecutionException e) {
        if (failure == null) {
          failure = asIoException(e.getCause());
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IOException("destage interrupted", e);
      }
    }
    if (failure != null) {
      throw failure;
    }
    return bytes;
  }

  /** One run: the lease and the fault point are checked right before its request. */
  private void writeRun(CachedVolume v, long offset, int len, ByteBuffer src) throws IOException {
    if (!source.mayDestage(v)) {
      throw new IOException("cluster lease expired during destage; stopping before storage");
    }
    try {
      source.faults().hit(FaultPoints.DESTAGE_STORAGE_WRITE, v.name());
    } catch (FaultPoints.Dropped e) {
      throw new IOException("shared storage write failed: " + e.getMessage());
    }
    if (src == null) {
      storage.writeZeros(v.name(), offset, len);
    } else {
      storage.write(v.name(), offset, src);
    }
  }

  private static void call(Callable<Void> run) throws IOException {
    try {
      run.call();
    } catch (Exception e) {
      throw asIoException(e);
    }
  }

  private static IOException asIoException(Throwable t) {
    if (t instanceof IOException e) {
      return e;
    }
    if (t instanceof RuntimeException e) {
      throw e;
    }
    if (t instanceof Error e) {
      throw e;
    }
    return new IOException(t);
  }

  private void markClean(CachedVolume v, int n) throws CacheException {
    long[] live = new long[n];
    int m = 0;
    for (int i = 0; i < n; i++) {
      if (!skip[i]) {
        live[m++] = blocks[i];
      }
    }
    try (BlockLocks.Held h = v.locks.lockBlocks(live, m, true)) {
      Batch batch = new Batch();
      for (int i = 0; i < n; i++) {
        if (!skip[i]) {
          source.markDestaged(v, blocks[i], seqs[i], batch);
        }
      }
      try {
        source.commitDestaged(batch);
        long[] cleanBlocks = new long[m];
        long[] cleanSeqs = new long[m];
        int k = 0;
        for (int i = 0; i < n; i++) {
          if (!skip[i]) {
            cleanBlocks[k] = blocks[i];
            cleanSeqs[k++] = seqs[i];
          }
        }
        replication.released(v.info, cleanBlocks, cleanSeqs);
      } catch (IOException e) {
        // Memory says clean, the index still says dirty: at worst the blocks are destaged again
        // after a restart. Nothing is lost.
        throw CacheException.unavailable("index update after destage failed", e);
      }
    }
  }

  /** A batch failed on shared storage: back off, and isolate blocks so a bad one stands alone. */
  private void onFailure(CachedVolume v, int n, IOException e, long now) {
    recordFailure(v, e.getMessage() == null ? e.toString() : e.getMessage(), now);
    if (n > 1) {
      v.destage.isolateNext(n);
      logFailure(v, now);
    } else {
      int failures = v.destage.blockFailed(blocks[0], now, backoff);
      log.warn(
          "destage of volume {} block {} failed ({} times in a row), retrying it in {} ms: {}",
          v.name(),
          blocks[0],
          failures,
          backoff.afterFailures(failures),
          v.destage.lastError());
    }
  }

  private void recordFailure(CachedVolume v, String error, long now) {
    v.destage.failed(error, now, backoff);
  }

  private void logFailure(CachedVolume v, long now) {
    log.warn(
        "destage of volume {} failed, retrying in {} ms: {}",
        v.name(),
        v.destage.retryAtMs() - now,
        v.destage.lastError());
  }

  private void signalProgress() {
    lock.lock();
    try {
      progress.signalAll();
    } finally {
      lock.unlock();
    }
  }

  @Override
  public void close() {
    stop();
  }

  /**
   * Stops the thread.
   *
   * @return false if it is still running (stuck in I/O): local storage must then stay open
   */
  boolean stop() {
    closed = true;
    wake();
    signalProgress();
    try {
      thread.join(TimeUnit.SECONDS.toMillis(10));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    if (thread.isAlive()) {
      return false;
    }
    if (io != null) {
      // No interrupts: an interrupted FileChannel write closes the file for everyone.
      io.shutdown();
      try {
        return io.awaitTermination(10, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return false;
      }
    }
    return true;
  }
}
