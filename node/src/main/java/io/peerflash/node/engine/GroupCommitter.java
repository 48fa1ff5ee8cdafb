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
 * Makes index batches durable after the cache-file data they point to.
 *
 * <p>Without sync, a batch goes straight to the index log (in the OS page cache, like the data it
 * points to): it survives a process crash. With sync, concurrent writers share one fsync of the
 * cache file followed by one synced index write: the first waiting writer becomes the leader and
 * commits everything queued, the others wait for it (no committer thread, so no hand-off).
 */
final class GroupCommitter {
  private static final class Pending {
    final Batch batch;
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
    Pending mine = new Pending(batch);
    lock.lock();
    try {
      queue.add(mine);
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
          for (Pending p : group) {
            merged.append(p.batch);
          }
          long started = System.nanoTime();
          forceCacheFile();
          kv.write(merged, true);
          observer.synced(System.nanoTime() - started);
          groups.increment();
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
