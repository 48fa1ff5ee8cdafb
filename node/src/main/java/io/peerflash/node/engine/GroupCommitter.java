package io.peerflash.node.engine;

import io.peerflash.node.cache.CacheFile;
import io.peerflash.node.index.KeyValueStorage;
import io.peerflash.node.index.KeyValueStorage.Batch;
import io.peerflash.replication.fault.FaultPoints;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Makes index batches durable after the cache-file data they point to, and makes everything written
 * so far durable on request (a block device's FLUSH, or a replica asked by its owner): one
 * mechanism of grouped fsyncs for both.
 *
 * <p>Without sync, a batch goes straight to the index log (in the OS page cache, like the data it
 * points to): it survives a process crash. With sync, concurrent writers share one fsync of the
 * cache file followed by one synced index write: the first waiting writer becomes the leader and
 * commits everything queued, the others wait for it (no committer thread, so no hand-off).
 *
 * <p>{@link #sync} joins the same queue with nothing to write, with or without sync: its group
 * fsyncs the cache file, then writes the group's batches synced or, when there are none, syncs the
 * index log (data before the entries that point to it). A group starts only after the one running
 * ends and takes everything queued by then, so a caller that arrives during a group waits for the
 * next one, which begins after the call did: it covers every write completed (acknowledged) before
 * the call, and concurrent callers share one fsync.
 */
final class GroupCommitter {
  private static final class Pending {
    final Batch batch; // null for a sync request
    boolean done;
    IOException error;

    Pending(Batch batch) {
      this.batch = batch;
    }
  }

  private final KeyValueStorage kv;
  private final CacheFile cacheFile;
  private final boolean sync;
  private final LocalDurability durability;
  volatile FaultPoints faults = new FaultPoints();
  private final ReentrantLock lock = new ReentrantLock();
  private final Condition committed = lock.newCondition();
  private List<Pending> queue = new ArrayList<>();
  private boolean leaderActive;
  final LongAdder groups = new LongAdder();
  volatile EngineObserver observer = EngineObserver.NONE;
  final LongAdder batches = new LongAdder();

  /** Calls of {@link #sync} queued (counted once queued, so a test can tell they wait). */
  final LongAdder syncRequests = new LongAdder();

  /** Groups that fsynced the cache file: synced commits and sync requests together. */
  final LongAdder fsyncs = new LongAdder();

  /**
   * @param kv the index, checked by {@code durability} (a failed synced write is recorded there)
   */
  GroupCommitter(
      KeyValueStorage kv, CacheFile cacheFile, boolean sync, LocalDurability durability) {
    this.kv = kv;
    this.cacheFile = cacheFile;
    this.sync = sync;
    this.durability = durability;
  }

  /**
   * The fsync of the cache file before a group's index write. A failure is fatal ({@link
   * LocalDurability}): the writes it was to cover, and any written meanwhile, may be lost while a
   * retry would succeed.
   */
  private void forceCacheFile() throws IOException {
    try {
      try {
        faults.hit(FaultPoints.LOCAL_FSYNC, "cache.slots");
      } catch (FaultPoints.Dropped e) {
        throw new IOException("fsync failed: " + e.getMessage() + " (injected)");
      }
      cacheFile.force();
    } catch (IOException e) {
      durability.failed("an fsync of the cache file", e);
      throw e;
    }
  }

  void commit(Batch batch) throws IOException {
    if (!durability.ok()) {
      // Not even a write that needs no fsync: a node that lost track of what is on disk
      // acknowledges nothing (its volumes fail over).
      throw durability.asIoException();
    }
    batches.increment();
    if (!sync) {
      groups.increment();
      kv.write(batch, false);
      return;
    }
    inGroup(new Pending(batch));
  }

  /**
   * Returns once a group that began after this call did has fsynced the cache file and synced the
   * index, also without sync: everything committed before the call is then on non-volatile flash.
   *
   * @throws IOException when the group failed (the node then acknowledges nothing until a restart)
   */
  void sync() throws IOException {
    if (!durability.ok()) {
      throw durability.asIoException();
    }
    inGroup(new Pending(null));
  }

  /** Queues {@code mine} and returns once a group committed it, leading one if none runs. */
  private void inGroup(Pending mine) throws IOException {
    lock.lock();
    try {
      queue.add(mine);
      if (mine.batch == null) {
        syncRequests.increment();
      }
      while (!mine.done) {
        if (leaderActive) {
          committed.awaitUninterruptibly();
          continue;
        }
        leaderActive = true;
        List<Pending> group = queue;
        queue = new ArrayList<>();
        lock.unlock();
        IOException failure = null;
        try {
          Batch merged = new Batch();
          boolean commits = false;
          for (Pending p : group) {
            if (p.batch != null) {
              merged.append(p.batch);
              commits = true;
            }
          }
          long started = System.nanoTime();
          forceCacheFile();
          if (merged.size() > 0) {
            kv.write(merged, true);
          } else {
            // Only sync requests: the index log written so far (without sync) goes to disk.
            kv.sync();
          }
          observer.synced(System.nanoTime() - started);
          if (commits) {
            groups.increment();
          }
          fsyncs.increment();
        } catch (IOException e) {
          failure = e;
        } catch (RuntimeException | Error e) {
          // Never leave the group without a leader: every later writer would wait forever.
          failure = new IOException("group commit failed: " + e, e);
        } finally {
          lock.lock();
        }
        for (Pending p : group) {
          p.done = true;
          p.error = failure;
        }
        leaderActive = false;
        committed.signalAll();
      }
    } finally {
      lock.unlock();
    }
    if (mine.error != null) {
      throw mine.error;
    }
  }
}
