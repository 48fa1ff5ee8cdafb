package io.peerflash.util;

import java.util.concurrent.TimeUnit;

/**
 * The clock every time-based decision reads (leases, liveness, dirty age, backoff, backpressure
 * deadlines), so tests can drive time instead of sleeping. Lease arithmetic uses only {@link
 * #nanoTime()}, which must be monotonic.
 */
public interface Time {
  long nowMs();

  long nanoTime();

  void sleepMs(long ms) throws InterruptedException;

  Time SYSTEM =
      new Time() {
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
      };
}
