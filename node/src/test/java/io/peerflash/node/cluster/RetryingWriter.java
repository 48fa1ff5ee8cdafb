package io.peerflash.node.cluster;

import io.peerflash.client.PeerFlashClient;
import io.peerflash.client.PeerFlashException;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Writes seeded random 4 KiB blocks to a volume from its own thread while faults happen, retrying
 * each write until it is acknowledged (rewriting the same bytes is harmless), and keeps the model
 * of what the volume must hold. After each acknowledged write it sometimes reads the block back: a
 * read older than an acknowledged write fails the run.
 */
final class RetryingWriter implements AutoCloseable {
  private static final int BLOCK = 4096;

  final byte[] model;
  final AtomicLong acknowledged = new AtomicLong();
  final AtomicLong retries = new AtomicLong();
  final AtomicLong staleReads = new AtomicLong();
  private final PeerFlashClient client;
  private final String volume;
  private final Thread thread;
  private final long giveUpMs;
  private volatile boolean stop;
  private volatile Throwable failure;
  // The longest time a single write took to be acknowledged (the pause a fault caused).
  final AtomicLong longestWriteMs = new AtomicLong();

  RetryingWriter(
      PeerFlashClient client, String volume, long volumeBytes, long seed, long giveUpMs) {
    this.client = client;
    this.volume = volume;
    this.model = new byte[(int) volumeBytes];
    this.giveUpMs = giveUpMs;
    this.thread = new Thread(() -> run(seed), "test-writer-" + volume);
    thread.setDaemon(true);
  }

  RetryingWriter start() {
    thread.start();
    return this;
  }

  private void run(long seed) {
    Random rnd = new Random(seed);
    int blocks = model.length / BLOCK;
    try {
      while (!stop) {
        int block = rnd.nextInt(blocks);
        byte[] data = new byte[BLOCK];
        rnd.nextBytes(data);
        long start = System.nanoTime();
        while (true) {
          try {
            client.write(volume, (long) block * BLOCK, data);
            break;
          } catch (PeerFlashException e) {
            retries.incrementAndGet();
            if (TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start) > giveUpMs) {
              throw new AssertionError(
                  "a write was not acknowledged within " + giveUpMs + " ms: " + e, e);
            }
            Thread.sleep(20);
          }
        }
        longestWriteMs.accumulateAndGet(
            TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start), Math::max);
        System.arraycopy(data, 0, model, block * BLOCK, BLOCK);
        acknowledged.incrementAndGet();
        if (rnd.nextInt(8) == 0) {
          try {
            byte[] back = client.read(volume, (long) block * BLOCK, BLOCK);
            if (!Arrays.equals(back, data)) {
              staleReads.incrementAndGet();
            }
          } catch (PeerFlashException e) {
            // unavailable during a failover: not a stale read
          }
        }
      }
    } catch (Throwable t) {
      failure = t;
    }
  }

  /** Waits until at least {@code n} more writes were acknowledged. */
  void awaitMore(long n, int seconds) throws InterruptedException {
    long target = acknowledged.get() + n;
    InProcessCluster.await(
        () -> acknowledged.get() >= target || failure != null,
        seconds,
        n + " more acknowledged writes to " + volume);
    check();
  }

  void check() {
    if (failure != null) {
      throw new AssertionError("writer failed", failure);
    }
  }

  /** Stops after the write in progress is acknowledged; the model then is final. */
  @Override
  public void close() throws InterruptedException {
    stop = true;
    thread.join(TimeUnit.SECONDS.toMillis(60));
    check();
    if (staleReads.get() > 0) {
      throw new AssertionError(staleReads.get() + " reads returned data older than acknowledged");
    }
  }
}
