package io.peerflash.node.cache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * How the cache file sits in the OS page cache. Since Linux 6.x a large buffered write leaves large
 * folios behind, and every later 4 KiB slot write into one walks all of its block buffers: on ext4
 * a slot write took 8.5 us at p50 instead of 2 us. The file's preallocation must therefore not
 * leave large folios for the slot writes to land in.
 *
 * <p>Read from the kernel itself: the file is mapped, and for each page {@code /proc/self/pagemap}
 * gives its frame and {@code /proc/kpageflags} whether that frame is part of a compound page (a
 * folio larger than 4 KiB). Needs root to read frame numbers. On a kernel that makes no large
 * folios for the file system under test there is nothing to see, and any preallocation passes; on
 * Linux 6.18 with ext4, the 1 MiB buffered writes of the earlier preallocation fail it.
 */
class CacheFilePageCacheTest {
  private static final int PAGE = 4096;
  private static final long COMPOUND_HEAD = 1L << 15;
  private static final long COMPOUND_TAIL = 1L << 16;
  private static final long PFN_MASK = (1L << 55) - 1;

  @TempDir Path dir;

  @Test
  void slotWritesAfterPreallocationLandInSmallFolios() throws IOException {
    assumeTrue(Files.isReadable(Path.of("/proc/kpageflags")), "needs /proc/kpageflags (root)");
    Path path = dir.resolve("cache.slots");
    int slots = 2048; // 8 MiB, eight of the 1 MiB writes the old preallocation made
    try (CacheFile cache = new CacheFile(path, (long) slots * CacheFile.SLOT_SIZE)) {
      ByteBuffer data = ByteBuffer.allocate(CacheFile.SLOT_SIZE);
      for (int slot = 0; slot < slots; slot++) {
        data.clear().putInt(0, slot);
        cache.write(slot, data); // as the engine's writes do: every slot once
      }
      assertThat(largeFolioPages(path, slots))
          .as("pages of the cache file in large folios")
          .isZero();
    }
  }

  /** Pages of the file's first {@code pages} that the page cache holds in compound pages. */
  private static long largeFolioPages(Path path, int pages) throws IOException {
    try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ);
        RandomAccessFile pagemap = new RandomAccessFile("/proc/self/pagemap", "r");
        RandomAccessFile kpageflags = new RandomAccessFile("/proc/kpageflags", "r")) {
      MappedByteBuffer map = ch.map(FileChannel.MapMode.READ_ONLY, 0, (long) pages * PAGE);
      long sum = 0;
      for (int i = 0; i < pages; i++) {
        sum += map.get(i * PAGE); // fault every page in: the mapping shows the cached folios
      }
      long start = mappingStart(path);
      long large = 0;
      long framesSeen = 0;
      for (int i = 0; i < pages; i++) {
        long entry = readLong(pagemap, (start / PAGE + i) * 8);
        long pfn = entry & PFN_MASK;
        if ((entry >>> 63) == 0 || pfn == 0) {
          continue;
        }
        framesSeen++;
        long flags = readLong(kpageflags, pfn * 8);
        if ((flags & (COMPOUND_HEAD | COMPOUND_TAIL)) != 0) {
          large++;
        }
      }
      assumeTrue(framesSeen > 0, "page frame numbers are hidden (needs CAP_SYS_ADMIN)");
      assertThat(sum).isNotNegative(); // keeps the faulting reads
      return large;
    }
  }

  /** Where the file is mapped in this process (its only mapping: made just before). */
  private static long mappingStart(Path path) throws IOException {
    String name = path.toRealPath().toString();
    List<String> lines = Files.readAllLines(Path.of("/proc/self/maps"));
    for (String line : lines) {
      if (line.endsWith(" " + name)) {
        return Long.parseUnsignedLong(line.substring(0, line.indexOf('-')), 16);
      }
    }
    throw new IllegalStateException("no mapping of " + name + " in /proc/self/maps");
  }

  private static long readLong(RandomAccessFile f, long at) throws IOException {
    byte[] b = new byte[8];
    f.seek(at);
    f.readFully(b);
    return ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).getLong();
  }
}
