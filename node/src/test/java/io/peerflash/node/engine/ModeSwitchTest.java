package io.peerflash.node.engine;

import static io.peerflash.node.engine.EngineTestSupport.BLOCK;
import static io.peerflash.node.engine.EngineTestSupport.awaitDestagerStep;
import static io.peerflash.node.engine.EngineTestSupport.awaitTrue;
import static io.peerflash.node.engine.EngineTestSupport.entryOf;
import static io.peerflash.node.engine.EngineTestSupport.pattern;
import static io.peerflash.node.engine.EngineTestSupport.readFile;
import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.storage.FileBackingStore;
import io.peerflash.util.Time;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Policy changes racing with I/O. */
class ModeSwitchTest {
  @TempDir Path tmp;
  private FileBackingStore files;
  private FaultyBackingStore store;
  private CacheEngine engine;

  @BeforeEach
  void setUp() throws Exception {
    files = new FileBackingStore(tmp.resolve("shared"));
    store = new FaultyBackingStore(files);
    // 30 s dirty age, 50 % high watermark: the destager only works for flushes.
    engine =
        CacheEngine.open(EngineConfig.defaults(tmp.resolve("data"), 4L << 20), store, Time.SYSTEM);
    engine.start();
  }

  @AfterEach
  void tearDown() {
    store.holdWrites = false;
    if (engine != null) {
      engine.close();
    }
  }

  @Test
  void leavingWriteBackDestagesEverythingBeforeReturning() throws Exception {
    engine.createVolume("v", 1 << 20, CacheMode.WRITE_BACK, 0);
    byte[] data = pattern(1, 256 << 10);
    engine.write("v", 0, ByteBuffer.wrap(data));
    assertThat(engine.volumeStatus("v").dirtyBytes()).isEqualTo(data.length);
    engine.setPolicy("v", CacheMode.WRITE_THROUGH, 1);
    assertThat(engine.volumeStatus("v").dirtyBytes()).isZero();
    assertThat(readFile(files.fileOf("v"), 0, data.length)).isEqualTo(data);
    assertThat(engine.getVolume("v").mode()).isEqualTo(CacheMode.WRITE_THROUGH);
    assertThat(engine.getVolume("v").replicas()).isEqualTo(1);
  }

  /**
   * After WRITE_BACK -> WRITE_THROUGH -> WRITE_BACK the volume's flush target stays at
   * Long.MAX_VALUE - 1, so it counts as "flush pending" forever: every later write-back write is
   * destaged at once, unpaced, and the volume pre-empts all others in Destager.choose.
   */
  @Test
  void writeBackDataIsNotDestagedEagerlyAfterAPolicyRoundTrip() throws Exception {
    engine.createVolume("v", 1 << 20, CacheMode.WRITE_BACK, 0);
    engine.setPolicy("v", CacheMode.WRITE_THROUGH, 0);
    engine.setPolicy("v", CacheMode.WRITE_BACK, 0);
    engine.write("v", 0, ByteBuffer.wrap(pattern(2, BLOCK)));
    // Far below the 30 s max dirty age and the watermarks: a destager step that saw the write
    // leaves it alone (it destaged it at once while the stale flush target made it look pending).
    awaitDestagerStep(engine);
    assertThat(engine.volumeStatus("v").dirtyBytes())
        .as("write-back data younger than max-dirty-age stays dirty")
        .isEqualTo(BLOCK);
  }

  /**
   * A write-through write to a still-dirty block waits in Destager.flush while holding the volume's
   * gate read lock. If setPolicy (or deleteVolume) then queues for the gate write lock, the
   * destager's gate.readLock().lock() in destageBatch queues behind it: nobody proceeds.
   */
  @Test
  void writeThroughToDirtyBlockDoesNotDeadlockWithConcurrentPolicyChange() throws Exception {
    engine.createVolume("v", 1 << 20, CacheMode.WRITE_BACK, 0);
    engine.write("v", 0, ByteBuffer.wrap(pattern(1, 2 * BLOCK)));
    CachedVolume v = engine.store.volume("v");
    long oldSeq = entryOf(engine, "v", 0).seq();

    ExecutorService pool = Executors.newFixedThreadPool(3);
    try {
      store.holdWrites = true;
      // P: leaves write-back; its flush gets the destager stuck in a (held) storage write.
      Future<?> p = pool.submit(() -> engine.setPolicy("v", CacheMode.WRITE_THROUGH, 0));
      awaitTrue(5000, "the destager inside a storage write", () -> store.heldWrites.get() > 0);
      // A: write-through to block 0, still dirty: takes the write-back path, then waits for flush.
      byte[] fresh = pattern(3, BLOCK);
      Future<?> a =
          pool.submit(
              () -> {
                engine.write("v", 0, ByteBuffer.wrap(fresh));
                return null;
              });
      awaitTrue(
          5000,
          "A's new version installed",
          () -> {
            try {
              return entryOf(engine, "v", 0).seq() != oldSeq;
            } catch (CacheException e) {
              throw new IllegalStateException(e);
            }
          });
      // B: another policy change queues for the gate's write lock behind A.
      Future<?> b = pool.submit(() -> engine.setPolicy("v", CacheMode.WRITE_AROUND, 0));
      awaitTrue(5000, "B queued on the volume gate", () -> v.gate.getQueueLength() > 0);
      store.holdWrites = false;

      try {
        a.get(5, TimeUnit.SECONDS);
        b.get(5, TimeUnit.SECONDS);
        p.get(5, TimeUnit.SECONDS);
      } catch (TimeoutException e) {
        throw new AssertionError(
            "deadlock: write/setPolicy did not finish within 5 s; gate queue length "
                + v.gate.getQueueLength()
                + ", dirty blocks "
                + v.dirty.size(),
            e);
      }
      assertThat(engine.read("v", 0, BLOCK)).isEqualTo(fresh);
      assertThat(readFile(files.fileOf("v"), 0, BLOCK)).isEqualTo(fresh);
    } finally {
      store.holdWrites = false;
      engine.close(); // "node is shutting down" releases a hung flush
      engine = null;
      pool.shutdownNow();
    }
  }
}
