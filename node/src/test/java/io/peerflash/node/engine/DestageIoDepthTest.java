package io.peerflash.node.engine;

import static io.peerflash.node.engine.EngineTestSupport.BLOCK;
import static io.peerflash.node.engine.EngineTestSupport.assertFileEquals;
import static io.peerflash.node.engine.EngineTestSupport.awaitTrue;
import static io.peerflash.node.engine.EngineTestSupport.pattern;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.storage.FileBackingStore;
import io.peerflash.util.Time;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** A destage batch's writes go out destage-io-depth at a time, never more, and all or nothing. */
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

  @ParameterizedTest(name = "depth {0}")
  @ValueSource(ints = {1, 4})
  void aBatchIsWrittenAtMostDepthRequestsAtOnce(int depth) throws Exception {
    open(depth);
    byte[] model = new byte[4 << 20];
    engine.createVolume(VOL, model.length, CacheMode.WRITE_BACK, 0);
    store.writeDelayMs = 5;
    writeScattered(model);

    engine.flush(VOL);

    assertFileEquals(files.fileOf(VOL), model, "after the flush");
    assertThat(store.maxWritesInFlight.get()).isBetween(1, depth);
    if (depth > 1) {
      assertThat(store.maxWritesInFlight.get())
          .as("64 requests of 5 ms each overlap")
          .isGreaterThan(1);
    }
    assertThat(engine.status().dirtyBytes()).isZero();
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
