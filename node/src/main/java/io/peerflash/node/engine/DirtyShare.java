package io.peerflash.node.engine;

import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.util.Texts;
import io.peerflash.util.Time;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * How much of the cache's space for dirty data one volume may hold ({@code volume-dirty-share}),
 * counting the volume's dirty blocks on this node, its own or copies held for its owner.
 *
 * <p>The rule: a volume may go past its share only while its destage works and no writer of another
 * volume waits for space. So a volume whose shared storage fails stops at its share instead of
 * filling the cache with blocks nobody can destage (every other volume's writes then failed with
 * RESOURCE_EXHAUSTED), and a healthy volume that writes faster than its storage takes in gives way
 * as soon as another volume needs room; alone and healthy it may use the whole cache (the write
 * throttle then paces it).
 *
 * <p>A write held back waits here, outside the queue for free slots (so it holds back no other
 * volume's writers), for its volume's dirty data to shrink or the others to stop waiting, bounded
 * by {@code write-backpressure-timeout-ms}.
 */
final class DirtyShare {
  // Waiters re-check at least this often: whether the others still wait, or the volume's storage
  // still fails, changes without a signal.
  private static final long RECHECK_NANOS = TimeUnit.MILLISECONDS.toNanos(20);

  private final long shareSlots;
  private final double share;
  private final long timeoutMs;
  private final Time time;
  private final AtomicInteger waitingForSpace = new AtomicInteger();
  private final ReentrantLock lock = new ReentrantLock();
  private final Condition changed = lock.newCondition();
  private volatile int waitingAtShare;

  DirtyShare(double share, long totalSlots, long timeoutMs, Time time) {
    this.share = share;
    this.shareSlots = Math.max(1, (long) (share * totalSlots));
    this.timeoutMs = timeoutMs;
    this.time = time;
  }

  long shareSlots() {
    return shareSlots;
  }

  /** Whether {@code v} may take {@code n} more dirty slots now. */
  boolean admits(CachedVolume v, int n) {
    if (n == 0 || v.dirtySlots.get() + n <= shareSlots) {
      return true;
    }
    return !destageFailing(v) && waitingForSpace.get() - v.waitingForSpace.get() <= 0;
  }

  /** Waits until {@link #admits}, or fails with RESOURCE_EXHAUSTED naming the limit. */
  void await(CachedVolume v, int n) throws CacheException {
    if (admits(v, n)) {
      return;
    }
    long deadline = time.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
    lock.lock();
    try {
      waitingAtShare++;
      while (!admits(v, n)) {
        long left = deadline - time.nanoTime();
        if (left <= 0) {
          throw overShare(v, n);
        }
        changed.awaitNanos(Math.min(left, RECHECK_NANOS));
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new CacheException(Reason.UNAVAILABLE, "interrupted while waiting for space");
    } finally {
      waitingAtShare--;
      lock.unlock();
    }
  }

  private CacheException overShare(CachedVolume v, int n) {
    String why =
        destageFailing(v)
            ? "its shared storage is failing (" + v.destage.lastError() + ")"
            : "other volumes wait for space";
    return new CacheException(
        Reason.RESOURCE_EXHAUSTED,
        String.format(
            "volume %s holds %d dirty blocks on this node, its share of the cache is %d"
                + " (volume-dirty-share %s), and %s; a write of %d blocks waited %d ms"
                + " (write-backpressure-timeout-ms) for its destage; other volumes are not"
                + " affected",
            Texts.quote(v.name()), v.dirtySlots.get(), shareSlots, share, why, n, timeoutMs));
  }

  /** A writer of {@code v} starts waiting for free slots (the others' share rule tightens). */
  void enterSpaceWait(CachedVolume v) {
    v.waitingForSpace.incrementAndGet();
    waitingForSpace.incrementAndGet();
  }

  void exitSpaceWait(CachedVolume v) {
    v.waitingForSpace.decrementAndGet();
    waitingForSpace.decrementAndGet();
    signal();
  }

  /** Dirty data of some volume shrank: a writer held at its share may go on. Cheap if none. */
  void signal() {
    if (waitingAtShare == 0) {
      return;
    }
    lock.lock();
    try {
      changed.signalAll();
    } finally {
      lock.unlock();
    }
  }

  private static boolean destageFailing(CachedVolume v) {
    return v.destage.failing();
  }
}
