package io.peerflash.node.cache;

import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.util.Time;
import java.util.BitSet;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class SlotReservationsTest {
  private static final int TOTAL = 64;
  private static final long LONG_WAIT = TimeUnit.SECONDS.toNanos(10);

  private final ExecutorService pool = Executors.newCachedThreadPool();
  private final AtomicInteger queuedEvents = new AtomicInteger();
  // Clean slots the source may "evict" on request (each eviction frees one allocated slot).
  private final AtomicLong clean = new AtomicLong();
  private final AtomicLong dirty = new AtomicLong();
  private SlotAllocator slots;
  // Per thread: every pass of a queued writer's wait loop reads the clock, and the head of the
  // queue asks the source to reclaim when the free slots fall short. A test waits for these to see
  // that a writer looked at the queue again, then asserts what it did not take.
  private final Map<Thread, AtomicInteger> clockReads = new ConcurrentHashMap<>();
  private final Map<Thread, AtomicInteger> reclaims = new ConcurrentHashMap<>();
  private final Time clock =
      new Time() {
        @Override
        public long nowMs() {
          return Time.SYSTEM.nowMs();
        }

        @Override
        public long nanoTime() {
          count(clockReads);
          return Time.SYSTEM.nanoTime();
        }

        @Override
        public void sleepMs(long ms) throws InterruptedException {
          Time.SYSTEM.sleepMs(ms);
        }

        @Override
        public Timer schedule(long delayMs, Runnable task) {
          return Time.SYSTEM.schedule(delayMs, task);
        }
      };

  private static void count(Map<Thread, AtomicInteger> perThread) {
    perThread.computeIfAbsent(Thread.currentThread(), t -> new AtomicInteger()).incrementAndGet();
  }

  private static int countOf(Map<Thread, AtomicInteger> perThread, Thread t) {
    AtomicInteger n = perThread.get(t);
    return n == null ? 0 : n.get();
  }

  /** A writer reserving slots on a pool thread of its own. */
  private final class Writer {
    final Future<int[]> slots;
    volatile Thread thread;

    Writer(SlotReservations r, int n) {
      slots =
          pool.submit(
              () -> {
                thread = Thread.currentThread();
                return r.reserve(n, LONG_WAIT);
              });
    }
  }

  @AfterEach
  void tearDown() {
    pool.shutdownNow();
  }

  /** All slots in use; returns them so the test can free them one by one. */
  private int[] fillAll(SlotAllocator a) {
    int[] all = new int[TOTAL];
    assertThat(a.tryAllocate(TOTAL, all)).isTrue();
    return all;
  }

  private SlotReservations reservations(long reserveSlots) {
    slots = new SlotAllocator(TOTAL, new BitSet());
    SlotReservations.SpaceSource source =
        new SlotReservations.SpaceSource() {
          @Override
          public long reclaimableSlots() {
            return TOTAL - dirty.get();
          }

          @Override
          public void reclaim(int missing) {
            // Frees nothing: these tests free slots explicitly.
            count(reclaims);
          }
        };
    return new SlotReservations(slots, source, reserveSlots, clock, queuedEvents::incrementAndGet);
  }

  private void awaitQueued(SlotReservations r, int n) throws InterruptedException {
    long until = System.nanoTime() + LONG_WAIT;
    while (r.waiting() != n) {
      assertThat(System.nanoTime()).as("queue length %d", n).isLessThan(until);
      Thread.sleep(1);
    }
  }

  private static void awaitUntil(String what, BooleanSupplier condition)
      throws InterruptedException {
    long until = System.nanoTime() + LONG_WAIT;
    while (!condition.getAsBoolean()) {
      assertThat(System.nanoTime()).as(what).isLessThan(until);
      Thread.sleep(1);
    }
  }

  @Test
  void spaceGoesToWaitersInArrivalOrderEvenWhenALaterOneNeedsLess() throws Exception {
    SlotReservations r = reservations(0);
    int[] all = fillAll(slots);
    dirty.set(TOTAL);
    Writer bigWriter = new Writer(r, 4);
    Future<int[]> big = bigWriter.slots;
    awaitQueued(r, 1);
    Writer smallWriter = new Writer(r, 1);
    Future<int[]> small = smallWriter.slots;
    awaitQueued(r, 2);
    assertThat(queuedEvents).hasValue(2);

    // One slot: enough for the later writer, but the earlier one is first in line.
    slots.free(all[0]);
    r.spaceFreed();
    // Both looked again after the free: the head tried to reclaim what it still lacks (twice, so
    // one attempt began after the free), the other went through its wait loop (two clock reads).
    Thread head = bigWriter.thread;
    Thread second = smallWriter.thread;
    int headReclaims = countOf(reclaims, head);
    int secondReads = countOf(clockReads, second);
    awaitUntil(
        "the head tried again", () -> big.isDone() || countOf(reclaims, head) >= headReclaims + 2);
    awaitUntil(
        "the second writer looked again",
        () -> small.isDone() || countOf(clockReads, second) >= secondReads + 2);
    assertThat(small).isNotDone();
    assertThat(big).isNotDone();
    assertThat(r.tryReserve(1))
        .as("a caller that cannot wait takes nothing from the queue")
        .isNull();

    for (int i = 1; i < 4; i++) {
      slots.free(all[i]);
    }
    r.spaceFreed();
    assertThat(big.get(10, TimeUnit.SECONDS)).hasSize(4);
    // Head now, it finds no free slot and tries to reclaim one.
    awaitUntil(
        "the second writer tried as the head",
        () -> small.isDone() || countOf(reclaims, second) >= 1);
    assertThat(small).as("the four free slots all went to the first writer").isNotDone();

    slots.free(all[4]);
    r.spaceFreed();
    assertThat(small.get(10, TimeUnit.SECONDS)).containsExactly(all[4]);
    assertThat(r.waiting()).isZero();
    assertThat(r.tryReserve(1)).as("nobody queued, but no free slot").isNull();
  }

  @Test
  void aWriterThatTimesOutLeavesTheQueueAndTheNextOneGoesOn() throws Exception {
    SlotReservations r = reservations(0);
    int[] all = fillAll(slots);
    dirty.set(TOTAL);
    long t0 = System.nanoTime();
    Future<int[]> first = pool.submit(() -> r.reserve(8, TimeUnit.MILLISECONDS.toNanos(150)));
    awaitQueued(r, 1);
    Future<int[]> second = pool.submit(() -> r.reserve(1, LONG_WAIT));
    awaitQueued(r, 2);
    slots.free(all[0]);
    r.spaceFreed();

    assertThat(first.get(10, TimeUnit.SECONDS)).as("timed out").isNull();
    assertThat(System.nanoTime() - t0).isGreaterThanOrEqualTo(TimeUnit.MILLISECONDS.toNanos(150));
    assertThat(second.get(10, TimeUnit.SECONDS))
        .as("the slot freed while the first writer was head goes to the next")
        .containsExactly(all[0]);
    assertThat(r.waiting()).isZero();
  }

  @Test
  void anInterruptedWriterLeavesTheQueue() throws Exception {
    SlotReservations r = reservations(0);
    fillAll(slots);
    dirty.set(TOTAL);
    Future<int[]> waiting = pool.submit(() -> r.reserve(1, LONG_WAIT));
    awaitQueued(r, 1);
    waiting.cancel(true);
    awaitQueued(r, 0);
  }

  @Test
  void noThrottleWhileTheReserveIsIntact() throws Exception {
    SlotReservations r = reservations(16);
    dirty.set(TOTAL - 16 - 1);
    assertThat(r.throttleNanos(1)).isZero();
    long t0 = System.nanoTime();
    assertThat(r.reserve(1, LONG_WAIT)).hasSize(1);
    assertThat(System.nanoTime() - t0).isLessThan(TimeUnit.MILLISECONDS.toNanos(10));
    assertThat(queuedEvents).hasValue(0);
  }

  @Test
  void belowTheReserveWritersAreAdmittedAtTheRateSpaceComesBack() throws Exception {
    SlotReservations r = reservations(32);
    dirty.set(TOTAL - 16); // half the reserve left: admit at the reclaim rate itself
    // Space comes back at 100 slots/s for a while: the rate estimate converges to it.
    long until = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(1500);
    while (System.nanoTime() < until) {
      r.reclaimed(1);
      Thread.sleep(10);
    }
    assertThat(r.reclaimedPerSec()).isBetween(60.0, 110.0);
    int writes = 10;
    long t0 = System.nanoTime();
    for (int i = 0; i < writes; i++) {
      assertThat(r.reserve(1, LONG_WAIT)).hasSize(1);
    }
    double seconds = (System.nanoTime() - t0) / 1e9;
    // 10 writes of one block at about 100/s: about 0.1 s, not at once.
    assertThat(writes / seconds).isBetween(40.0, 200.0);
    assertThat(queuedEvents).hasValue(writes);
  }

  @Test
  void theLessIsLeftTheSlowerWritersGoAndNothingComingBackHoldsEachWriteTheLongest() {
    SlotReservations r = reservations(32);
    dirty.set(TOTAL - 1);
    assertThat(r.throttleNanos(1))
        .as("no space came back yet: the longest pause")
        .isEqualTo(SlotReservations.MAX_THROTTLE_NANOS);
    dirty.set(TOTAL - 16 - 1);
    long half = r.throttleNanos(1);
    dirty.set(TOTAL - 8 - 1);
    assertThat(r.throttleNanos(1)).isGreaterThanOrEqualTo(half);
  }
}
