package io.peerflash.node.engine;

import io.peerflash.node.engine.CacheException.Reason;
import java.util.concurrent.TimeUnit;

/**
 * Handing an owned volume to another node: refuse new I/O, let writes in flight finish, destage
 * everything, then stop destaging for good, so that the next owner may write shared storage.
 */
final class Handover {
  private final BlockStore store;
  private final Destager destager;

  Handover(BlockStore store, Destager destager) {
    this.store = store;
    this.destager = destager;
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
  long prepareHandover(String name, long deadlineMs) throws CacheException {
    CachedVolume v = store.volume(name);
    synchronized (v) {
      store.checkServable(v);
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
  void cancelHandover(String name) throws CacheException {
    cancelHandover(store.volume(name));
  }

  private void cancelHandover(CachedVolume v) {
    synchronized (v) {
      v.handover = CachedVolume.Handover.NONE;
    }
    destager.wake();
  }

  /** Whether the volume is being handed to another node (I/O refused). */
  boolean handingOver(String name) throws CacheException {
    return store.volume(name).handover != CachedVolume.Handover.NONE;
  }

  /** Takes and releases the gate exclusively: everything holding it shared has finished. */
  private void barrier(CachedVolume v, long deadlineMs, String what) throws CacheException {
    long waitMs = Math.max(0, deadlineMs - store.time.nowMs());
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
}
