package io.peerflash.node.engine;

import static io.peerflash.node.engine.EngineTestSupport.BLOCK;
import static io.peerflash.node.engine.EngineTestSupport.assertFileEquals;
import static io.peerflash.node.engine.EngineTestSupport.awaitDestagerStep;
import static io.peerflash.node.engine.EngineTestSupport.awaitTrue;
import static io.peerflash.node.engine.EngineTestSupport.pattern;
import static io.peerflash.node.engine.EngineTestSupport.readFile;
import static io.peerflash.node.engine.EngineTestSupport.retryWhile;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.engine.VolumeStatusView.Health;
import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.storage.FileBackingStore;
import io.peerflash.util.ManualTime;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.slf4j.LoggerFactory;

/** Shared storage failing: write-back keeps going, flush is bounded, bad blocks are isolated. */
class StorageFailureTest {
  private static final String VOL = "vol";
  private static final long FAILING_AFTER_MS = 200;
  private static final long FLUSH_TIMEOUT_MS = 800;

  @TempDir Path tmp;
  private FileBackingStore files;
  private FaultyBackingStore store;
  private CacheEngine engine;
  private final ManualTime clock = ManualTime.followingSystem();

  private void open(long retryInitialMs, long retryMaxMs) throws Exception {
    EngineConfig config =
        EngineConfig.defaults(tmp.resolve("data"), 4L << 20)
            .withStorageTimeouts(FAILING_AFTER_MS, FLUSH_TIMEOUT_MS)
            .withRetryBackoff(retryInitialMs, retryMaxMs);
    files = new FileBackingStore(tmp.resolve("shared"));
    store = new FaultyBackingStore(files);
    engine = CacheEngine.open(config, store, clock);
    engine.start();
  }

  @AfterEach
  void tearDown() {
    if (engine != null) {
      engine.close();
    }
  }

  enum Failure {
    WRITES,
    SYNCS
  }

  private void randomWrite(Random rnd, byte[] model) throws CacheException {
    int len = rnd.nextBoolean() ? BLOCK * (1 + rnd.nextInt(4)) : 512 * (1 + rnd.nextInt(16));
    long off = (long) rnd.nextInt((model.length - len) / 512 + 1) * 512;
    byte[] data = new byte[len];
    rnd.nextBytes(data);
    engine.write(VOL, off, ByteBuffer.wrap(data));
    System.arraycopy(data, 0, model, (int) off, len);
  }

  @ParameterizedTest
  @EnumSource(Failure.class)
  void writeBackContinuesWhileStorageFailsAndFlushIsBounded(Failure kind) throws Exception {
    open(20, 200);
    Random rnd = new Random(kind.ordinal() + 11);
    byte[] model = new byte[2 << 20];
    engine.createVolume(VOL, model.length, CacheMode.WRITE_BACK, 0);
    for (int i = 0; i < 16; i++) {
      randomWrite(rnd, model);
    }
    engine.flush(VOL);
    assertFileEquals(files.fileOf(VOL), model, "before the failure");

    if (kind == Failure.WRITES) {
      store.failWrites = true;
    } else {
      store.failSyncs = true;
    }
    for (int i = 0; i < 40; i++) {
      randomWrite(rnd, model); // acknowledged: no exception
    }
    long t0 = System.nanoTime();
    assertThatThrownBy(() -> engine.flush(VOL))
        .isInstanceOfSatisfying(
            CacheException.class,
            ex -> {
              assertThat(ex.reason()).isEqualTo(Reason.UNAVAILABLE);
              assertThat(ex.getMessage()).contains("flush-storage-failure-timeout-ms");
            });
    long elapsedMs = (System.nanoTime() - t0) / 1_000_000;
    assertThat(elapsedMs).isBetween(FLUSH_TIMEOUT_MS - 100, FLUSH_TIMEOUT_MS + 4000);
    assertThat(store.failedWrites.get() + store.failedSyncs.get()).isPositive();

    VolumeStatusView st = engine.volumeStatus(VOL);
    assertThat(st.health()).isEqualTo(Health.STORAGE_FAILING);
    assertThat(st.healthDetail()).contains("injected");
    assertThat(st.dirtyBytes()).isPositive();
    // Acknowledged data is served from the cache meanwhile.
    assertThat(engine.read(VOL, 0, 1 << 20)).isEqualTo(Arrays.copyOfRange(model, 0, 1 << 20));
    assertThat(engine.read(VOL, 1 << 20, 1 << 20))
        .isEqualTo(Arrays.copyOfRange(model, 1 << 20, 2 << 20));

    store.heal();
    // The destager retries after its backoff (at most 200 ms here); flush then succeeds.
    retryWhile(Reason.UNAVAILABLE, 5000, () -> engine.flush(VOL));
    assertFileEquals(files.fileOf(VOL), model, "after healing");
    assertThat(engine.volumeStatus(VOL).health()).isEqualTo(Health.HEALTHY);
    assertThat(engine.volumeStatus(VOL).dirtyBytes()).isZero();
  }

  @Test
  void oneBadBlockDoesNotHoldBackTheOthersAndIsRetriedAtABoundedRate() throws Exception {
    open(20, 500);
    int blocks = 64;
    int bad = 37;
    engine.createVolume(VOL, 1 << 20, CacheMode.WRITE_BACK, 0);
    store.failRange(VOL, (long) bad * BLOCK, (long) (bad + 1) * BLOCK);
    byte[][] data = new byte[blocks][];
    for (int b = 0; b < blocks; b++) {
      data[b] = pattern(b + 500, BLOCK);
      engine.write(VOL, (long) b * BLOCK, ByteBuffer.wrap(data[b]));
    }
    assertThatThrownBy(() -> engine.flush(VOL))
        .isInstanceOfSatisfying(
            CacheException.class, ex -> assertThat(ex.reason()).isEqualTo(Reason.UNAVAILABLE));

    awaitTrue(
        10_000,
        "every good block on shared storage",
        () -> {
          try {
            for (int b = 0; b < blocks; b++) {
              if (b != bad
                  && !Arrays.equals(
                      readFile(files.fileOf(VOL), (long) b * BLOCK, BLOCK), data[b])) {
                return false;
              }
            }
            return true;
          } catch (IOException e) {
            throw new IllegalStateException(e);
          }
        });
    assertThat(readFile(files.fileOf(VOL), (long) bad * BLOCK, BLOCK)).isEqualTo(new byte[BLOCK]);
    awaitTrue(
        5000,
        "only the bad block dirty",
        () -> {
          try {
            return engine.volumeStatus(VOL).dirtyBytes() == BLOCK;
          } catch (CacheException e) {
            throw new IllegalStateException(e);
          }
        });
    assertThat(engine.read(VOL, (long) bad * BLOCK, BLOCK)).isEqualTo(data[bad]);
    assertThat(engine.volumeStatus(VOL).health()).isEqualTo(Health.STORAGE_FAILING);

    // Retries of the bad block are paced by its backoff, doubling from 20 ms to 500 ms: at most
    // about ten in 2 s of engine time (a retry per volume backoff of 20 ms would be a hundred, a
    // storm thousands). Each 10 ms step of the clock is followed by a destager step that saw it.
    clock.freeze();
    int before = store.failedWrites.get();
    for (int ms = 0; ms < 2000; ms += 10) {
      clock.advanceMs(10);
      awaitDestagerStep(engine);
    }
    int attempts = store.failedWrites.get() - before;
    System.out.println("bad-block attempts in 2 s of engine time: " + attempts);
    assertThat(attempts).isBetween(1, 10);
    clock.resume();

    store.heal();
    retryWhile(Reason.UNAVAILABLE, 5000, () -> engine.flush(VOL));
    assertThat(readFile(files.fileOf(VOL), (long) bad * BLOCK, BLOCK)).isEqualTo(data[bad]);
    assertThat(engine.volumeStatus(VOL).health()).isEqualTo(Health.HEALTHY);
  }

  /**
   * While the only dirty block waits out its per-block backoff, Destager.destageBatch finds nothing
   * to do and returns 0, and step() returns 0 (no pause) because the volume is still chosen (flush
   * pending or aged): the destager thread spins at 100% CPU.
   */
  @Test
  void destagerDoesNotSpinWhileTheOnlyDirtyBlockIsBackingOff() throws Exception {
    open(20, 2000);
    clock.freeze();
    engine.createVolume(VOL, 1 << 20, CacheMode.WRITE_BACK, 0);
    store.failRange(VOL, 0, BLOCK);
    engine.write(VOL, 0, ByteBuffer.wrap(pattern(1, BLOCK)));
    // Counts the destager's attempts at the volume: it checks the serve guard before each batch.
    AtomicInteger attempts = new AtomicInteger();
    engine.setServeGuard(
        info -> {
          if (Thread.currentThread().getName().equals("peerflash-destager")) {
            attempts.incrementAndGet();
          }
          return true;
        });
    // A flush pending; two failures: the block backs off 20 ms, then 40 ms, the volume 20 ms.
    engine.destageSoon(VOL);
    awaitTrue(5000, "the first failure", () -> store.failedWrites.get() == 1);
    clock.advanceMs(20);
    awaitTrue(5000, "the second failure", () -> store.failedWrites.get() == 2);
    // Now the volume is due again and its only block is not (for 20 ms of a stopped clock): one
    // step finds nothing to do, every later one must pause instead of trying again at once.
    clock.advanceMs(20);
    awaitDestagerStep(engine);
    int attemptsBefore = attempts.get();
    long rounds = engine.destager.rounds();
    long startNanos = System.nanoTime();
    awaitTrue(5000, "five more destager steps", () -> engine.destager.rounds() >= rounds + 5);
    long elapsedMs = (System.nanoTime() - startNanos) / 1_000_000;

    assertThat(attempts.get() - attemptsBefore).as("attempts at the volume").isZero();
    // A spinning destager finishes a step in microseconds; a pausing one waits at least 1 ms.
    assertThat(elapsedMs).as("five steps, in ms").isGreaterThanOrEqualTo(4);
    assertThat(store.failedWrites.get()).isEqualTo(2);
  }

  /**
   * The retry log line names the wait that really follows: a bad block's own backoff doubles per
   * failure, while the volume's other blocks go on after the first backoff (the log said "retrying
   * in 20 ms" while the bad block waited ever longer).
   */
  @Test
  void theRetryLogNamesTheBackoffTheBadBlockReallyWaits() throws Exception {
    ListAppender<ILoggingEvent> logs = new ListAppender<>();
    logs.start();
    Logger destagerLog = (Logger) LoggerFactory.getLogger(Destager.class);
    destagerLog.addAppender(logs);
    try {
      open(20, 160);
      engine.createVolume(VOL, 1 << 20, CacheMode.WRITE_BACK, 0);
      store.failRange(VOL, 0, BLOCK);
      engine.write(VOL, 0, ByteBuffer.wrap(pattern(1, 2 * BLOCK)));
      engine.destageSoon(VOL);
      awaitTrue(10_000, "six failed writes of the bad block", () -> store.failedWrites.get() >= 6);
      List<String> lines =
          logs.list.stream()
              .map(ILoggingEvent::getFormattedMessage)
              .filter(m -> m.contains("block 0 failed"))
              .toList();
      assertThat(lines).anyMatch(m -> m.contains("retrying it in 80 ms"));
      assertThat(lines).anyMatch(m -> m.contains("retrying it in 160 ms"));
      assertThat(engine.read(VOL, BLOCK, BLOCK))
          .isEqualTo(Arrays.copyOfRange(pattern(1, 2 * BLOCK), BLOCK, 2 * BLOCK));
    } finally {
      destagerLog.detachAppender(logs);
    }
  }

  /**
   * Leaving write-back destages first; when that fails, the volume stays write-back (status tells
   * the truth) instead of reporting the new mode while holding dirty data it cannot destage.
   */
  @Test
  void leavingWriteBackWhileStorageFailsKeepsTheVolumeWriteBack() throws Exception {
    open(20, 200);
    engine.createVolume(VOL, 1 << 20, CacheMode.WRITE_BACK, 0);
    engine.write(VOL, 0, ByteBuffer.wrap(pattern(1, BLOCK)));
    store.failWrites = true;
    assertThatThrownBy(() -> engine.setPolicy(VOL, CacheMode.WRITE_THROUGH, 0))
        .isInstanceOfSatisfying(
            CacheException.class,
            e -> {
              assertThat(e.reason()).isEqualTo(Reason.UNAVAILABLE);
              assertThat(e.getMessage()).contains("stays WRITE_BACK");
            });
    assertThat(engine.getVolume(VOL).mode()).isEqualTo(CacheMode.WRITE_BACK);
    engine.write(VOL, BLOCK, ByteBuffer.wrap(pattern(2, BLOCK)));
    store.heal();
    engine.setPolicy(VOL, CacheMode.WRITE_THROUGH, 0);
    assertThat(engine.getVolume(VOL).mode()).isEqualTo(CacheMode.WRITE_THROUGH);
    assertThat(engine.volumeStatus(VOL).dirtyBytes()).isZero();
  }

  @Test
  void writeThroughWriteFailsWhileStorageFailsAndEarlierDataStillReads() throws Exception {
    open(20, 200);
    engine.createVolume(VOL, 1 << 20, CacheMode.WRITE_THROUGH, 0);
    engine.createVolume("around", 1 << 20, CacheMode.WRITE_AROUND, 0);
    byte[] before = pattern(7, 8 * BLOCK);
    engine.write(VOL, 0, ByteBuffer.wrap(before));
    engine.write("around", 0, ByteBuffer.wrap(before));
    assertThat(readFile(files.fileOf(VOL), 0, 8 * BLOCK)).isEqualTo(before);

    store.failWrites = true;
    for (String vol : new String[] {VOL, "around"}) {
      assertThatThrownBy(() -> engine.write(vol, 2L * BLOCK, ByteBuffer.wrap(pattern(8, BLOCK))))
          .isInstanceOfSatisfying(
              CacheException.class, ex -> assertThat(ex.reason()).isEqualTo(Reason.UNAVAILABLE));
      assertThatThrownBy(() -> engine.write(vol, 3L * BLOCK + 512, ByteBuffer.wrap(new byte[512])))
          .isInstanceOfSatisfying(
              CacheException.class, ex -> assertThat(ex.reason()).isEqualTo(Reason.UNAVAILABLE));
      assertThatThrownBy(() -> engine.trim(vol, 4L * BLOCK, BLOCK))
          .isInstanceOfSatisfying(
              CacheException.class, ex -> assertThat(ex.reason()).isEqualTo(Reason.UNAVAILABLE));
      assertThat(engine.read(vol, 0, 8 * BLOCK)).as(vol).isEqualTo(before);
      assertThat(engine.volumeStatus(vol).dirtyBytes()).isZero();
    }

    store.heal();
    byte[] after = pattern(9, BLOCK);
    engine.write(VOL, 2L * BLOCK, ByteBuffer.wrap(after));
    System.arraycopy(after, 0, before, 2 * BLOCK, BLOCK);
    assertThat(engine.read(VOL, 0, 8 * BLOCK)).isEqualTo(before);
    assertThat(readFile(files.fileOf(VOL), 0, 8 * BLOCK)).isEqualTo(before);
  }
}
