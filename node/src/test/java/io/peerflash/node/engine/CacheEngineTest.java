package io.peerflash.node.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.storage.FileBackingStore;
import io.peerflash.util.Time;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CacheEngineTest {
  private static final long MIB = 1 << 20;

  @TempDir Path dir;
  private FileBackingStore backing;
  private CacheEngine engine;

  @BeforeEach
  void open() throws IOException {
    engine = openEngine();
  }

  @AfterEach
  void close() {
    if (engine != null) {
      engine.close();
    }
  }

  private CacheEngine openEngine() throws IOException {
    backing = new FileBackingStore(dir.resolve("shared"));
    CacheEngine e =
        CacheEngine.open(
            EngineConfig.defaults(dir.resolve("data"), 16 * MIB), backing, Time.SYSTEM);
    e.start();
    return e;
  }

  private void restart() throws IOException {
    engine.close();
    engine = openEngine();
  }

  private static byte[] random(int n, long seed) {
    byte[] b = new byte[n];
    new Random(seed).nextBytes(b);
    return b;
  }

  private void write(String vol, long offset, byte[] data) throws CacheException {
    engine.write(vol, offset, ByteBuffer.wrap(data));
  }

  private byte[] backingBytes(String vol, long offset, int len) throws IOException {
    byte[] all = Files.readAllBytes(backing.fileOf(vol));
    return Arrays.copyOfRange(all, (int) offset, (int) offset + len);
  }

  @Test
  void writeBackIsReadBackAndDestagedOnFlush() throws Exception {
    engine.createVolume("v1", 4 * MIB, CacheMode.WRITE_BACK, 0);
    byte[] data = random(64 * 1024, 1);
    write("v1", 8192, data);
    assertThat(engine.read("v1", 8192, data.length)).isEqualTo(data);
    assertThat(engine.volumeStatus("v1").dirtyBytes()).isEqualTo(data.length);
    // Not yet on shared storage: write-back.
    assertThat(backingBytes("v1", 8192, data.length)).isEqualTo(new byte[data.length]);
    assertThat(engine.flush("v1")).isEqualTo(data.length);
    assertThat(backingBytes("v1", 8192, data.length)).isEqualTo(data);
    assertThat(engine.volumeStatus("v1").dirtyBytes()).isZero();
  }

  @Test
  void unalignedWritesMergeWithExistingData() throws Exception {
    engine.createVolume("v", MIB, CacheMode.WRITE_BACK, 0);
    byte[] base = random(16384, 2);
    write("v", 0, base);
    engine.flush("v");
    byte[] patch = random(1536, 3);
    write("v", 4096 + 512, patch);
    byte[] expected = base.clone();
    System.arraycopy(patch, 0, expected, 4096 + 512, patch.length);
    assertThat(engine.read("v", 0, 16384)).isEqualTo(expected);
    assertThat(engine.read("v", 4096 + 1024, 512))
        .isEqualTo(Arrays.copyOfRange(expected, 4096 + 1024, 4096 + 1536));
    engine.flush("v");
    assertThat(backingBytes("v", 0, 16384)).isEqualTo(expected);
  }

  @Test
  void neverWrittenReadsZerosAndTrimZeroes() throws Exception {
    engine.createVolume("v", MIB, CacheMode.WRITE_BACK, 0);
    assertThat(engine.read("v", 0, 8192)).isEqualTo(new byte[8192]);
    write("v", 0, random(12288, 4));
    engine.flush("v");
    engine.trim("v", 512, 8192);
    byte[] got = engine.read("v", 0, 12288);
    assertThat(Arrays.copyOfRange(got, 512, 8704)).isEqualTo(new byte[8192]);
    engine.flush("v");
    assertThat(backingBytes("v", 512, 8192)).isEqualTo(new byte[8192]);
  }

  @Test
  void dirtyDataSurvivesRestart() throws Exception {
    engine.createVolume("v", MIB, CacheMode.WRITE_BACK, 0);
    byte[] data = random(32768, 5);
    write("v", 4096, data);
    restart();
    assertThat(engine.volumeStatus("v").dirtyBytes()).isEqualTo(data.length);
    assertThat(engine.read("v", 4096, data.length)).isEqualTo(data);
    engine.flush("v");
    assertThat(backingBytes("v", 4096, data.length)).isEqualTo(data);
  }

  @Test
  void writeThroughAndAroundReachStorageBeforeAck() throws Exception {
    engine.createVolume("wt", MIB, CacheMode.WRITE_THROUGH, 0);
    engine.createVolume("wa", MIB, CacheMode.WRITE_AROUND, 0);
    byte[] data = random(8192, 6);
    write("wt", 0, data);
    write("wa", 0, data);
    assertThat(backingBytes("wt", 0, 8192)).isEqualTo(data);
    assertThat(backingBytes("wa", 0, 8192)).isEqualTo(data);
    assertThat(engine.volumeStatus("wt").cachedBytes()).isEqualTo(8192);
    assertThat(engine.volumeStatus("wa").cachedBytes()).isZero();
    assertThat(engine.read("wa", 0, 8192)).isEqualTo(data);
    assertThat(engine.volumeStatus("wa").cachedBytes()).isZero();
  }

  @Test
  void leavingWriteBackDestagesFirst() throws Exception {
    engine.createVolume("v", MIB, CacheMode.WRITE_BACK, 1);
    byte[] data = random(65536, 7);
    write("v", 0, data);
    engine.setPolicy("v", CacheMode.WRITE_THROUGH, 1);
    assertThat(engine.volumeStatus("v").dirtyBytes()).isZero();
    assertThat(backingBytes("v", 0, data.length)).isEqualTo(data);
    assertThat(engine.getVolume("v").mode()).isEqualTo(CacheMode.WRITE_THROUGH);
    restart();
    assertThat(engine.getVolume("v").mode()).isEqualTo(CacheMode.WRITE_THROUGH);
    assertThat(engine.getVolume("v").replicas()).isEqualTo(1);
  }

  @Test
  void badInputGetsClearErrors() throws Exception {
    engine.createVolume("v", MIB, CacheMode.WRITE_BACK, 0);
    assertReason(() -> engine.read("nope", 0, 512), Reason.NOT_FOUND, "does not exist");
    assertReason(
        () -> engine.createVolume("v", MIB, CacheMode.WRITE_BACK, 0),
        Reason.ALREADY_EXISTS,
        "already exists");
    assertReason(() -> write("v", 100, new byte[512]), Reason.INVALID_ARGUMENT, "multiple of 512");
    assertReason(() -> write("v", 0, new byte[100]), Reason.INVALID_ARGUMENT, "multiple of 512");
    assertReason(() -> write("v", 0, new byte[2 << 20]), Reason.INVALID_ARGUMENT, "1 MiB");
    assertReason(
        () -> write("v", MIB - 512, new byte[1024]), Reason.INVALID_ARGUMENT, "outside volume");
    assertReason(
        () -> engine.createVolume("x", 1000, CacheMode.WRITE_BACK, 0),
        Reason.INVALID_ARGUMENT,
        "multiple of 4096");
    assertReason(
        () -> engine.createVolume("../etc", MIB, CacheMode.WRITE_BACK, 0),
        Reason.INVALID_ARGUMENT,
        "invalid");
    assertReason(
        () -> engine.createVolume("r", MIB, CacheMode.WRITE_BACK, 3),
        Reason.INVALID_ARGUMENT,
        "replicas");
  }

  @Test
  void deleteDropsDataAndRecreateReadsZeros() throws Exception {
    engine.createVolume("v", MIB, CacheMode.WRITE_BACK, 0);
    write("v", 0, random(8192, 8));
    engine.deleteVolume("v");
    assertReason(() -> engine.read("v", 0, 512), Reason.NOT_FOUND, "does not exist");
    assertThat(engine.status().cacheUsedBytes()).isZero();
    engine.createVolume("v", MIB, CacheMode.WRITE_BACK, 0);
    restart();
    assertThat(engine.read("v", 0, 8192)).isEqualTo(new byte[8192]);
  }

  @Test
  void readMissesArePromotedUnlessSequentialPastCutoff() throws Exception {
    engine.createVolume("v", 8 * MIB, CacheMode.WRITE_THROUGH, 0);
    engine.read("v", 0, 4096);
    assertThat(engine.volumeStatus("v").cachedBytes()).isEqualTo(4096);
    // A sequential stream longer than the 4 MiB cutoff: the tail is not promoted.
    for (long off = 1 << 20; off < 8 * MIB; off += 1 << 20) {
      engine.read("v", off, 1 << 20);
    }
    assertThat(engine.volumeStatus("v").cachedBytes()).isLessThan(5 * MIB);
    assertThat(engine.status().readMisses()).isPositive();
  }

  interface Op {
    void run() throws Exception;
  }

  private static void assertReason(Op op, Reason reason, String messagePart) {
    assertThatThrownBy(op::run)
        .isInstanceOf(CacheException.class)
        .satisfies(e -> assertThat(((CacheException) e).reason()).isEqualTo(reason))
        .hasMessageContaining(messagePart);
  }
}
