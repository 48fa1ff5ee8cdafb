package io.peerflash.node.engine;

import static io.peerflash.node.engine.EngineTestSupport.BLOCK;
import static io.peerflash.node.engine.EngineTestSupport.assertFileEquals;
import static io.peerflash.node.engine.EngineTestSupport.pattern;
import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.storage.FileBackingStore;
import io.peerflash.node.storage.ForwardingBackingStore;
import io.peerflash.util.Time;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Dirty data that is dense on the volume leaves in long writes even when it was written in an order
 * that scatters it by age: each batch takes the oldest block and its dirty neighbours.
 */
class DestageCoalescingTest {
  private static final String VOL = "vol";

  @TempDir Path tmp;
  private CacheEngine engine;

  @AfterEach
  void tearDown() {
    if (engine != null) {
      engine.close();
    }
  }

  @Test
  void interleavedStreamsAreDestagedAsOneWritePerBatch() throws Exception {
    List<long[]> writes = new CopyOnWriteArrayList<>();
    FileBackingStore files = new FileBackingStore(tmp.resolve("shared"));
    ForwardingBackingStore recording =
        new ForwardingBackingStore(files) {
          @Override
          public void write(String volume, long offset, ByteBuffer src) throws IOException {
            writes.add(new long[] {offset, src.remaining()});
            super.write(volume, offset, src);
          }
        };
    // Batches of 16 blocks, nothing destaged before the flush.
    engine =
        CacheEngine.open(
            EngineConfig.defaults(tmp.resolve("data"), 16L << 20)
                .withDestageBatchBytes(16 * BLOCK)
                .withDestageIoDepth(4),
            recording,
            Time.SYSTEM);
    engine.start();
    byte[] model = new byte[4 << 20];
    engine.createVolume(VOL, model.length, CacheMode.WRITE_BACK, 0);
    // Four streams of 16 blocks, written round-robin: by age alone every batch of 16 would hold
    // four blocks of each stream, four writes of four blocks each.
    long[] streamStart = {0, 256, 512, 768};
    for (int i = 0; i < 16; i++) {
      for (long start : streamStart) {
        long block = start + i;
        byte[] data = pattern((int) block, BLOCK);
        engine.write(VOL, block * BLOCK, ByteBuffer.wrap(data));
        System.arraycopy(data, 0, model, (int) (block * BLOCK), BLOCK);
      }
    }

    engine.flush(VOL);

    assertThat(writes).as("one write per stream").hasSize(4);
    assertThat(writes.stream().mapToLong(w -> w[1]).distinct().toArray())
        .containsExactly(16L * BLOCK);
    assertThat(writes.stream().mapToLong(w -> w[0] / BLOCK).sorted().toArray())
        .containsExactly(streamStart);
    assertFileEquals(files.fileOf(VOL), model, "after the flush");
    assertThat(engine.status().dirtyBytes()).isZero();
  }
}
