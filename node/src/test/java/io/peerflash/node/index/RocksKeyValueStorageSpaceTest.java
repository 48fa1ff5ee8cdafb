package io.peerflash.node.index;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.fail;

import io.peerflash.node.index.KeyValueStorage.Batch;
import io.peerflash.node.index.KeyValueStorage.Health;
import io.peerflash.node.index.KeyValueStorage.SpaceException;
import io.peerflash.node.index.KeyValueStorage.Table;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.Random;
import java.util.function.BooleanSupplier;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.rocksdb.RocksDBException;
import org.rocksdb.Status;

/**
 * The index on a file system that fills up: writes fail with {@link SpaceException} while it is
 * full and work again, without a reopen, once space is freed; nothing acknowledged is lost.
 */
class RocksKeyValueStorageSpaceTest {
  private static final int VALUE_BYTES = 1024;
  private static final int BATCH_ENTRIES = 64;
  private static final long MIB = 1 << 20;

  /** RocksDB checks for free space every 5 s; three checks are plenty. */
  private static final long RECOVERY_DEADLINE_MS =
      3 * RocksKeyValueStorage.SPACE_POLL_SECONDS * 1000L;

  private static Tmpfs fs;
  @TempDir Path crashCopies;
  private RocksKeyValueStorage kv;

  @BeforeAll
  static void mount() throws Exception {
    fs = Tmpfs.mount("index-space", 64);
  }

  @AfterAll
  static void unmount() throws Exception {
    if (fs != null) {
      fs.close();
    }
  }

  @AfterEach
  void cleanUp() throws IOException {
    if (kv != null) {
      kv.close();
      kv = null;
    }
    fs.freeFiller();
    deleteTree(indexDir());
  }

  private static Path indexDir() {
    return fs.dir().resolve("index");
  }

  private static byte[] key(long i) {
    return ByteBuffer.allocate(8).putLong(i).array();
  }

  /** Incompressible and different for every key, so each entry costs its full size on disk. */
  private static byte[] value(long i) {
    byte[] v = new byte[VALUE_BYTES];
    new Random(i * 0x9E3779B97F4A7C15L + 1).nextBytes(v);
    return v;
  }

  private static Batch entries(long first, int n) {
    Batch b = new Batch();
    for (long i = first; i < first + n; i++) {
      b.put(Table.BLOCKS, key(i), value(i));
    }
    return b;
  }

  private static long logFiles() throws IOException {
    try (Stream<Path> files = Files.list(indexDir())) {
      return files.filter(p -> p.getFileName().toString().endsWith(".log")).count();
    }
  }

  private static long sstFiles() throws IOException {
    try (Stream<Path> files = Files.list(indexDir())) {
      return files.filter(p -> p.getFileName().toString().endsWith(".sst")).count();
    }
  }

  @Test
  void aFlushOutOfSpaceStopsWritesUntilSpaceIsFreedThenTheyResumeWithoutReopen() throws Exception {
    kv = new RocksKeyValueStorage(indexDir());
    // 12 MiB: the first 8 MiB memtable is sealed, the second is half full. Memtables are flushed
    // two at a time (optimizeLevelStyleCompaction), so nothing is flushed yet: all of it is only
    // in the log and the memtables.
    long acked = 0;
    while (acked < 12 * MIB / VALUE_BYTES) {
      kv.write(entries(acked, BATCH_ENTRIES), false);
      acked += BATCH_ENTRIES;
    }
    assertThat(logFiles()).as("log files (one per memtable)").isEqualTo(2);
    assertThat(sstFiles()).as("table files before the first flush").isZero();

    // Leave room for the log of the second memtable's other 4 MiB, not for the 16 MiB flush.
    fs.fillLeaving(8 * MIB);
    while (logFiles() < 3) {
      kv.write(entries(acked, BATCH_ENTRIES), false);
      acked += BATCH_ENTRIES;
    }
    // The second memtable is sealed and both are being flushed; nothing writes meanwhile.
    awaitTrue(10_000, "the flush to fail", () -> kv.health().state() != Health.State.OK);
    Health stopped = kv.health();
    assertThat(stopped.state()).isEqualTo(Health.State.NO_SPACE);
    assertThat(stopped.detail())
        .contains("memtable flush failed", ".sst", "No space left on device");
    long failedAt = System.nanoTime();
    // The failed table file is reported just before RocksDB stops writes: one may still get in.
    SpaceException refused = null;
    for (long deadline = failedAt + 10_000_000_000L; refused == null; ) {
      try {
        kv.write(entries(acked, 1), false);
        acked++;
      } catch (SpaceException e) {
        refused = e;
      }
      if (refused == null && System.nanoTime() > deadline) {
        fail("writes still accepted 10 s after the flush failed for lack of space");
      }
    }
    assertThat(refused).hasMessageContainingAll("no space left", ".sst", "MiB free");
    System.out.printf("flush out of space: health '%s'%n", stopped.detail());

    fs.freeFiller();
    long freedAt = System.nanoTime();
    long probes = awaitWritable(acked);
    long resumedAt = System.nanoTime();
    awaitTrue(1_000, "health to clear", () -> kv.health().state() == Health.State.OK);
    System.out.printf(
        "flush out of space: writes stopped %d ms, resumed %d ms after space was freed (%d"
            + " refused probes)%n",
        (resumedAt - failedAt) / 1_000_000, (resumedAt - freedAt) / 1_000_000, probes);

    assertDurableAfterRecovery(acked, probes);
  }

  @Test
  void aLogAppendOutOfSpaceStopsWritesUntilSpaceIsFreedThenTheyResumeWithoutReopen()
      throws Exception {
    kv = new RocksKeyValueStorage(indexDir());
    long acked = 0;
    while (acked < 2 * MIB / VALUE_BYTES) {
      kv.write(entries(acked, BATCH_ENTRIES), true);
      acked += BATCH_ENTRIES;
    }
    fs.fillLeaving(0);
    SpaceException refused = null;
    for (int i = 0; i < 1000 && refused == null; i++) {
      try {
        kv.write(entries(acked, BATCH_ENTRIES), true);
        acked += BATCH_ENTRIES;
      } catch (SpaceException e) {
        refused = e;
      }
    }
    assertThat(refused).as("a write on a full file system").isNotNull();
    long failedAt = System.nanoTime();
    assertThat(refused).hasMessageContainingAll("no space left", ".log", "MiB free");
    assertThat(kv.health().state()).isEqualTo(Health.State.NO_SPACE);
    assertThat(kv.health().detail()).contains("write failed", ".log", "No space left on device");
    // Later writes are refused up front, the same way.
    long next = acked;
    assertThatThrownBy(() -> kv.write(entries(next, 1), true)).isInstanceOf(SpaceException.class);

    fs.freeFiller();
    long freedAt = System.nanoTime();
    long probes = awaitWritable(acked);
    long resumedAt = System.nanoTime();
    awaitTrue(1_000, "health to clear", () -> kv.health().state() == Health.State.OK);
    System.out.printf(
        "log append out of space: writes stopped %d ms, resumed %d ms after space was freed (%d"
            + " refused probes)%n",
        (resumedAt - failedAt) / 1_000_000, (resumedAt - freedAt) / 1_000_000, probes);

    assertDurableAfterRecovery(acked, probes);
  }

  /** Only a failed sync of the log leaves doubt about what is durable; the rest is recoverable. */
  @Test
  void aLogSyncOutOfSpaceIsNotASpaceException() throws Exception {
    kv = new RocksKeyValueStorage(indexDir());
    String logSync = "While fdatasync: " + indexDir() + "/000012.log: No space left on device";
    String tableSync = "While fdatasync: " + indexDir() + "/000013.sst: No space left on device";
    String append = "While appending to file: " + indexDir() + "/000012.log: No space left";
    String io = "While appending to file: " + indexDir() + "/000012.log: Input/output error";

    assertThat(kv.writeFailure(failure(Status.SubCode.NoSpace, logSync), false))
        .isNotInstanceOf(SpaceException.class)
        .hasMessageContaining("index write failed");
    // Refused up front because the index had already stopped for lack of space: nothing written.
    assertThat(kv.writeFailure(failure(Status.SubCode.NoSpace, logSync), true))
        .isInstanceOf(SpaceException.class);
    assertThat(kv.writeFailure(failure(Status.SubCode.NoSpace, tableSync), false))
        .isInstanceOf(SpaceException.class);
    assertThat(kv.writeFailure(failure(Status.SubCode.NoSpace, append), false))
        .isInstanceOf(SpaceException.class);
    assertThat(kv.writeFailure(failure(Status.SubCode.None, io), true))
        .isNotInstanceOf(SpaceException.class);
  }

  private static RocksDBException failure(Status.SubCode subCode, String state) {
    return new RocksDBException(state, new Status(Status.Code.IOError, subCode, state));
  }

  /**
   * Writes a probe entry until one is accepted, retrying only {@link SpaceException}.
   *
   * @return the number of refused probes
   */
  private long awaitWritable(long acked) throws Exception {
    long deadline = System.nanoTime() + RECOVERY_DEADLINE_MS * 1_000_000;
    for (long refused = 0; ; refused++) {
      try {
        kv.write(new Batch().put(Table.META, key(-1), key(refused)), false);
        return refused;
      } catch (SpaceException e) {
        if (System.nanoTime() > deadline) {
          fail(
              "writes did not resume within %d ms of freeing space (%d MiB free): %s; health: %s",
              RECOVERY_DEADLINE_MS, fs.freeBytes() >> 20, e.getMessage(), kv.health().detail());
        }
        Thread.sleep(50);
      }
    }
  }

  /**
   * Writes more, then checks every acknowledged entry: in the live index, in what a crash of the
   * process would leave (a copy of its files: on tmpfs they are all there is), and after a reopen.
   * The log that ran out of space ends in a torn record; replaying it must not stop short of the
   * writes that came after.
   */
  private void assertDurableAfterRecovery(long acked, long lastProbe) throws Exception {
    for (int i = 0; i < 4; i++) {
      kv.write(entries(acked, BATCH_ENTRIES), false);
      acked += BATCH_ENTRIES;
    }
    assertEverythingThere(kv, acked, lastProbe);
    Path copy = crashCopies.resolve("index-" + System.nanoTime());
    copyTree(indexDir(), copy);
    try (RocksKeyValueStorage afterCrash = new RocksKeyValueStorage(copy)) {
      assertEverythingThere(afterCrash, acked, lastProbe);
    }
    kv.close();
    kv = new RocksKeyValueStorage(indexDir());
    assertEverythingThere(kv, acked, lastProbe);
  }

  private static void copyTree(Path from, Path to) throws IOException {
    Files.createDirectories(to);
    try (Stream<Path> files = Files.list(from)) {
      for (Path f : files.toList()) {
        Files.copy(f, to.resolve(f.getFileName()));
      }
    }
  }

  private static void assertEverythingThere(KeyValueStorage kv, long acked, long lastProbe)
      throws IOException {
    for (long i = 0; i < acked; i++) {
      byte[] v = kv.get(Table.BLOCKS, key(i));
      if (v == null || !java.util.Arrays.equals(v, value(i))) {
        fail("acknowledged entry %d of %d is %s", i, acked, v == null ? "missing" : "different");
      }
    }
    assertThat(kv.get(Table.META, key(-1))).isEqualTo(key(lastProbe));
  }

  private static void awaitTrue(long timeoutMs, String what, BooleanSupplier condition)
      throws InterruptedException {
    long deadline = System.nanoTime() + timeoutMs * 1_000_000;
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        fail("timed out after %d ms waiting for %s", timeoutMs, what);
      }
      Thread.sleep(10);
    }
  }

  private static void deleteTree(Path root) throws IOException {
    if (!Files.exists(root)) {
      return;
    }
    try (Stream<Path> paths = Files.walk(root)) {
      for (Path p : paths.sorted(Comparator.reverseOrder()).toList()) {
        Files.delete(p);
      }
    }
  }
}
