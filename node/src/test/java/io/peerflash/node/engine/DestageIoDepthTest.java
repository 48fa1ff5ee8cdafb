package io.peerflash.node.engine;

import static io.peerflash.node.engine.EngineTestSupport.BLOCK;
import static io.peerflash.node.engine.EngineTestSupport.assertFileEquals;
import static io.peerflash.node.engine.EngineTestSupport.awaitTrue;
import static io.peerflash.node.engine.EngineTestSupport.pattern;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.fail;

import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.storage.FileBackingStore;
import io.peerflash.util.Time;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A destage batch's writes go out destage-io-depth at a time (as many as that, never more), and all
 * or nothing.
 */
class DestageIoDepthTest {
  private static final String VOL = "vol";
  private static final int BLOCKS = 64;

  @TempDir Path tmp;
  private FileBackingStore files;
  private FaultyBackingStore store;
  private CacheEngine engine;

  private void open(int depth) throws Exception {
    EngineConfig config =
        EngineConfig.defaults(tmp.resolve("data"), 16L << 20)
            .withDestageIoDepth(depth)
            .withStorageTimeouts(200, 800)
            // A failing block's backoff stays below the destager's idle wait (100 ms).
            .withRetryBackoff(20, 50);
    files = new FileBackingStore(tmp.resolve("shared"));
    store = new FaultyBackingStore(files);
    engine = CacheEngine.open(config, store, Time.SYSTEM);
    engine.start();
  }

  @AfterEach
  void tearDown() {
    if (engine != null) {
      engine.close();
    }
  }

  private long dirtyBytes() {
    return engine.status().dirtyBytes();
  }

  /** Every other block: no two are adjacent, so each is a request of its own. */
  private byte[] writeScattered(byte[] model) throws CacheException {
    for (int i = 0; i < BLOCKS; i++) {
      byte[] data = pattern(i, BLOCK);
      long off = 2L * i * BLOCK;
      engine.write(VOL, off, ByteBuffer.wrap(data));
      System.arraycopy(data, 0, model, (int) off, BLOCK);
    }
    return model;
  }

  /**
   * Lets the batch's writes through one at a time, each only once as many as the depth allows are
   * waiting at the store: the engine must keep exactly {@code depth} requests in flight (fewer only
   * at the batch's end), never one more.
   */
  @ParameterizedTest(name = "depth {0}")
  @ValueSource(ints = {1, 3, 8})
  void aBatchKeepsDepthRequestsInFlightAndNeverMore(int depth) throws Exception {
    open(depth);
    byte[] model = new byte[4 << 20];
    engine.createVolume(VOL, model.length, CacheMode.WRITE_BACK, 0);
    // 64 dirty blocks, far below the watermarks and max-dirty-age: nothing is destaged before the
    // flush, which then writes them as one batch of 64 separate runs.
    writeScattered(model);
    Semaphore gate = new Semaphore(0);
    store.writeGate = gate;
    CompletableFuture<Void> flush =
        CompletableFuture.runAsync(
            () -> {
              try {
                engine.flush(VOL);
              } catch (CacheException e) {
                throw new IllegalStateException(e);
              }
            });
    try {
      for (int released = 0; released < BLOCKS; released++) {
        int expected = Math.min(depth, BLOCKS - released);
        awaitAtLeast(store.writesInFlight, expected, "writes in flight (" + released + " done)");
        // The store counts a write in flight before it updates the maximum: check both.
        assertThat(store.writesInFlight.get()).as("writes in flight").isLessThanOrEqualTo(depth);
        assertThat(store.maxWritesInFlight.get())
            .as("most writes in flight at once")
            .isLessThanOrEqualTo(depth);
        gate.release();
        awaitAtLeast(store.writesDone, released + 1, "writes done");
      }
      flush.get(10, TimeUnit.SECONDS);
    } finally {
      store.writeGate = null;
      gate.release(BLOCKS);
    }

    assertThat(store.writesDone.get()).as("one request per run").isEqualTo(BLOCKS);
    assertThat(store.maxWritesInFlight.get()).as("most writes in flight at once").isEqualTo(depth);
    assertFileEquals(files.fileOf(VOL), model, "after the flush");
    assertThat(engine.status().dirtyBytes()).isZero();
  }

  private static void awaitAtLeast(AtomicInteger counter, int n, String what) {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
    while (counter.get() < n) {
      if (System.nanoTime() > deadline) {
        fail("timed out after 5 s waiting for %d %s; %d", n, what, counter.get());
      }
      LockSupport.parkNanos(TimeUnit.MICROSECONDS.toNanos(50));
    }
  }

  @Test
  void oneFailedRequestFailsItsBatchAndTheRestIsStillDestaged() throws Exception {
    open(4);
    byte[] model = new byte[4 << 20];
    engine.createVolume(VOL, model.length, CacheMode.WRITE_BACK, 0);
    // Block 20 (of the 64 written) fails; its neighbours in the same batch must stay dirty until
    // written again, then get destaged in batches of their own.
    store.failRange(VOL, 40L * BLOCK, 41L * BLOCK);
    writeScattered(model);

    assertThatThrownBy(() -> engine.flush(VOL))
        .isInstanceOfSatisfying(
            CacheException.class, e -> assertThat(e.reason()).isEqualTo(Reason.UNAVAILABLE));
    // Later batches are single blocks, the failing one with a backoff of its own: the others
    // drain between its retries (they starved when its retry came at every idle wake-up).
    awaitTrue(10_000, "all but the failing block destaged", () -> dirtyBytes() == BLOCK);

    store.heal();
    engine.flush(VOL);
    assertFileEquals(files.fileOf(VOL), model, "after healing");
  }
}
