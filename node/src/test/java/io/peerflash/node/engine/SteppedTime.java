package io.peerflash.node.engine;

import io.peerflash.util.Time;

/**
 * Engine time a test can stop and step: it follows the system clock until {@link #freeze}, then
 * moves only by {@link #advanceMs} until {@link #resume}, which goes on from where it stood. Only
 * {@link #nowMs} (dirty age, backoff, flush timeouts) is stepped; {@link #nanoTime} stays real.
 */
final class SteppedTime implements Time {
  private long offsetMs; // guarded by this
  private long frozenAtMs = -1; // guarded by this; -1 while it follows the system clock

  @Override
  public synchronized long nowMs() {
    return frozenAtMs >= 0 ? frozenAtMs : System.currentTimeMillis() + offsetMs;
  }

  synchronized void freeze() {
    frozenAtMs = nowMs();
  }

  synchronized void advanceMs(long ms) {
    if (frozenAtMs < 0) {
      throw new IllegalStateException("advance a frozen clock only");
    }
    frozenAtMs += ms;
  }

  synchronized void resume() {
    offsetMs = frozenAtMs - System.currentTimeMillis();
    frozenAtMs = -1;
  }

  @Override
  public long nanoTime() {
    return System.nanoTime();
  }

  @Override
  public void sleepMs(long ms) throws InterruptedException {
    Time.SYSTEM.sleepMs(ms);
  }
}
