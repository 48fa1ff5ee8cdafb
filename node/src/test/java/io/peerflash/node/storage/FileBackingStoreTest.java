package io.peerflash.node.storage;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.sun.nio.file.ExtendedOpenOption;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class FileBackingStoreTest {
  private static final int BLOCK = 4096;
  private static final long SIZE = 64L << 20;

  @TempDir Path dir;

  @Test
  void blockWritesGoAroundThePageCacheWhereTheFileSystemAllowsIt() throws IOException {
    Path probe = dir.resolve("probe");
    Files.write(probe, new byte[BLOCK]);
    assumeTrue(directIoWorks(probe), "this file system refuses O_DIRECT");
    try (FileBackingStore store = new FileBackingStore(dir.resolve("shared"))) {
      store.create("v", SIZE);
      assertThat(store.writesDirect("v")).isTrue();
    }
    try (FileBackingStore store = new FileBackingStore(dir.resolve("shared"), false)) {
      assertThat(store.writesDirect("v")).isFalse();
    }
  }

  @ParameterizedTest(name = "direct writes: {0}")
  @ValueSource(booleans = {true, false})
  void everyKindOfBufferAndRangeReadsBackWhatWasWritten(boolean direct) throws IOException {
    try (FileBackingStore store = new FileBackingStore(dir.resolve("shared"), direct)) {
      store.create("v", SIZE);
      Random random = new Random(7);
      byte[] expected = new byte[(int) SIZE];

      // An aligned direct buffer (what the destager passes), several blocks.
      ByteBuffer aligned = BackingStore.allocateAligned(8 * BLOCK);
      writeAndRecord(store, expected, 10L * BLOCK, fill(aligned, random));
      // A heap buffer (copied into an aligned one; the JDK's own copy broke later reads).
      writeAndRecord(store, expected, 100L * BLOCK, fill(ByteBuffer.allocate(3 * BLOCK), random));
      // A direct buffer at an odd address (a slice of a network buffer), larger than the bounce.
      ByteBuffer odd = ByteBuffer.allocateDirect(600 * 1024 + 1).position(1).slice();
      odd.limit(600 * 1024);
      writeAndRecord(store, expected, 1000L * BLOCK, fill(odd, random));
      // Not block-aligned at all: through the page cache.
      writeAndRecord(store, expected, 5L * BLOCK + 100, fill(ByteBuffer.allocate(1000), random));
      // Zeros over written data, aligned and not.
      writeZerosAndRecord(store, expected, 11L * BLOCK, 2L * BLOCK);
      writeZerosAndRecord(store, expected, 1001L * BLOCK + 7, 3000);
      store.sync("v");

      assertThat(readAll(store)).isEqualTo(expected);
      // And from the file itself, as the next owner would read it.
      assertThat(Files.readAllBytes(store.fileOf("v"))).isEqualTo(expected);
    }
  }

  @Test
  void aBufferedReadAfterADirectWriteSeesTheNewData() throws IOException {
    try (FileBackingStore store = new FileBackingStore(dir.resolve("shared"))) {
      store.create("v", SIZE);
      ByteBuffer first = fill(BackingStore.allocateAligned(BLOCK), new Random(1));
      store.write("v", 3L * BLOCK, first.duplicate());
      // The read puts the block in the page cache; the next direct write must not leave it stale.
      ByteBuffer cached = ByteBuffer.allocate(BLOCK);
      store.read("v", 3L * BLOCK, cached);
      assertThat(cached.flip()).isEqualTo(first);

      ByteBuffer second = fill(BackingStore.allocateAligned(BLOCK), new Random(2));
      store.write("v", 3L * BLOCK, second.duplicate());
      ByteBuffer again = ByteBuffer.allocate(BLOCK);
      store.read("v", 3L * BLOCK, again);
      assertThat(again.flip()).isEqualTo(second);
    }
  }

  @Test
  void anInterruptedWriterNeitherFailsNorBreaksTheFileForOthers() throws IOException {
    try (FileBackingStore store = new FileBackingStore(dir.resolve("shared"))) {
      store.create("v", SIZE);
      // An interrupted thread's I/O closes the channels for everyone (FileChannel semantics); the
      // store retries on fresh ones and keeps the interrupt for the caller.
      ByteBuffer first = fill(BackingStore.allocateAligned(BLOCK), new Random(3));
      Thread.currentThread().interrupt();
      try {
        store.write("v", 0, first.duplicate());
      } finally {
        assertThat(Thread.interrupted()).isTrue();
      }
      ByteBuffer second = fill(BackingStore.allocateAligned(BLOCK), new Random(4));
      store.write("v", BLOCK, second.duplicate());
      store.sync("v");
      ByteBuffer back = ByteBuffer.allocate(2 * BLOCK);
      store.read("v", 0, back);
      back.flip();
      assertThat(back.duplicate().limit(BLOCK)).isEqualTo(first);
      assertThat(back.position(BLOCK)).isEqualTo(second);
    }
  }

  @Test
  void aMissingFileIsNamedInTheError() throws IOException {
    try (FileBackingStore store = new FileBackingStore(dir.resolve("shared"))) {
      assertThatThrownBy(() -> store.write("gone", 0, BackingStore.allocateAligned(BLOCK)))
          .isInstanceOf(IOException.class)
          .hasMessageContaining("backing file of volume gone is missing");
    }
  }

  @Test
  void allocateAlignedGivesAFourKibAlignedDirectBuffer() {
    ByteBuffer b = BackingStore.allocateAligned(3 * BLOCK);
    assertThat(b.isDirect()).isTrue();
    assertThat(b.capacity()).isEqualTo(3 * BLOCK);
    assertThat(b.alignmentOffset(0, BLOCK)).isZero();
  }

  private static ByteBuffer fill(ByteBuffer b, Random random) {
    byte[] bytes = new byte[b.remaining()];
    random.nextBytes(bytes);
    b.duplicate().put(bytes);
    return b;
  }

  private static void writeAndRecord(
      FileBackingStore store, byte[] expected, long offset, ByteBuffer src) throws IOException {
    src.duplicate().get(expected, (int) offset, src.remaining());
    store.write("v", offset, src);
    assertThat(src.hasRemaining()).isFalse();
  }

  private static void writeZerosAndRecord(
      FileBackingStore store, byte[] expected, long offset, long length) throws IOException {
    java.util.Arrays.fill(expected, (int) offset, (int) (offset + length), (byte) 0);
    store.writeZeros("v", offset, length);
  }

  private static byte[] readAll(FileBackingStore store) throws IOException {
    ByteBuffer all = ByteBuffer.allocate((int) SIZE);
    store.read("v", 0, all);
    return all.array();
  }

  private static boolean directIoWorks(Path file) {
    try {
      FileChannel.open(file, StandardOpenOption.WRITE, ExtendedOpenOption.DIRECT).close();
      return true;
    } catch (IOException | UnsupportedOperationException e) {
      return false;
    }
  }
}
