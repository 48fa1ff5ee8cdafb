package io.peerflash.util;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.slf4j.LoggerFactory;

/**
 * The clock every time-based decision reads (leases, liveness, dirty age, backoff, backpressure and
 * ack deadlines), and the timer that acts on it, so tests can drive time instead of sleeping. Lease
 * arithmetic uses only {@link #nanoTime()}, which must be monotonic.
 */
public interface Time {
  long nowMs();

  long nanoTime();

  void sleepMs(long ms) throws InterruptedException;

  /**
   * Runs {@code task} once, {@code delayMs} from now by this clock, on the clock's timer thread (a
   * test clock may run it on the thread that moves it). Tasks must be short (complete a future,
   * wake a waiter, hand work to an executor): one thread runs them all.
   */
  Timer schedule(long delayMs, Runnable task);

  /** A scheduled task. */
  interface Timer {
    /** Stops the task if it has not started; harmless after it ran. */
    void cancel();
  }

  /**
   * Completes {@code future} with {@code value} unless it completes within {@code delayMs} by this
   * clock; returns it. Unlike {@link CompletableFuture#completeOnTimeout}, the deadline is this
   * clock's, so a test moves it by moving the clock.
   */
  default <T> CompletableFuture<T> completeOnTimeout(
      CompletableFuture<T> future, T value, long delayMs) {
    if (!future.isDone()) {
      Timer timer = schedule(delayMs, () -> future.complete(value));
      future.whenComplete((r, e) -> timer.cancel());
    }
    return future;
  }

  /**
   * Fails {@code future} with a {@link TimeoutException} unless it completes within {@code delayMs}
   * by this clock; returns it.
   */
  default <T> CompletableFuture<T> orTimeout(CompletableFuture<T> future, long delayMs) {
    if (!future.isDone()) {
      Timer timer =
          schedule(
              delayMs,
              () -> future.completeExceptionally(new TimeoutException("after " + delayMs + " ms")));
      future.whenComplete((r, e) -> timer.cancel());
    }
    return future;
  }

  Time SYSTEM = new SystemTime();

  /** The system clock; its timer is one daemon thread shared by the process. */
  final class SystemTime implements Time {
    private SystemTime() {}

    // Created on first use: a client that never schedules starts no thread.
    private static final class TimerThread {
      static final ScheduledThreadPoolExecutor EXECUTOR = executor();

      private static ScheduledThreadPoolExecutor executor() {
        ScheduledThreadPoolExecutor e =
            new ScheduledThreadPoolExecutor(1, new NamedThreadFactory("peerflash-timer", true));
        // Most deadlines are cancelled long before they are due: do not keep them queued.
        e.setRemoveOnCancelPolicy(true);
        return e;
      }
    }

    @Override
    public long nowMs() {
      return System.currentTimeMillis();
    }

    @Override
    public long nanoTime() {
      return System.nanoTime();
    }

    @Override
    public void sleepMs(long ms) throws InterruptedException {
      TimeUnit.MILLISECONDS.sleep(ms);
    }

    @Override
    public Timer schedule(long delayMs, Runnable task) {
      ScheduledFuture<?> f =
          TimerThread.EXECUTOR.schedule(
              () -> {
                try {
                  task.run();
                } catch (RuntimeException | Error e) {
                  // The executor would keep it in a future nobody reads.
                  LoggerFactory.getLogger(Time.class).error("a scheduled task failed", e);
                }
              },
              Math.max(0, delayMs),
              TimeUnit.MILLISECONDS);
      return () -> f.cancel(false);
    }
  }
}
