package io.peerflash.node.engine;

import io.peerflash.node.cache.CacheFile;
import io.peerflash.node.index.KeyValueStorage;
import java.io.IOException;

/**
 * Makes everything this node has written so far durable on its local flash, even on a node running
 * without {@code --sync}: one fsync of the cache file, then one sync of the index log (data before
 * the entries that point to it). A block device's FLUSH, or a write with FUA, asks for this.
 *
 * <p>Concurrent callers share syncs: a caller that arrives while a sync runs waits for the next
 * one, which starts after the running one ends and covers every caller that arrived meanwhile. A
 * sync that starts after a caller's call began covers every write that was complete (acknowledged)
 * when the call began. A failed sync is fatal to acknowledgement ({@link LocalDurability}).
 */
final class LocalSync {
  private final CacheFile cacheFile;
  private final KeyValueStorage kv;
  private final LocalDurability durability;
  private final Object lock = new Object();
  private long requested; // tickets handed out
  private long covered; // every ticket up to this one is covered by a completed sync
  private boolean running;

  LocalSync(CacheFile cacheFile, KeyValueStorage kv, LocalDurability durability) {
    this.cacheFile = cacheFile;
    this.kv = kv;
    this.durability = durability;
  }

  /**
   * Returns once a sync that began after this call did has completed.
   *
   * @throws IOException when a sync failed (the node then acknowledges nothing until a restart)
   */
  void sync() throws IOException {
    long ticket;
    long target;
    synchronized (lock) {
      ticket = ++requested;
      while (true) {
        if (!durability.ok()) {
          throw durability.asIoException();
        }
        if (covered >= ticket) {
          return;
        }
        if (!running) {
          break;
        }
        try {
          lock.wait();
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new IOException("interrupted while waiting for a sync of local flash");
        }
      }
      running = true;
      target = requested;
    }
    try {
      try {
        cacheFile.force();
      } catch (IOException e) {
        durability.failed("an fsync of the cache file (flush)", e);
        throw e;
      }
      try {
        kv.sync();
      } catch (IOException e) {
        durability.failed("a sync of the index log (flush)", e);
        throw e;
      }
      synchronized (lock) {
        covered = Math.max(covered, target);
      }
    } finally {
      synchronized (lock) {
        running = false;
        lock.notifyAll();
      }
    }
  }
}
