package io.peerflash.node.engine;

import static io.peerflash.node.engine.EngineTestSupport.BLOCK;
import static io.peerflash.node.engine.EngineTestSupport.pattern;
import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.storage.FileBackingStore;
import io.peerflash.util.Time;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** With sync writes, concurrent writers share fsyncs. */
class GroupCommitTest {
  private static final int THREADS = 16;
  private static final int PER_THREAD = 48;

  @TempDir Path tmp;
  private CacheEngine engine;

  @AfterEach
  void tearDown() {
    if (engine != null) {
      engine.close();
    }
  }

  private void open(EngineConfig config) throws Exception {
    engine = CacheEngine.open(config, new FileBackingStore(tmp.resolve("shared")), Time.SYSTEM);
    engine.start();
  }

  @Test
  void concurrentSyncedWritesShareCommitGroups() throws Exception {
    EngineConfig config = EngineConfig.defaults(tmp.resolve("data"), 16L << 20).withSync(true);
    open(config);
    engine.createVolume("vol", 8L << 20, CacheMode.WRITE_BACK, 0);
    long groups0 = engine.status().commitGroups();
    long batches0 = engine.status().commitBatches();

    CountDownLatch go = new CountDownLatch(1);
    ExecutorService pool = Executors.newFixedThreadPool(THREADS);
    List<Future<?>> futures = new ArrayList<>();
    for (int t = 0; t < THREADS; t++) {
      int me = t;
      futures.add(
          pool.submit(
              () -> {
                go.await();
                for (int i = 0; i < PER_THREAD; i++) {
                  long block = (long) i * THREADS + me;
                  engine.write("vol", block * BLOCK, ByteBuffer.wrap(pattern(block, BLOCK)));
                }
                return null;
              }));
    }
    go.countDown();
    try {
      for (Future<?> f : futures) {
        f.get(60, TimeUnit.SECONDS); // every write acknowledged
      }
    } finally {
      pool.shutdownNow();
    }
    NodeStatusView st = engine.status();
    long groups = st.commitGroups() - groups0;
    long batches = st.commitBatches() - batches0;
    System.out.printf("commit groups=%d batches=%d%n", groups, batches);
    assertThat(st.syncWrites()).isTrue();
    assertThat(batches).isEqualTo((long) THREADS * PER_THREAD);
    assertThat(groups).as("groups share fsyncs (batches=%d)", batches).isLessThan(batches * 3 / 4);

    engine.close();
    engine = null;
    open(config);
    for (long block = 0; block < (long) THREADS * PER_THREAD; block++) {
      assertThat(engine.read("vol", block * BLOCK, BLOCK))
          .as("block %d", block)
          .isEqualTo(pattern(block, BLOCK));
    }
    assertThat(engine.volumeStatus("vol").dirtyBytes()).isPositive();
  }
}
