package io.peerflash.node.cache;

import io.peerflash.util.Time;
import java.util.ArrayDeque;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Hands out cache slots to writers: first come first served once space runs short, and throttled
 * smoothly while the reclaimable space (free or clean slots) is below a reserve.
 *
 * <p>While nobody waits and the reserve is intact, a reservation takes free slots at once,
 * reclaiming clean ones if needed. Otherwise the writer queues, and only the head of the queue
 * reclaims and takes slots. So no writer waits for more space than the writers ahead of it need: a
 * large write is not starved by a stream of small ones, and a small one is not passed over batch
 * after batch by writers that happened to wake first. {@link #tryReserve} (callers that must not
 * wait) takes nothing while anyone is queued.
 *
 * <p>The throttle: below the reserve, the head pauses before it takes its slots so that writers are
 * admitted at {@code 2 * left / reserve} times the rate at which space came back lately (destaged,
 * released or overwritten blocks), at most {@link #MAX_THROTTLE_NANOS} per write. At half the
 * reserve that is the destage rate itself, so the space left settles there and the other half
 * absorbs the lumps in which space comes back (a destage batch ends with a shared-storage fsync
 * that can take 100 ms). Without it every writer runs at full speed until the cache is full, and
 * then each waits for a whole destage batch: the same total wait (Little's law: queue depth over
 * destage rate) lands on a few writes instead of being spread over all of them.
 */
public final class SlotReservations {
  /** The space a reservation can draw on besides free slots. */
  public interface SpaceSource {
    /** Free plus clean (evictable) slots. */
    long reclaimableSlots();

    /** Tries to free {@code missing} more slots now, without blocking; may free fewer. */
    void reclaim(int missing);
  }

  /** No write is held back longer than this by the throttle (it may still wait for space). */
  public static final long MAX_THROTTLE_NANOS = TimeUnit.MILLISECONDS.toNanos(50);

  // The head rechecks at least this often: a reclaim can fail for a moment (a block it wanted was
  // locked) without anyone freeing space afterwards.
  private static final long MAX_SLICE_NANOS = TimeUnit.MILLISECONDS.toNanos(20);

  // The reclaim rate is sampled over windows this long and smoothed (about a second's memory).
  private static final long RATE_WINDOW_NANOS = TimeUnit.MILLISECONDS.toNanos(250);
  private static final double RATE_SMOOTHING = 0.25;

  private final SlotAllocator slots;
  private final SpaceSource source;
  private final long reserveSlots;
  // Space coming back, for the rate the throttle admits writers at.
  private final LongAdder reclaimedTotal = new LongAdder();
  private final Object rateLock = new Object();
  private volatile long rateWindowStartNanos;
  private long rateWindowStartCount; // guarded by rateLock
  private double reclaimedPerSec = -1; // guarded by rateLock; < 0: no sample yet
  private long lastAdmitNanos; // guarded by lock
  private final Time time;
  private final Runnable onQueued;
  private final ReentrantLock lock = new ReentrantLock();
  private final ArrayDeque<Condition> queue = new ArrayDeque<>();
  private volatile int queued;
  // Bumped under the lock whenever space is freed while someone waits: the head compares it across
  // its unlocked reclaim attempt, so a free during that attempt is never missed.
  private long freedGeneration;

  /**
   * @param reserveSlots below this many reclaimable slots writes are throttled (0: never)
   * @param onQueued runs (on the writer's thread, no lock held) each time a writer starts waiting,
   *     e.g. to wake the destager
   */
  public SlotReservations(
      SlotAllocator slots, SpaceSource source, long reserveSlots, Time time, Runnable onQueued) {
    this.slots = slots;
    this.source = source;
    this.reserveSlots = reserveSlots;
    this.time = time;
    this.onQueued = onQueued;
    this.rateWindowStartNanos = time.nanoTime();
  }

  /** Takes {@code n} slots now, or returns null (no space, or writers are queued for space). */
  public int[] tryReserve(int n) {
    int[] out = new int[n];
    if (n == 0) {
      return out;
    }
    return queued == 0 && takeNow(n, out) ? out : null;
  }

  /**
   * Takes {@code n} slots for a write if it need not wait, or returns null: no space, writers are
   * queued, or the throttle would pause it. A write that gets null goes to {@link #reserve}.
   */
  public int[] reserveNow(int n) {
    int[] out = new int[n];
    if (n == 0) {
      return out;
    }
    return queued == 0 && !throttled(n) && takeNow(n, out) ? out : null;
  }

  /**
   * Takes {@code n} slots, waiting in line behind earlier writers for at most {@code timeoutNanos}.
   *
   * @return the slots, or null when the time ran out first
   */
  public int[] reserve(int n, long timeoutNanos) throws InterruptedException {
    int[] now = reserveNow(n);
    if (now != null) {
      return now;
    }
    int[] out = new int[n];
    long deadlineNanos = time.nanoTime() + timeoutNanos;
    Condition turn = lock.newCondition();
    lock.lock();
    try {
      queue.addLast(turn);
      queued = queue.size();
    } finally {
      lock.unlock();
    }
    onQueued.run();
    long admitAtNanos = Long.MIN_VALUE;
    lock.lock();
    try {
      while (true) {
        if (queue.peekFirst() == turn && admitAtNanos == Long.MIN_VALUE) {
          admitAtNanos = time.nanoTime() + throttleNanos(n);
        }
        if (queue.peekFirst() == turn && time.nanoTime() >= admitAtNanos) {
          long seen = freedGeneration;
          boolean taken;
          lock.unlock();
          try {
            taken = takeNow(n, out);
          } finally {
            lock.lock();
          }
          if (taken) {
            lastAdmitNanos = time.nanoTime();
            return out;
          }
          if (freedGeneration != seen) {
            continue;
          }
        }
        long leftNanos = deadlineNanos - time.nanoTime();
        if (leftNanos <= 0) {
          return null;
        }
        long sliceNanos = Math.min(leftNanos, MAX_SLICE_NANOS);
        long pauseLeftNanos = admitAtNanos == Long.MIN_VALUE ? 0 : admitAtNanos - time.nanoTime();
        if (pauseLeftNanos > 0) {
          // Still pausing: wake when the pause ends. Past it (waiting for space), wait for a
          // signal or the slice, never spin.
          sliceNanos = Math.min(sliceNanos, pauseLeftNanos);
        }
        turn.awaitNanos(sliceNanos);
      }
    } finally {
      boolean wasHead = queue.peekFirst() == turn;
      queue.remove(turn);
      queued = queue.size();
      if (wasHead) {
        signalHead();
      }
      lock.unlock();
    }
  }

  /** Tells the queue that slots were freed or became reclaimable. Cheap while nobody waits. */
  public void spaceFreed() {
    if (queued == 0) {
      return;
    }
    lock.lock();
    try {
      freedGeneration++;
      signalHead();
    } finally {
      lock.unlock();
    }
  }

  /** How many writers wait for space now. */
  public int waiting() {
    return queued;
  }

  /** Whether taking {@code n} slots now would cut into the reserve. */
  private boolean throttled(int n) {
    return reserveSlots > 0 && source.reclaimableSlots() - n < reserveSlots;
  }

  /** Counts {@code n} slots that became reclaimable (destaged, or a dirty version dropped). */
  public void reclaimed(int n) {
    reclaimedTotal.add(n);
    long now = time.nanoTime();
    if (now - rateWindowStartNanos >= RATE_WINDOW_NANOS) {
      sampleRate(now);
    }
  }

  /** Slots per second that became reclaimable lately; negative before the first sample. */
  double reclaimedPerSec() {
    sampleRate(time.nanoTime());
    synchronized (rateLock) {
      return reclaimedPerSec;
    }
  }

  private void sampleRate(long now) {
    synchronized (rateLock) {
      long elapsed = now - rateWindowStartNanos;
      if (elapsed < RATE_WINDOW_NANOS) {
        return;
      }
      long count = reclaimedTotal.sum();
      double rate = (count - rateWindowStartCount) * 1e9 / elapsed;
      reclaimedPerSec =
          reclaimedPerSec < 0 ? rate : reclaimedPerSec + RATE_SMOOTHING * (rate - reclaimedPerSec);
      rateWindowStartCount = count;
      rateWindowStartNanos = now;
    }
  }

  /**
   * The throttle's pause for a write of {@code n} blocks now, counted from the previous admission;
   * 0 while the reserve is intact.
   */
  long throttleNanos(int n) {
    if (!throttled(n)) {
      return 0;
    }
    long left = source.reclaimableSlots() - n;
    double admitPerSec = Math.max(0, reclaimedPerSec()) * 2 * Math.max(0, left) / reserveSlots;
    if (admitPerSec <= 0) {
      return MAX_THROTTLE_NANOS;
    }
    long sinceLastNanos;
    lock.lock();
    try {
      sinceLastNanos = time.nanoTime() - lastAdmitNanos;
    } finally {
      lock.unlock();
    }
    double pause = n * 1e9 / admitPerSec - sinceLastNanos;
    return (long) Math.max(0, Math.min(pause, MAX_THROTTLE_NANOS));
  }

  private void signalHead() {
    Condition head = queue.peekFirst();
    if (head != null) {
      head.signal();
    }
  }

  private boolean takeNow(int n, int[] out) {
    if (slots.tryAllocate(n, out)) {
      return true;
    }
    int missing = n - slots.freeSlots();
    if (missing > 0) {
      source.reclaim(missing);
    }
    return slots.tryAllocate(n, out);
  }
}
