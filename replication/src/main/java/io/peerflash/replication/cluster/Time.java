package io.peerflash.replication.cluster;

import java.util.concurrent.TimeUnit;

/**
 * The clock leases and liveness read, so tests can drive time. A copy of the idea of {@code
 * io.peerflash.util.Time} in {@code node} ({@code replication} cannot depend on {@code node}). Only
 * {@link #nanoTime()} is used for lease arithmetic: it must be monotonic.
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
