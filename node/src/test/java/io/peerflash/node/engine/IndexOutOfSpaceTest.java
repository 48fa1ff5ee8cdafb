package io.peerflash.node.engine;

import static io.peerflash.node.engine.EngineTestSupport.BLOCK;
import static io.peerflash.node.engine.EngineTestSupport.assertFileEquals;
import static io.peerflash.node.engine.EngineTestSupport.firstDiff;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.fail;

import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.index.KeyValueStorage.Health;
import io.peerflash.node.index.Tmpfs;
import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.storage.FileBackingStore;
import io.peerflash.util.Time;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The node's data directory fills up: writes fail with UNAVAILABLE naming the lack of space while
 * the index cannot write, and work again, with no restart, once space is freed; every acknowledged
 * write stays readable. Shared storage is elsewhere (a normal directory).
 */
class IndexOutOfSpaceTest {
  private static final String VOL = "vol";
  private static final long MIB = 1 << 20;
  private static final int VOLUME_BYTES = (int) (2 * MIB);
  private static final int LARGE_WRITE_BLOCKS = 256;

  /** RocksDB checks for free space every 5 s; three checks are plenty. */
  private static final long RECOVERY_DEADLINE_MS = 15_000;

  private static Tmpfs fs;
  @TempDir Path shared;
  private CacheEngine engine;

  @BeforeAll
  static void mount() throws Exception {
    fs = Tmpfs.mount("engine-space", 32);
  }

  @AfterAll
  static void unmount() throws Exception {
    if (fs != null) {
      fs.close();
    }
  }

  @AfterEach
  void cleanUp() throws IOException {
    if (engine != null) {
      engine.close();
      engine = null;
    }
    fs.freeFiller();
    Path data = dataDir();
    if (Files.exists(data)) {
      try (Stream<Path> paths = Files.walk(data)) {
        for (Path p : paths.sorted(Comparator.reverseOrder()).toList()) {
          Files.delete(p);
        }
      }
    }
  }

  private static Path dataDir() {
    return fs.dir().resolve("data");
  }

  private CacheEngine open(boolean sync) throws IOException {
    CacheEngine e =
        CacheEngine.open(
            EngineConfig.defaults(dataDir(), 4 * MIB).withSync(sync),
            new FileBackingStore(shared),
            Time.SYSTEM);
    e.start();
    return e;
  }

  /**
   * Writes {@code blocks} random blocks at a random place; the model changes only if the write is
   * acknowledged.
   */
  private void writeBlocks(Random rnd, byte[] model, int blocks) throws CacheException {
    long offset = (long) rnd.nextInt(VOLUME_BYTES / BLOCK - blocks + 1) * BLOCK;
    byte[] data = new byte[blocks * BLOCK];
    rnd.nextBytes(data);
    engine.write(VOL, offset, ByteBuffer.wrap(data));
    System.arraycopy(data, 0, model, (int) offset, data.length);
  }

  private static boolean namesNoSpace(CacheException e) {
    return e.reason() == Reason.UNAVAILABLE
        && e.getMessage().toLowerCase().contains("no space left");
  }

  @ParameterizedTest(name = "sync={0}")
  @ValueSource(booleans = {false, true})
  void writesFailWhileTheIndexHasNoSpaceAndResumeOnceSpaceIsFreed(boolean sync) throws Exception {
    engine = open(sync);
    engine.createVolume(VOL, VOLUME_BYTES, CacheMode.WRITE_BACK, 0);
    Random rnd = new Random(sync ? 2 : 1);
    byte[] model = new byte[VOLUME_BYTES];
    for (int i = 0; i < 64; i++) {
      writeBlocks(rnd, model, 1);
    }

    fs.fillLeaving(0);
    // The index's log has its space reserved up front, a memtable's worth (8 MiB): writes go on
    // until the next log must be created. Large writes (256 index entries each) get there fast.
    CacheException refused = null;
    int acked = 0;
    int cacheFull = 0;
    for (; acked < 5_000 && refused == null; acked++) {
      try {
        writeBlocks(rnd, model, LARGE_WRITE_BLOCKS);
      } catch (CacheException e) {
        if (e.reason() == Reason.RESOURCE_EXHAUSTED && cacheFull < 100) {
          // The destager (an fsync per batch with sync) fell behind while the index still took
          // writes: backpressure, not the event this test waits for. The write applied nothing.
          cacheFull++;
          acked--;
          continue;
        }
        refused = e;
      }
    }
    assertThat(refused).as("a write with the data directory full").isNotNull();
    long failedAt = System.nanoTime();
    assertThat(refused.reason()).isEqualTo(Reason.UNAVAILABLE);
    assertThat(refused.getMessage())
        .as("what a client is told")
        .containsIgnoringCase("no space left")
        .contains("writes resume by themselves");
    assertThat(engine.store.kv.health().state()).isEqualTo(Health.State.NO_SPACE);
    assertThatThrownBy(() -> writeBlocks(rnd, model, 1))
        .isInstanceOfSatisfying(
            CacheException.class, e -> assertThat(namesNoSpace(e)).as(e.getMessage()).isTrue());
    assertReadsMatch(model, "while the index has no space");

    fs.freeFiller();
    long freedAt = System.nanoTime();
    int refusedRetries = 0;
    long deadline = freedAt + RECOVERY_DEADLINE_MS * 1_000_000;
    while (true) {
      try {
        writeBlocks(rnd, model, 1);
        break;
      } catch (CacheException e) {
        if (!namesNoSpace(e) || System.nanoTime() > deadline) {
          fail(
              "writes did not resume within %d ms of freeing space: %s; index health: %s",
              RECOVERY_DEADLINE_MS, e.getMessage(), engine.store.kv.health().detail());
        }
        refusedRetries++;
        Thread.sleep(50);
      }
    }
    long resumedAt = System.nanoTime();
    System.out.printf(
        "sync=%b: %d writes of 1 MiB acknowledged on the full file system, then writes refused %d ms;"
            + " back %d ms after space was freed (%d refused retries)%n",
        sync,
        acked - 1,
        (resumedAt - failedAt) / 1_000_000,
        (resumedAt - freedAt) / 1_000_000,
        refusedRetries);
    for (int i = 0; i < 64; i++) {
      writeBlocks(rnd, model, 1);
    }
    assertReadsMatch(model, "after the index recovered");

    engine.flush(VOL);
    // Quiet now: every slot in use holds a cached block. A refused write applied nothing, so it
    // must not keep its slots until the next start.
    long usedSlots = engine.store.slots.totalSlots() - engine.store.slots.freeSlots();
    long cachedBlocks =
        engine.store.volume(VOL).blocks.values().stream().filter(e -> !e.isZero()).count();
    assertThat(usedSlots).as("slots in use, against cached blocks").isEqualTo(cachedBlocks);
    assertFileEquals(new FileBackingStore(shared).fileOf(VOL), model, "destaged after recovery");
    engine.close();
    engine = open(sync);
    assertReadsMatch(model, "after a restart");
  }

  private void assertReadsMatch(byte[] model, String when) throws CacheException {
    byte[] actual = new byte[VOLUME_BYTES];
    for (int off = 0; off < VOLUME_BYTES; off += CacheEngine.MAX_IO_BYTES) {
      int n = Math.min(CacheEngine.MAX_IO_BYTES, VOLUME_BYTES - off);
      System.arraycopy(engine.read(VOL, off, n), 0, actual, off, n);
    }
    int diff = firstDiff(actual, model);
    if (diff >= 0) {
      fail(
          "%s: read differs from the acknowledged writes at byte %d (block %d)",
          when, diff, diff / BLOCK);
    }
  }
}
