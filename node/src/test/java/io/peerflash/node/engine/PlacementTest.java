package io.peerflash.node.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.index.VolumeInfo;
import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.storage.FileBackingStore;
import io.peerflash.replication.data.BlockCopy;
import io.peerflash.util.ManualTime;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A write resolves its placement once ({@link ReplicationPort#place}) and acts on that one value:
 * its serve check and the targets of its copies come from the same resolution, on the blocking and
 * the non-blocking path alike. The port here numbers its placements, standing for versions of the
 * cluster map.
 */
class PlacementTest {
  private static final int BLOCK = CacheEngine.BLOCK;

  @TempDir Path dir;
  private CacheEngine engine;
  private final AtomicInteger placements = new AtomicInteger();
  private volatile boolean serving = true;
  private volatile boolean admitting = true;

  /** Which placement (by number) sent each write's copies. */
  private final List<Integer> copiesSentBy = new CopyOnWriteArrayList<>();

  private final ReplicationPort port =
      new ReplicationPort() {
        @Override
        public Placement place(VolumeInfo volume) {
          int number = placements.incrementAndGet();
          boolean serves = serving;
          boolean admits = admitting;
          return new Placement() {
            @Override
            public boolean mayServe() {
              return serves;
            }

            @Override
            public boolean admitsNow() {
              return admits;
            }

            @Override
            public CompletableFuture<Void> replicate(VolumeInfo v, List<BlockCopy> blocks) {
              copiesSentBy.add(number);
              return CompletableFuture.completedFuture(null);
            }
          };
        }

        @Override
        public void released(VolumeInfo volume, long[] blocks, long[] seqs) {}
      };

  @BeforeEach
  void open() throws Exception {
    engine =
        CacheEngine.open(
            EngineConfig.defaults(dir.resolve("data"), 8 << 20),
            new FileBackingStore(dir.resolve("shared")),
            new ManualTime());
    engine.setReplicationPort(port);
    engine.start();
    engine.createVolume("v", 1 << 20, CacheMode.WRITE_BACK, 1);
  }

  @AfterEach
  void close() {
    engine.close();
  }

  @Test
  void aBlockingWriteIsPlacedOnceAndCopiesWhereThatPlacementSays() throws Exception {
    engine.write("v", 0, ByteBuffer.allocate(2 * BLOCK));
    assertThat(placements.get()).isEqualTo(1);
    assertThat(copiesSentBy).containsExactly(1);
  }

  @Test
  void aSubmittedWriteIsPlacedOnceAndCopiesWhereThatPlacementSays() throws Exception {
    engine.submitWrite("v", 0, ByteBuffer.allocate(BLOCK), Runnable::run).get(10, TimeUnit.SECONDS);
    assertThat(placements.get()).isEqualTo(1);
    assertThat(copiesSentBy).containsExactly(1);
  }

  @Test
  void aPlacementThatMayNotServeRefusesTheWriteBeforeAnyCopyLeaves() {
    serving = false;
    assertThatThrownBy(() -> engine.write("v", 0, ByteBuffer.allocate(BLOCK)))
        .isInstanceOfSatisfying(
            CacheException.class, e -> assertThat(e.reason()).isEqualTo(Reason.UNAVAILABLE))
        .hasMessageContaining("lease");
    assertThat(placements.get()).isEqualTo(1);
    assertThat(copiesSentBy).isEmpty();
  }

  @Test
  void aWriteThatMustNotWaitAndIsNotAdmittedTakesTheBlockingPathAndItsNewPlacement()
      throws Exception {
    admitting = false; // the first placement does not admit; the blocking path admits, then places
    engine
        .submitWrite(
            "v",
            0,
            ByteBuffer.allocate(BLOCK),
            task -> {
              admitting = true;
              task.run();
            })
        .get(10, TimeUnit.SECONDS);
    assertThat(placements.get()).isEqualTo(2);
    assertThat(copiesSentBy).containsExactly(2);
  }
}
