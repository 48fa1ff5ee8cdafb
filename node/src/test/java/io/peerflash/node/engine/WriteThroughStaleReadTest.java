package io.peerflash.node.engine;

import static io.peerflash.node.engine.EngineTestSupport.BLOCK;
import static io.peerflash.node.engine.EngineTestSupport.entryOf;
import static io.peerflash.node.engine.EngineTestSupport.pattern;
import static io.peerflash.node.engine.EngineTestSupport.readFile;
import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.node.index.BlockEntry;
import io.peerflash.node.index.FaultyKeyValueStorage;
import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.storage.FileBackingStore;
import io.peerflash.util.Time;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A write-through write replaces a cached clean copy: when recording the new copy in the index
 * fails after shared storage took the new bytes, the old copy must not be served again.
 */
class WriteThroughStaleReadTest {
  private static final long MIB = 1 << 20;

  @TempDir Path tmp;
  private FileBackingStore store;
  private FaultyKeyValueStorage index;
  private CacheEngine engine;

  /** The real local storage, with the index under {@link FaultyKeyValueStorage}. */
  private final LocalStorageOpener local = FaultyKeyValueStorage.opener(opened -> index = opened);

  @AfterEach
  void tearDown() {
    if (engine != null) {
      engine.close();
    }
  }

  private void open(boolean sync) throws IOException {
    store = new FileBackingStore(tmp.resolve("shared"));
    engine =
        CacheEngine.open(
            EngineConfig.defaults(tmp.resolve("data"), 8 * MIB).withSync(sync),
            store,
            Time.SYSTEM,
            local);
    engine.start();
  }

  @ParameterizedTest(name = "sync={0}")
  @ValueSource(booleans = {false, true})
  void aFailedCommitOfTheNewCopyNeverBringsTheOldOneBack(boolean sync) throws Exception {
    open(sync);
    engine.createVolume("v", MIB, CacheMode.WRITE_THROUGH, 0);
    byte[] a = pattern(1, BLOCK);
    byte[] b = pattern(2, BLOCK);
    engine.write("v", 0, ByteBuffer.wrap(a));
    BlockEntry cachedA = entryOf(engine, "v", 0);
    assertThat(cachedA).as("write-through caches a clean copy").isNotNull();
    assertThat(cachedA.dirty()).isFalse();
    assertThat(engine.read("v", 0, BLOCK)).isEqualTo(a);

    index.failNextBlockPut();
    // Shared storage holds B (synced) before the new copy's commit fails: the write is durable.
    engine.write("v", 0, ByteBuffer.wrap(b));
    assertThat(index.failedWrites()).as("the injected failure was hit").isEqualTo(1);
    assertThat(index.failedOn()).as("by the write's own commit").isSameAs(Thread.currentThread());
    assertThat(readFile(store.fileOf("v"), 0, BLOCK)).isEqualTo(b);

    for (int i = 0; i < 3; i++) {
      assertThat(engine.read("v", 0, BLOCK)).as("read %d of block 0", i).isEqualTo(b);
    }
    assertThat(engine.read("v", 512, 1024)).isEqualTo(Arrays.copyOfRange(b, 512, 1536));
    assertThat(engine.read("v", 0, 2 * BLOCK))
        .isEqualTo(Arrays.copyOf(b, 2 * BLOCK)); // block 1 was never written

    engine.close();
    engine = null;
    open(sync);
    assertThat(engine.read("v", 0, BLOCK)).as("after a restart").isEqualTo(b);
    assertThat(engine.read("v", 0, BLOCK)).as("again after a restart").isEqualTo(b);
  }

  @ParameterizedTest(name = "sync={0}")
  @ValueSource(booleans = {false, true})
  void aFailedCommitOfAPartialWriteServesTheMergedBlock(boolean sync) throws Exception {
    open(sync);
    engine.createVolume("v", MIB, CacheMode.WRITE_THROUGH, 0);
    byte[] a = pattern(3, BLOCK);
    byte[] part = pattern(4, 1024);
    engine.write("v", 0, ByteBuffer.wrap(a));
    assertThat(entryOf(engine, "v", 0)).isNotNull();

    index.failNextBlockPut();
    engine.write("v", 1024, ByteBuffer.wrap(part));
    assertThat(index.failedWrites()).isEqualTo(1);
    assertThat(index.failedOn()).isSameAs(Thread.currentThread());
    byte[] merged = a.clone();
    System.arraycopy(part, 0, merged, 1024, part.length);
    assertThat(engine.read("v", 0, BLOCK)).isEqualTo(merged);

    engine.close();
    engine = null;
    open(sync);
    assertThat(engine.read("v", 0, BLOCK)).as("after a restart").isEqualTo(merged);
  }
}
