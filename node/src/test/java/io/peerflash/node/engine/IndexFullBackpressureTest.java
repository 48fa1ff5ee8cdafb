package io.peerflash.node.engine;

import static io.peerflash.node.engine.EngineTestSupport.BLOCK;
import static io.peerflash.node.engine.EngineTestSupport.readFile;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.fail;

import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.index.FaultyKeyValueStorage;
import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.storage.FileBackingStore;
import io.peerflash.util.Time;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A write that waits for space while the index takes no writes: the destager can copy dirty blocks
 * to shared storage but cannot mark them clean, so no space comes back until the index does. The
 * writer is told that (UNAVAILABLE, naming the index's problem), not "cache full", and writes go on
 * once the index takes writes again.
 */
class IndexFullBackpressureTest {
  private static final String VOL = "vol";
  private static final long MIB = 1 << 20;
  private static final long TIMEOUT_MS = 300;
  private static final long RECOVERY_DEADLINE_MS = 15_000;

  @TempDir Path tmp;
  private FaultyKeyValueStorage index;
  private CacheEngine engine;

  @AfterEach
  void tearDown() {
    if (engine != null) {
      engine.close();
    }
  }

  @Test
  void aWriteWaitingForSpaceTheIndexCannotFreeIsToldAboutTheIndex() throws Exception {
    FileBackingStore files = new FileBackingStore(tmp.resolve("shared"));
    FaultyBackingStore shared = new FaultyBackingStore(files);
    LocalStorageOpener local = FaultyKeyValueStorage.opener(opened -> index = opened);
    engine =
        CacheEngine.open(
            EngineConfig.defaults(tmp.resolve("data"), MIB).withBackpressureTimeoutMs(TIMEOUT_MS),
            shared,
            Time.SYSTEM,
            local);
    engine.start();
    engine.createVolume(VOL, 4 * MIB, CacheMode.WRITE_BACK, 0);

    // Fill the cache with dirty blocks while shared storage holds every destage write.
    shared.holdWrites = true;
    int blocks = 0;
    CacheException cacheFull = null;
    while (cacheFull == null) {
      try {
        engine.write(VOL, (long) blocks * BLOCK, ByteBuffer.wrap(pattern(blocks)));
        blocks++;
      } catch (CacheException e) {
        cacheFull = e;
      }
    }
    assertThat(cacheFull.reason())
        .as("with the index working: " + cacheFull.getMessage())
        .isEqualTo(Reason.RESOURCE_EXHAUSTED);
    assertThat(cacheFull.getMessage()).contains("cache full");
    assertThat(blocks).as("blocks acknowledged").isPositive();

    // The index stops taking writes; the destager copies blocks out but cannot mark them clean.
    index.setFull(true);
    shared.holdWrites = false;
    int next = blocks;
    assertThatThrownBy(() -> engine.write(VOL, (long) next * BLOCK, ByteBuffer.wrap(pattern(next))))
        .isInstanceOfSatisfying(
            CacheException.class,
            e -> {
              assertThat(e.reason()).as(e.getMessage()).isEqualTo(Reason.UNAVAILABLE);
              assertThat(e.getMessage())
                  .contains("write-backpressure-timeout-ms")
                  .contains("index takes no writes")
                  .contains("no space left on device");
            });
    assertThat(index.refusedAsFull()).as("the destager tried to mark blocks clean").isPositive();

    // Space comes back with the index, with no restart.
    index.setFull(false);
    long deadline = System.nanoTime() + RECOVERY_DEADLINE_MS * 1_000_000;
    while (true) {
      try {
        engine.write(VOL, (long) next * BLOCK, ByteBuffer.wrap(pattern(next)));
        break;
      } catch (CacheException e) {
        if (System.nanoTime() > deadline) {
          fail("no write took within %d ms of the index recovering: %s", RECOVERY_DEADLINE_MS, e);
        }
      }
    }
    engine.flush(VOL);
    for (int b = 0; b <= next; b++) {
      assertThat(engine.read(VOL, (long) b * BLOCK, BLOCK)).as("block %d", b).isEqualTo(pattern(b));
    }
    byte[] onShared = readFile(files.fileOf(VOL), 0, (next + 1) * BLOCK);
    for (int b = 0; b <= next; b++) {
      assertThat(Arrays.copyOfRange(onShared, b * BLOCK, (b + 1) * BLOCK))
          .as("block %d on shared storage", b)
          .isEqualTo(pattern(b));
    }
  }

  private static byte[] pattern(int block) {
    byte[] b = new byte[BLOCK];
    Arrays.fill(b, (byte) (block * 31 + 7));
    b[0] = (byte) block;
    b[1] = (byte) (block >> 8);
    return b;
  }
}
