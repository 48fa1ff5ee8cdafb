package io.peerflash.node.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;

import io.peerflash.node.index.BlockEntry;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.function.BooleanSupplier;

/** Shared helpers for the engine tests. */
final class EngineTestSupport {
  static final int BLOCK = CacheEngine.BLOCK;

  private EngineTestSupport() {}

  static byte[] randomBytes(Random rnd, int len) {
    byte[] b = new byte[len];
    rnd.nextBytes(b);
    return b;
  }

  /** A 4 KiB-block-distinct pattern: every byte depends on tag and position. */
  static byte[] pattern(long tag, int len) {
    byte[] b = new byte[len];
    Random r = new Random(tag * 0x9E3779B97F4A7C15L + 17);
    r.nextBytes(b);
    return b;
  }

  static byte[] readFile(Path file, long offset, int len) throws IOException {
    byte[] out = new byte[len];
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
      ByteBuffer dst = ByteBuffer.wrap(out);
      long pos = offset;
      while (dst.hasRemaining()) {
        int n = ch.read(dst, pos);
        if (n < 0) {
          break; // rest stays zero
        }
        pos += n;
      }
    }
    return out;
  }

  static void assertFileEquals(Path file, byte[] model, String what) throws IOException {
    byte[] actual = Files.readAllBytes(file);
    assertThat(actual.length).as(what + ": backing file size").isEqualTo(model.length);
    int diff = firstDiff(actual, model);
    if (diff >= 0) {
      fail(
          "%s: backing file differs from the model at byte %d (block %d): file=%d model=%d",
          what, diff, diff / BLOCK, actual[diff], model[diff]);
    }
  }

  static int firstDiff(byte[] a, byte[] b) {
    int n = Math.min(a.length, b.length);
    for (int i = 0; i < n; i++) {
      if (a[i] != b[i]) {
        return i;
      }
    }
    return a.length == b.length ? -1 : n;
  }

  /** The cache slot of a volume's block per the engine's in-memory index, or -1. */
  static int slotOf(CacheEngine engine, String volume, long block) throws CacheException {
    BlockEntry e = engine.store.volume(volume).blocks.get(block);
    return e == null ? -1 : e.slot();
  }

  static BlockEntry entryOf(CacheEngine engine, String volume, long block) throws CacheException {
    return engine.store.volume(volume).blocks.get(block);
  }

  /** Overwrites bytes of the cache file at slot*4096+offsetInSlot. */
  static void overwriteCacheFile(Path dataDir, int slot, int offsetInSlot, byte[] bytes)
      throws IOException {
    try (FileChannel ch =
        FileChannel.open(dataDir.resolve("cache.slots"), StandardOpenOption.WRITE)) {
      ByteBuffer src = ByteBuffer.wrap(bytes);
      long pos = (long) slot * BLOCK + offsetInSlot;
      while (src.hasRemaining()) {
        pos += ch.write(src, pos);
      }
      ch.force(false);
    }
  }

  /** Flips every bit of a few bytes in the middle of a slot. */
  static void corruptSlot(Path dataDir, int slot) throws IOException {
    byte[] cur = readFile(dataDir.resolve("cache.slots"), (long) slot * BLOCK + 1000, 8);
    for (int i = 0; i < cur.length; i++) {
      cur[i] = (byte) ~cur[i];
    }
    overwriteCacheFile(dataDir, slot, 1000, cur);
  }

  static void awaitTrue(long timeoutMs, String what, BooleanSupplier condition)
      throws InterruptedException {
    long deadline = System.nanoTime() + timeoutMs * 1_000_000L;
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        fail("timed out after %d ms waiting for %s", timeoutMs, what);
      }
      Thread.sleep(10);
    }
  }

  /**
   * Waits until the destager has finished a whole step that began after this call, so it has seen
   * every change made before the call: a test may then assert what it did not do. Wakes it while
   * waiting, so its idle pauses do not slow the test.
   */
  static void awaitDestagerStep(CacheEngine engine) {
    Destager destager = engine.destager;
    // The step running now may have begun before the call; the one after it did not.
    long target = destager.rounds() + 2;
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (destager.rounds() < target) {
      if (System.nanoTime() > deadline) {
        fail("timed out after 10 s waiting for a destager step (at %d)", destager.rounds());
      }
      destager.wake();
      LockSupport.parkNanos(TimeUnit.MICROSECONDS.toNanos(200));
    }
  }

  /**
   * Waits until {@code task} has finished or its thread {@code t} waits (for a lock or a signal)
   * inside a method whose frame contains {@code frame}: the test then asserts which of the two it
   * was.
   */
  static void awaitWaitingIn(Thread t, String frame, Future<?> task) throws InterruptedException {
    awaitTrue(
        10_000, t.getName() + " waiting in " + frame, () -> task.isDone() || isWaitingIn(t, frame));
  }

  private static boolean isWaitingIn(Thread t, String frame) {
    Thread.State state = t.getState();
    return (state == Thread.State.WAITING
            || state == Thread.State.TIMED_WAITING
            || state == Thread.State.BLOCKED)
        && Arrays.stream(t.getStackTrace()).anyMatch(f -> f.toString().contains(frame));
  }

  interface IoAction {
    void run() throws Exception;
  }

  /** Retries an action failing with the given reason until it succeeds or the deadline passes. */
  static void retryWhile(CacheException.Reason reason, long timeoutMs, IoAction action)
      throws Exception {
    long deadline = System.nanoTime() + timeoutMs * 1_000_000L;
    while (true) {
      try {
        action.run();
        return;
      } catch (CacheException e) {
        if (e.reason() != reason || System.nanoTime() > deadline) {
          throw e;
        }
        Thread.sleep(20);
      }
    }
  }
}
