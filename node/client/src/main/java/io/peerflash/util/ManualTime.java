package io.peerflash.util;

import java.util.concurrent.TimeUnit;

/**
 * A {@link Time} that tests drive: stopped, it moves only by {@link #advanceMs} and {@link
 * #sleepMs}, so a test decides exactly when a deadline, lease or backoff runs out instead of
 * sleeping past it. {@link #nowMs} and {@link #nanoTime} move together, and {@link #nowMs} starts
 * at the real date (certificates are judged against it).
 *
 * <p>{@link #followingSystem()} gives one that runs with the system clock until {@link #freeze}
 * (for code that must first get going in real time); {@link #resume} lets it run again from where
 * it stood. Thread-safe.
 */
public final class ManualTime implements Time {
  private final long startWallMs = System.currentTimeMillis();
  private final long startNanos = System.nanoTime();
  // Guarded by this. Running: nanoTime() is System.nanoTime() + offsetNanos; stopped: stoppedNanos.
  private boolean stopped;
  private long stoppedNanos;
  private long offsetNanos;

  /** A clock stopped at the current date; it moves only when told. */
  public ManualTime() {
    stopped = true;
    stoppedNanos = startNanos;
  }

  private ManualTime(boolean stopped) {
    this.stopped = stopped;
    this.stoppedNanos = startNanos;
  }

  /** A clock that runs with the system clock until {@link #freeze}. */
  public static ManualTime followingSystem() {
    return new ManualTime(false);
  }

  @Override
  public synchronized long nanoTime() {
    return stopped ? stoppedNanos : System.nanoTime() + offsetNanos;
  }

  @Override
  public long nowMs() {
    return startWallMs + TimeUnit.NANOSECONDS.toMillis(nanoTime() - startNanos);
  }

  /** Stopped: advances the clock by {@code ms} and returns at once. Running: sleeps for real. */
  @Override
  public void sleepMs(long ms) throws InterruptedException {
    synchronized (this) {
      if (stopped) {
        stoppedNanos += TimeUnit.MILLISECONDS.toNanos(Math.max(0, ms));
        return;
      }
    }
    Time.SYSTEM.sleepMs(ms);
  }

  /** Moves a stopped clock forward by {@code ms}. */
  public synchronized void advanceMs(long ms) {
    if (!stopped) {
      throw new IllegalStateException("advance a stopped clock only (freeze it first)");
    }
    if (ms < 0) {
      throw new IllegalArgumentException("time does not go back: advanceMs(" + ms + ")");
    }
    stoppedNanos += TimeUnit.MILLISECONDS.toNanos(ms);
  }

  /** Stops the clock where it stands; from now on it moves only when told. */
  public synchronized void freeze() {
    if (!stopped) {
      stoppedNanos = nanoTime();
      stopped = true;
    }
  }

  /** Lets the clock run with the system clock again, from where it stood. */
  public synchronized void resume() {
    if (stopped) {
      offsetNanos = stoppedNanos - System.nanoTime();
      stopped = false;
    }
  }
}
