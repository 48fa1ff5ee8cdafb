package io.peerflash.security;

import io.peerflash.util.Time;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Wall-clock dates (certificates are judged against the real date) but a monotonic clock that only
 * moves when a test steps it, so reload checks happen exactly when a test says.
 */
final class SteppedClock implements Time {
  private final long startWallMs = System.currentTimeMillis();
  private final AtomicLong steppedNanos = new AtomicLong(1_000_000_000L);

  void stepMs(long ms) {
    steppedNanos.addAndGet(TimeUnit.MILLISECONDS.toNanos(ms));
  }

  /** Steps past the reload check interval of {@link TlsDirectory}. */
  void stepPastReloadInterval() {
    stepMs(TlsDirectory.RELOAD_CHECK_INTERVAL_MS);
  }

  @Override
  public long nowMs() {
    return startWallMs + TimeUnit.NANOSECONDS.toMillis(steppedNanos.get() - 1_000_000_000L);
  }

  @Override
  public long nanoTime() {
    return steppedNanos.get();
  }

  @Override
  public void sleepMs(long ms) {
    stepMs(ms);
  }
}
