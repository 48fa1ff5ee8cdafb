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
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
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

  // ---------------------------------------------------------------------------------------------
  // Open files

  private static ByteBuffer blockOf(long seed) {
    return fill(BackingStore.allocateAligned(BLOCK), new Random(seed));
  }

  private static ByteBuffer readBlock(FileBackingStore store, String volume, long block)
      throws IOException {
    ByteBuffer back = ByteBuffer.allocate(BLOCK);
    store.read(volume, block * BLOCK, back);
    return back.flip();
  }

  @Test
  void atMostMaxOpenFilesStayOpenWhileVolumesAreWrittenAndSyncedInTurn() throws IOException {
    int max = 4;
    int volumes = 20;
    try (FileBackingStore store = new FileBackingStore(dir.resolve("shared"), true, max)) {
      for (int i = 0; i < volumes; i++) {
        String v = "v" + i;
        store.create(v, 1 << 20);
        assertThat(store.openFiles()).as("after creating %s", v).isLessThanOrEqualTo(max);
        store.write(v, (long) i * BLOCK, blockOf(i).duplicate());
        // Opening this one closed the least recently used of the others (all synced).
        assertThat(store.openFiles()).as("after writing %s", v).isLessThanOrEqualTo(max);
        store.sync(v);
        assertThat(store.openFiles()).as("after syncing %s", v).isLessThanOrEqualTo(max);
      }
      for (int i = 0; i < volumes; i++) {
        String v = "v" + i;
        assertThat(readBlock(store, v, i)).as("block of %s", v).isEqualTo(blockOf(i));
        assertThat(readBlock(store, v, i + 1)).isEqualTo(ByteBuffer.allocate(BLOCK));
        assertThat(store.openFiles()).as("after reading %s", v).isLessThanOrEqualTo(max);
      }
      // A file closed and opened again still takes writes, and they read back after a sync.
      store.write("v0", 100L * BLOCK, blockOf(100).duplicate());
      store.sync("v0");
      assertThat(readBlock(store, "v0", 100)).isEqualTo(blockOf(100));
      assertThat(store.openFiles()).isLessThanOrEqualTo(max);
    }
    for (int i = 0; i < volumes; i++) {
      byte[] file = Files.readAllBytes(dir.resolve("shared").resolve("v" + i));
      assertThat(ByteBuffer.wrap(file, i * BLOCK, BLOCK)).isEqualTo(blockOf(i));
    }
  }

  @Test
  void filesWithUnsyncedWritesAreNotClosed() throws IOException {
    int max = 4;
    try (FileBackingStore store = new FileBackingStore(dir.resolve("shared"), true, max)) {
      for (int i = 0; i < 7; i++) {
        store.create("v" + i, 1 << 20);
      }
      for (int i = 0; i < 6; i++) {
        store.write("v" + i, 0, blockOf(i).duplicate());
        assertThat(store.openFiles()).as("after writing v%d unsynced", i).isEqualTo(i + 1);
      }
      // A read of one of them opens nothing new and closes nothing unsynced.
      assertThat(readBlock(store, "v0", 0)).isEqualTo(blockOf(0));
      assertThat(store.openFiles()).isEqualTo(6);
      for (int i = 0; i < 6; i++) {
        store.sync("v" + i);
      }
      // Touching another volume opens its file and closes idle synced ones down to the limit.
      assertThat(readBlock(store, "v6", 0)).isEqualTo(ByteBuffer.allocate(BLOCK));
      assertThat(store.openFiles()).isLessThanOrEqualTo(max);
      for (int i = 0; i < 6; i++) {
        assertThat(readBlock(store, "v" + i, 0)).isEqualTo(blockOf(i));
        assertThat(store.openFiles()).isLessThanOrEqualTo(max);
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Largest file

  private static List<String> names(Path directory) throws IOException {
    try (Stream<Path> s = Files.list(directory)) {
      return s.map(p -> p.getFileName().toString()).sorted().toList();
    }
  }

  @Test
  void theLargestFileIsFoundAndOneBlockMoreIsRefusedLeavingNothing() throws IOException {
    Path shared = dir.resolve("shared");
    try (FileBackingStore store = new FileBackingStore(shared)) {
      long max = store.maxObjectBytes();
      assertThat(max).isPositive();
      assertThat(max % BLOCK).isZero();
      assertThat(store.maxObjectBytes()).isEqualTo(max);
      assertThat(names(shared)).as("the probe leaves nothing").isEmpty();
      store.create("max", max); // sparse: takes no space
      assertThat(store.size("max")).isEqualTo(max);
      if (max < FileBackingStore.PROBE_CEILING_BYTES) {
        // A file system with a limit (ext4: 16 TiB): one block more is refused.
        assertThatThrownBy(() -> store.create("over", max + BLOCK)).isInstanceOf(IOException.class);
        assertThat(store.size("over")).isEqualTo(-1);
      }
      assertThat(names(shared)).containsExactly("max");
      // The largest file takes a write at its last block.
      store.write("max", max - BLOCK, blockOf(1).duplicate());
      store.sync("max");
      ByteBuffer back = ByteBuffer.allocate(BLOCK);
      store.read("max", max - BLOCK, back);
      assertThat(back.flip()).isEqualTo(blockOf(1));
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Directory fsync

  /** Records directory fsyncs; fails them while {@link #failing}. */
  private static final class RecordingDirectorySync implements FileBackingStore.DirectorySync {
    final List<Path> synced = new ArrayList<>();
    volatile boolean failing;

    @Override
    public void sync(Path directory) throws IOException {
      if (failing) {
        throw new IOException("injected directory fsync failure");
      }
      synced.add(directory);
    }

    List<Path> take() {
      List<Path> out = new ArrayList<>(synced);
      synced.clear();
      return out;
    }
  }

  @Test
  void everyNameChangeFsyncsTheDirectory() throws IOException {
    Path shared = dir.resolve("shared");
    RecordingDirectorySync dirSync = new RecordingDirectorySync();
    try (FileBackingStore store = new FileBackingStore(shared, true, 4, dirSync)) {
      store.create("v", 1 << 20);
      assertThat(dirSync.take()).as("create").containsExactly(shared);
      store.write("v", 0, blockOf(1).duplicate());
      store.sync("v");
      assertThat(dirSync.take()).as("a write and its sync change no name").isEmpty();
      store.retire("v", 7);
      assertThat(dirSync.take()).as("retire").containsExactly(shared);
      assertThat(store.retired()).containsExactly(7L);
      store.purgeRetired(7);
      assertThat(dirSync.take()).as("purge").containsExactly(shared);
      assertThat(names(shared)).isEmpty();
      store.create("w", 1 << 20);
      dirSync.take();
      store.delete("w");
      assertThat(dirSync.take()).as("delete").containsExactly(shared);
    }
  }

  @Test
  void aFailedDirectoryFsyncFailsTheNameChange() throws IOException {
    Path shared = dir.resolve("shared");
    RecordingDirectorySync dirSync = new RecordingDirectorySync();
    try (FileBackingStore store = new FileBackingStore(shared, true, 4, dirSync)) {
      store.create("v", 1 << 20);
      store.create("x", 1 << 20);

      dirSync.failing = true;
      // A create that is not durable fails and, as every failed create, leaves nothing behind
      // (else a retry would find the name taken).
      assertThatThrownBy(() -> store.create("w", 1 << 20))
          .isInstanceOf(IOException.class)
          .hasMessageContaining("injected directory fsync failure");
      assertThat(store.size("w")).isEqualTo(-1);

      assertThatThrownBy(() -> store.retire("v", 7))
          .isInstanceOf(IOException.class)
          .hasMessageContaining("injected directory fsync failure");
      assertThatThrownBy(() -> store.purgeRetired(7))
          .isInstanceOf(IOException.class)
          .hasMessageContaining("injected directory fsync failure");
      assertThatThrownBy(() -> store.delete("x"))
          .isInstanceOf(IOException.class)
          .hasMessageContaining("injected directory fsync failure");

      // Once the directory syncs again, the same steps succeed.
      dirSync.failing = false;
      store.create("w", 1 << 20);
      store.purgeRetired(7);
      assertThat(store.retired()).isEmpty();
      assertThat(names(shared)).containsExactly("w");
    }
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
