package io.peerflash.node.engine;

import static io.peerflash.node.engine.EngineTestSupport.BLOCK;
import static io.peerflash.node.engine.EngineTestSupport.awaitTrue;
import static io.peerflash.node.engine.EngineTestSupport.pattern;
import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.engine.VolumeStatusView.Health;
import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.storage.FileBackingStore;
import io.peerflash.util.Time;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * One volume cannot stop all: a volume whose shared storage fails fills its share of the cache
 * ({@code volume-dirty-share}), not the whole cache, and the other volumes' writes go on.
 */
class DirtyShareTest {
  private static final long CACHE = 4L << 20; // 1024 slots
  private static final int SLOTS = (int) (CACHE / BLOCK);
  private static final long BACKPRESSURE_MS = 300;

  @TempDir Path tmp;
  private FaultyBackingStore store;
  private CacheEngine engine;

  private void open(double share) throws Exception {
    EngineConfig config =
        EngineConfig.defaults(tmp.resolve("data"), CACHE)
            .withVolumeDirtyShare(share)
            .withBackpressureTimeoutMs(BACKPRESSURE_MS)
            .withStorageTimeouts(100, 30_000)
            .withRetryBackoff(20, 200);
    store = new FaultyBackingStore(new FileBackingStore(tmp.resolve("shared")));
    engine = CacheEngine.open(config, store, Time.SYSTEM);
    engine.start();
  }

  @AfterEach
  void tearDown() {
    if (engine != null) {
      engine.close();
    }
  }

  private Health health(String volume) {
    try {
      return engine.volumeStatus(volume).health();
    } catch (CacheException e) {
      throw new IllegalStateException(e);
    }
  }

  private static ByteBuffer block(int seed) {
    return ByteBuffer.wrap(pattern(seed, BLOCK));
  }

  @Test
  void aVolumeWhoseStorageFailsFillsOnlyItsShareAndTheOthersGoOn() throws Exception {
    open(0.5);
    engine.createVolume("bad", 16L << 20, CacheMode.WRITE_BACK, 0);
    engine.createVolume("good", 16L << 20, CacheMode.WRITE_BACK, 0);
    store.failRange("bad", 0, 16L << 20); // every destage of "bad" fails

    CacheException refused = null;
    for (int i = 0; i < 2 * SLOTS && refused == null; i++) {
      try {
        engine.write("bad", (long) i * BLOCK, block(i));
      } catch (CacheException e) {
        refused = e;
      }
    }
    assertThat(refused).as("writes to the failing volume stop at its share").isNotNull();
    assertThat(refused.reason()).isEqualTo(Reason.RESOURCE_EXHAUSTED);
    assertThat(refused.getMessage()).contains("volume-dirty-share").contains("'bad'");
    long badDirty = engine.volumeStatus("bad").dirtyBytes() / BLOCK;
    assertThat(badDirty)
        .as("dirty blocks of the failing volume")
        .isLessThanOrEqualTo(SLOTS * 3L / 4);

    // The other volume writes three caches' worth: every write acknowledged.
    for (int i = 0; i < 3 * SLOTS; i++) {
      engine.write("good", (long) (i % (4 * SLOTS)) * BLOCK, block(100_000 + i));
    }
    engine.flush("good");
    assertThat(engine.read("good", (long) (3 * SLOTS - 1) * BLOCK, BLOCK))
        .isEqualTo(pattern(100_000 + 3 * SLOTS - 1, BLOCK));
    awaitTrue(
        10_000,
        "the failing volume to show STORAGE_FAILING",
        () -> health("bad") == Health.STORAGE_FAILING);
    assertThat(engine.volumeStatus("good").health()).isEqualTo(Health.HEALTHY);

    // Its storage back, the failing volume drains and takes writes again.
    store.heal();
    engine.flush("bad");
    engine.write("bad", 0, block(7));
    assertThat(engine.read("bad", 0, BLOCK)).isEqualTo(pattern(7, BLOCK));
  }

  @Test
  void aHealthyVolumeAloneMayUseMoreThanItsShare() throws Exception {
    open(0.25);
    engine.createVolume("solo", 16L << 20, CacheMode.WRITE_BACK, 0);
    // Destage is held (slow storage, not failing): dirty data piles up past the share.
    store.holdWrites = true;
    try {
      for (int i = 0; i < SLOTS / 2; i++) {
        engine.write("solo", (long) i * BLOCK, block(i));
      }
      assertThat(engine.volumeStatus("solo").dirtyBytes() / BLOCK)
          .isGreaterThan((long) (0.25 * SLOTS));
    } finally {
      store.holdWrites = false;
    }
    engine.flush("solo");
  }
}
