package io.peerflash.node.engine;

import static io.peerflash.node.engine.BlockStoreFixture.BLOCK;
import static io.peerflash.node.engine.BlockStoreFixture.content;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.peerflash.node.index.BlockEntry;
import io.peerflash.node.index.VolumeInfo;
import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.index.VolumeInfo.Role;
import io.peerflash.replication.data.BlockCopy;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Re-protection's source side on a block store of its own: every dirty block (and only dirty ones)
 * goes to the new replica in block order, in batches, with its sequence and data (a zero block as
 * no data), at most a window of batches unacknowledged; a batch the replica does not take fails the
 * copy; only an owner copies.
 */
class DirtyCopierTest {
  @TempDir Path dir;
  private BlockStoreFixture f;
  private DirtyCopier copier;
  private CachedVolume v;

  /** A sink that records what it is sent and acknowledges each batch at once (or never). */
  private static final class Sink implements CopySink {
    final List<List<BlockCopy>> batches = new ArrayList<>();
    long begunBelow = -1;
    boolean acks = true;
    RuntimeException failWith;

    @Override
    public void begin(long resetBelowSeq) {
      begunBelow = resetBelowSeq;
    }

    @Override
    public CompletableFuture<Void> send(List<BlockCopy> blocks) {
      batches.add(List.copyOf(blocks));
      if (failWith != null) {
        return CompletableFuture.failedFuture(failWith);
      }
      return acks ? CompletableFuture.completedFuture(null) : new CompletableFuture<>();
    }
  }

  @BeforeEach
  void open() throws IOException {
    f = BlockStoreFixture.plain(dir, 8 << 20);
    copier = new DirtyCopier(f.store);
    v = f.volume(1, "v", 1024L * BLOCK);
  }

  @AfterEach
  void close() throws IOException {
    f.close();
  }

  @Test
  void everyDirtyBlockGoesInBlockOrderInBatchesAndCleanOnesStayBehind() throws Exception {
    // 100 dirty blocks written in reverse order, a clean one, a trimmed (zero) one.
    for (long block = 100; block >= 1; block--) {
      f.install(v, block, f.written(v, (int) block, true));
    }
    f.install(v, 200, f.written(v, 200, false));
    f.install(v, 300, new BlockEntry(BlockEntry.NO_SLOT, v.nextSeq.getAndIncrement(), 0, true, 0));
    long next = v.nextSeq.get();
    Sink sink = new Sink();
    List<Long> progress = new ArrayList<>();

    long copied = copier.copyDirtyBlocks("v", sink, 5_000, progress::add);

    assertThat(sink.begunBelow).as("the replica drops copies older than now").isEqualTo(next);
    assertThat(sink.batches).hasSize(2);
    assertThat(sink.batches.get(0)).hasSize(64);
    List<BlockCopy> all = sink.batches.stream().flatMap(List::stream).toList();
    assertThat(all).extracting(BlockCopy::block).isSorted().doesNotContain(200L).contains(300L);
    assertThat(all).hasSize(101);
    for (BlockCopy c : all) {
      BlockEntry e = v.blocks.get(c.block());
      assertThat(c.seq()).isEqualTo(e.seq());
      if (c.block() == 300) {
        assertThat(c.data()).as("a zero block travels without data").isNull();
      } else {
        assertThat(c.data()).isEqualTo(content((int) c.block()));
      }
    }
    assertThat(copied).isEqualTo(101L * BLOCK);
    assertThat(progress).containsExactly(64L * BLOCK, 101L * BLOCK);
  }

  @Test
  void atMostAWindowOfBatchesIsUnacknowledgedAndALateOneFailsTheCopy() throws Exception {
    for (long block = 0; block < 10 * 64; block++) {
      f.install(v, block, f.written(v, (int) block, true));
    }
    Sink sink = new Sink();
    sink.acks = false;
    assertThatThrownBy(() -> copier.copyDirtyBlocks("v", sink, 50, bytes -> {}))
        .isInstanceOf(CacheException.class)
        .hasMessageContaining("the new replica did not take a batch")
        .satisfies(
            e ->
                assertThat(((CacheException) e).reason())
                    .isEqualTo(CacheException.Reason.UNAVAILABLE));
    assertThat(sink.batches).as("sent before waiting for the first ack").hasSize(8);
  }

  @Test
  void aBatchTheReplicaRefusesFailsTheCopy() throws Exception {
    f.install(v, 0, f.written(v, 1, true));
    Sink sink = new Sink();
    sink.failWith = new IllegalStateException("replica full");
    assertThatThrownBy(() -> copier.copyDirtyBlocks("v", sink, 5_000, bytes -> {}))
        .isInstanceOf(CacheException.class)
        .hasMessageContaining("replica full");
  }

  @Test
  void onlyAnOwnerCopies() {
    CachedVolume replica =
        new CachedVolume(new VolumeInfo(2, "r", 1 << 20, CacheMode.WRITE_BACK, 0, Role.REPLICA), 1);
    f.store.register(replica);
    assertThatThrownBy(() -> copier.copyDirtyBlocks("r", new Sink(), 5_000, bytes -> {}))
        .isInstanceOf(CacheException.class)
        .hasMessageContaining("is not owned by this node");
  }
}
