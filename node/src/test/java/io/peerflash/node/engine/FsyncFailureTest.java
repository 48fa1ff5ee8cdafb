package io.peerflash.node.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.engine.VolumeStatusView.Health;
import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.storage.FileBackingStore;
import io.peerflash.replication.data.BlockCopy;
import io.peerflash.util.Time;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A failed fsync of local flash is fatal to acknowledgement (PostgreSQL's "fsyncgate" lesson): the
 * kernel may have marked the pages it could not write clean, so a later fsync succeeds without
 * them. Writes run with {@code --sync} on a {@link SimulatedDisk} that fails an fsync as Linux
 * does.
 */
class FsyncFailureTest {
  private static final int BLOCK = 4096;
  private static final long SIZE = 1 << 20;

  @TempDir Path tmp;
  private Path data;
  private Path shared;
  private EngineConfig config;
  private SimulatedDisk disk;
  private CacheEngine engine;
  private final ExecutorService writers = Executors.newCachedThreadPool();

  @BeforeEach
  void open() throws Exception {
    data = tmp.resolve("data");
    shared = tmp.resolve("shared");
    config = EngineConfig.defaults(data, 4L << 20).withSync(true);
    disk = new SimulatedDisk();
    engine = CacheEngine.open(config, new FileBackingStore(shared), Time.SYSTEM, disk);
    engine.start();
    engine.createVolume("v", SIZE, CacheMode.WRITE_BACK, 0);
  }

  @AfterEach
  void close() {
    writers.shutdownNow();
    if (engine != null) {
      engine.close();
    }
  }

  private static ByteBuffer block(int seed) {
    byte[] b = new byte[BLOCK];
    Arrays.fill(b, (byte) seed);
    return ByteBuffer.wrap(b);
  }

  private CompletableFuture<Void> writeAsync(long blockNo, int seed) {
    return CompletableFuture.runAsync(
        () -> {
          try {
            engine.write("v", blockNo * BLOCK, block(seed));
          } catch (CacheException e) {
            throw new java.util.concurrent.CompletionException(e);
          }
        },
        writers);
  }

  private static Throwable failureOf(CompletableFuture<Void> f) throws Exception {
    try {
      f.get(30, TimeUnit.SECONDS);
      return null;
    } catch (java.util.concurrent.ExecutionException e) {
      return e.getCause();
    }
  }

  @Test
  void noWriteIsAcknowledgedAfterAFailedFsyncEvenWhenALaterFsyncWouldSucceed() throws Exception {
    engine.write("v", 9L * BLOCK, block(9)); // acknowledged and durable before the failure
    // The next fsync waits until a second writer has put its data into the page cache, then
    // fails: that writer's pages are among those the failed writeback marked clean.
    CountDownLatch release = new CountDownLatch(1);
    disk.holdNextForce(release);
    disk.failNextForces(1);
    CompletableFuture<Void> a = writeAsync(0, 1);
    assertThat(disk.forceHeld.await(30, TimeUnit.SECONDS)).as("A's group fsyncs").isTrue();
    long writesBefore = disk.cacheWrites.get();
    CompletableFuture<Void> b = writeAsync(1, 2);
    InProcessWait.until(() -> disk.cacheWrites.get() > writesBefore, "B's data written");
    release.countDown();

    assertThat(failureOf(a)).as("the write whose fsync failed").isNotNull();
    Throwable bFailure = failureOf(b);
    assertThat(bFailure)
        .as("B's data was in the failed writeback; a later fsync succeeds without it")
        .isInstanceOf(CacheException.class);
    assertThat(((CacheException) bFailure).reason()).isEqualTo(Reason.UNAVAILABLE);

    // Fatal until a restart: no write, read or flush, and status says why.
    assertThatThrownBy(() -> engine.write("v", 2L * BLOCK, block(3)))
        .isInstanceOfSatisfying(
            CacheException.class,
            e -> {
              assertThat(e.reason()).isEqualTo(Reason.UNAVAILABLE);
              assertThat(e.getMessage()).contains("fsync of the cache file").contains("restart");
            });
    assertThatThrownBy(() -> engine.read("v", 9L * BLOCK, BLOCK))
        .isInstanceOfSatisfying(
            CacheException.class, e -> assertThat(e.reason()).isEqualTo(Reason.UNAVAILABLE));
    assertThatThrownBy(() -> engine.flush("v"))
        .isInstanceOfSatisfying(
            CacheException.class, e -> assertThat(e.reason()).isEqualTo(Reason.UNAVAILABLE));
    assertThat(engine.localFailure()).contains("fsync of the cache file");
    assertThat(engine.status().localFailure()).isNotNull();
    assertThat(engine.volumeStatus("v").health()).isEqualTo(Health.LOCAL_FLASH_FAILED);
    assertThatThrownBy(
            () -> engine.applyReplicaBlocks("v", List.of(new BlockCopy(4, 100, block(4)))))
        .isInstanceOfSatisfying(
            CacheException.class, e -> assertThat(e.reason()).isEqualTo(Reason.UNAVAILABLE));

    // What the disk kept is recovered at the next start: every acknowledged write, and no
    // checksum failure (nothing was acknowledged without its data).
    disk.powerCut();
    engine.close();
    engine = CacheEngine.open(config, new FileBackingStore(shared), Time.SYSTEM);
    engine.start();
    assertThat(engine.read("v", 9L * BLOCK, BLOCK)).isEqualTo(block(9).array());
    engine.read("v", 0, 2 * BLOCK); // neither A nor B was acknowledged: any content, no DATA_LOSS
    assertThat(engine.volumeStatus("v").health()).isEqualTo(Health.HEALTHY);
    engine.write("v", 0, block(5));
    assertThat(engine.read("v", 0, BLOCK)).isEqualTo(block(5).array());
  }

  @Test
  void aFailedSyncedWriteOfTheIndexIsFatalToo() throws Exception {
    engine.write("v", 0, block(1));
    disk.failNextSyncedIndexWrite();
    assertThatThrownBy(() -> engine.write("v", BLOCK, block(2))).isInstanceOf(CacheException.class);
    assertThatThrownBy(() -> engine.write("v", 2L * BLOCK, block(3)))
        .isInstanceOfSatisfying(
            CacheException.class,
            e -> {
              assertThat(e.reason()).isEqualTo(Reason.UNAVAILABLE);
              assertThat(e.getMessage()).contains("synced write of the index");
            });
    assertThat(engine.volumeStatus("v").health()).isEqualTo(Health.LOCAL_FLASH_FAILED);
  }

  @Test
  void aFailedFsyncStopsTheDestager() throws Exception {
    engine.write("v", 0, block(1));
    disk.failNextForces(1);
    assertThatThrownBy(() -> engine.write("v", BLOCK, block(2))).isInstanceOf(CacheException.class);
    // Its cached data may not be what was written: nothing of it may reach shared storage.
    CachedVolume v = engine.store.volume("v");
    assertThat(engine.store.mayDestage(v)).isFalse();
    assertThat(engine.destager.destageBatch(v, engine.store.time.nowMs())).isZero();
  }

  /** Polls a condition the test cannot be told about (bounded). */
  static final class InProcessWait {
    static void until(java.util.function.BooleanSupplier condition, String what)
        throws InterruptedException {
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
      while (!condition.getAsBoolean()) {
        if (System.nanoTime() > deadline) {
          throw new AssertionError("timed out waiting for " + what);
        }
        Thread.sleep(1);
      }
    }
  }
}
