package io.peerflash.node.engine;

import static io.peerflash.node.engine.EngineTestSupport.BLOCK;
import static io.peerflash.node.engine.EngineTestSupport.corruptSlot;
import static io.peerflash.node.engine.EngineTestSupport.entryOf;
import static io.peerflash.node.engine.EngineTestSupport.pattern;
import static io.peerflash.node.engine.EngineTestSupport.readFile;
import static io.peerflash.node.engine.EngineTestSupport.slotOf;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.engine.VolumeStatusView.Health;
import io.peerflash.node.index.BlockEntry;
import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.storage.FileBackingStore;
import io.peerflash.util.Time;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Damaged bytes in the cache file: clean copies are re-read, dirty ones are reported. */
class ChecksumTest {
  private static final String VOL = "vol";

  @TempDir Path tmp;
  private Path dataDir;
  private EngineConfig config;
  private FileBackingStore store;
  private CacheEngine engine;

  @BeforeEach
  void setUp() throws Exception {
    dataDir = tmp.resolve("data");
    // Default watermarks and a 30 s dirty age: nothing is destaged unless flushed.
    config = EngineConfig.defaults(dataDir, 4L << 20);
    open();
  }

  @AfterEach
  void tearDown() {
    if (engine != null) {
      engine.close();
    }
  }

  private void open() throws Exception {
    store = new FileBackingStore(tmp.resolve("shared"));
    engine = CacheEngine.open(config, store, Time.SYSTEM);
    engine.start();
  }

  private void restart() throws Exception {
    engine.close();
    engine = null;
    open();
  }

  private void writeBlock(long block, byte[] data) throws CacheException {
    engine.write(VOL, block * BLOCK, ByteBuffer.wrap(data));
  }

  @Test
  void cleanBlockWithBadChecksumIsServedFromSharedStorage() throws Exception {
    engine.createVolume(VOL, 1 << 20, CacheMode.WRITE_BACK, 0);
    byte[][] data = new byte[8][];
    for (int b = 0; b < 8; b++) {
      data[b] = pattern(b, BLOCK);
      writeBlock(b, data[b]);
    }
    engine.flush(VOL);
    BlockEntry e = entryOf(engine, VOL, 3);
    assertThat(e).isNotNull();
    assertThat(e.dirty()).isFalse();

    corruptSlot(dataDir, e.slot());

    assertThat(engine.read(VOL, 3L * BLOCK, BLOCK)).isEqualTo(data[3]);
    assertThat(engine.read(VOL, 3L * BLOCK + 512, 1024))
        .isEqualTo(Arrays.copyOfRange(data[3], 512, 1536));
    byte[] all = engine.read(VOL, 0, 8 * BLOCK);
    for (int b = 0; b < 8; b++) {
      assertThat(Arrays.copyOfRange(all, b * BLOCK, (b + 1) * BLOCK)).isEqualTo(data[b]);
    }
    assertThat(engine.store.stats.checksumFailures.sum()).isPositive();

    // A partial write into the damaged block merges with the good copy from shared storage.
    byte[] patch = pattern(99, 512);
    engine.write(VOL, 3L * BLOCK + 1024, ByteBuffer.wrap(patch));
    System.arraycopy(patch, 0, data[3], 1024, 512);
    assertThat(engine.read(VOL, 3L * BLOCK, BLOCK)).isEqualTo(data[3]);
    engine.flush(VOL);
    assertThat(readFile(store.fileOf(VOL), 3L * BLOCK, BLOCK)).isEqualTo(data[3]);
    assertThat(engine.volumeStatus(VOL).health()).isEqualTo(Health.HEALTHY);
  }

  @Test
  void dirtyBlockWithBadChecksumFoundAtStartIsReportedAndOthersStillDestaged() throws Exception {
    engine.createVolume(VOL, 1 << 20, CacheMode.WRITE_BACK, 0);
    int blocks = 16;
    int bad = 5;
    byte[][] data = new byte[blocks][];
    for (int b = 0; b < blocks; b++) {
      data[b] = pattern(1000 + b, BLOCK);
      writeBlock(b, data[b]);
    }
    int badSlot = slotOf(engine, VOL, bad);
    assertThat(entryOf(engine, VOL, bad).dirty()).isTrue();
    engine.close();
    engine = null;

    corruptSlot(dataDir, badSlot);
    open();

    assertThatThrownBy(() -> engine.read(VOL, (long) bad * BLOCK, BLOCK))
        .isInstanceOfSatisfying(
            CacheException.class, ex -> assertThat(ex.reason()).isEqualTo(Reason.DATA_LOSS));
    // A read spanning the bad block fails too; neighbours alone are fine.
    assertThatThrownBy(() -> engine.read(VOL, 0, blocks * BLOCK))
        .isInstanceOfSatisfying(
            CacheException.class, ex -> assertThat(ex.reason()).isEqualTo(Reason.DATA_LOSS));
    assertThat(engine.read(VOL, (long) (bad - 1) * BLOCK, BLOCK)).isEqualTo(data[bad - 1]);

    VolumeStatusView st = engine.volumeStatus(VOL);
    assertThat(st.health()).isEqualTo(Health.CORRUPT_DIRTY_DATA);
    assertThat(st.corruptBlocks()).isEqualTo(1);

    ExecutorService pool = Executors.newSingleThreadExecutor();
    try {
      Future<Long> flush = pool.submit(() -> engine.flush(VOL));
      assertThatThrownBy(() -> flush.get(10, TimeUnit.SECONDS))
          .hasCauseInstanceOf(CacheException.class)
          .satisfies(
              ex ->
                  assertThat(((CacheException) ex.getCause()).reason())
                      .isEqualTo(Reason.DATA_LOSS));
    } finally {
      pool.shutdownNow();
    }
    for (int b = 0; b < blocks; b++) {
      byte[] onStorage = readFile(store.fileOf(VOL), (long) b * BLOCK, BLOCK);
      if (b == bad) {
        assertThat(onStorage).as("corrupt block is never destaged").isEqualTo(new byte[BLOCK]);
      } else {
        assertThat(onStorage).as("block %d on storage", b).isEqualTo(data[b]);
      }
    }

    // Rewriting the block replaces the damaged version.
    byte[] fresh = pattern(4242, BLOCK);
    writeBlock(bad, fresh);
    assertThat(engine.volumeStatus(VOL).health()).isEqualTo(Health.HEALTHY);
    engine.flush(VOL);
    assertThat(readFile(store.fileOf(VOL), (long) bad * BLOCK, BLOCK)).isEqualTo(fresh);
    assertThat(engine.read(VOL, (long) bad * BLOCK, BLOCK)).isEqualTo(fresh);
  }

  /**
   * A dirty block damaged while the engine runs is found by the destager (or a read), put into
   * corruptBlocks, but left in the dirty index: flush then waits for it forever instead of failing
   * with DATA_LOSS.
   */
  @Test
  void dirtyBlockCorruptedWhileRunningFailsFlushWithDataLoss() throws Exception {
    engine.createVolume(VOL, 1 << 20, CacheMode.WRITE_BACK, 0);
    byte[][] data = new byte[8][];
    for (int b = 0; b < 8; b++) {
      data[b] = pattern(2000 + b, BLOCK);
      writeBlock(b, data[b]);
    }
    corruptSlot(dataDir, slotOf(engine, VOL, 2));

    ExecutorService pool = Executors.newSingleThreadExecutor();
    try {
      Future<Long> flush = pool.submit(() -> engine.flush(VOL));
      CacheException failure = null;
      try {
        flush.get(5, TimeUnit.SECONDS);
      } catch (java.util.concurrent.ExecutionException ex) {
        failure = (CacheException) ex.getCause();
      } catch (TimeoutException ex) {
        throw new AssertionError(
            "flush did not return within 5 s; dirty index still holds "
                + engine.store.volume(VOL).dirty.size()
                + " blocks, corrupt "
                + engine.store.volume(VOL).corruptBlocks,
            ex);
      }
      assertThat(failure).isNotNull();
      assertThat(failure.reason()).isEqualTo(Reason.DATA_LOSS);
      for (int b = 0; b < 8; b++) {
        if (b != 2) {
          assertThat(readFile(store.fileOf(VOL), (long) b * BLOCK, BLOCK)).isEqualTo(data[b]);
        }
      }
      assertThat(engine.volumeStatus(VOL).dirtyBytes()).isEqualTo(BLOCK);
    } finally {
      engine.close(); // unblocks a hung flush ("node is shutting down")
      engine = null;
      pool.shutdownNow();
    }
  }
}
