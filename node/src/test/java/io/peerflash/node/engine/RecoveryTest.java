package io.peerflash.node.engine;

import static io.peerflash.node.engine.EngineTestSupport.BLOCK;
import static io.peerflash.node.engine.EngineTestSupport.assertFileEquals;
import static io.peerflash.node.engine.EngineTestSupport.overwriteCacheFile;
import static io.peerflash.node.engine.EngineTestSupport.pattern;
import static io.peerflash.node.engine.EngineTestSupport.readFile;
import static io.peerflash.node.engine.EngineTestSupport.slotOf;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.engine.VolumeStatusView.Health;
import io.peerflash.node.index.BlockEntry;
import io.peerflash.node.index.BlockIndex;
import io.peerflash.node.index.KeyValueStorage.Batch;
import io.peerflash.node.index.KeyValueStorage.Table;
import io.peerflash.node.index.RocksKeyValueStorage;
import io.peerflash.node.index.VolumeInfo;
import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.storage.FileBackingStore;
import io.peerflash.util.Time;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.assertj.core.api.SoftAssertions;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Restart without flush, delete and recreate, torn cache slots. */
class RecoveryTest {
  @TempDir Path tmp;
  private Path dataDir;
  private EngineConfig config;
  private FileBackingStore store;
  private CacheEngine engine;

  @BeforeEach
  void setUp() throws Exception {
    dataDir = tmp.resolve("data");
    // 30 s dirty age and 50 % high watermark: nothing is destaged before close in these tests.
    config = EngineConfig.defaults(dataDir, 8L << 20);
    open();
  }

  @AfterEach
  void tearDown() {
    if (engine != null) {
      engine.close();
    }
  }

  private void open() throws Exception {
    store = new FileBackingStore(tmp.resolve("shared"));
    engine = CacheEngine.open(config, store, Time.SYSTEM);
    engine.start();
  }

  private void restart() throws Exception {
    engine.close();
    engine = null;
    open();
  }

  @Test
  void dirtyDataSurvivesRestartAndIsDestagedByFlush() throws Exception {
    Map<String, byte[]> model = new LinkedHashMap<>();
    model.put("alpha", new byte[1 << 20]);
    model.put("beta", new byte[2 << 20]);
    Random rnd = new Random(5);
    for (Map.Entry<String, byte[]> e : model.entrySet()) {
      byte[] m = e.getValue();
      engine.createVolume(e.getKey(), m.length, CacheMode.WRITE_BACK, 0);
      for (int i = 0; i < 40; i++) {
        int len = 512 * (1 + rnd.nextInt(32));
        int off = rnd.nextInt((m.length - len) / 512 + 1) * 512;
        if (i % 7 == 6) {
          engine.trim(e.getKey(), off, len);
          Arrays.fill(m, off, off + len, (byte) 0);
        } else {
          byte[] data = new byte[len];
          rnd.nextBytes(data);
          engine.write(e.getKey(), off, ByteBuffer.wrap(data));
          System.arraycopy(data, 0, m, off, len);
        }
      }
    }
    for (String name : model.keySet()) {
      assertThat(engine.volumeStatus(name).dirtyBytes()).isPositive();
      // Not destaged yet: shared storage still has zeros where data was written.
      assertThat(Files.readAllBytes(store.fileOf(name))).isNotEqualTo(model.get(name));
    }

    restart();

    for (Map.Entry<String, byte[]> e : model.entrySet()) {
      String name = e.getKey();
      byte[] m = e.getValue();
      assertThat(engine.volumeStatus(name).dirtyBytes()).isPositive();
      assertThat(engine.volumeStatus(name).health()).isEqualTo(Health.HEALTHY);
      assertThat(engine.read(name, 0, m.length > (1 << 20) ? 1 << 20 : m.length))
          .isEqualTo(Arrays.copyOfRange(m, 0, Math.min(m.length, 1 << 20)));
      if (m.length > (1 << 20)) {
        assertThat(engine.read(name, 1 << 20, 1 << 20))
            .isEqualTo(Arrays.copyOfRange(m, 1 << 20, 2 << 20));
      }
      engine.flush(name);
      assertThat(engine.volumeStatus(name).dirtyBytes()).isZero();
      assertFileEquals(store.fileOf(name), m, "after restart and flush of " + name);
    }
    // New writes after recovery get sequence numbers above the recovered ones.
    byte[] late = pattern(77, BLOCK);
    engine.write("alpha", 0, ByteBuffer.wrap(late));
    System.arraycopy(late, 0, model.get("alpha"), 0, BLOCK);
    restart();
    engine.flush("alpha");
    assertFileEquals(store.fileOf("alpha"), model.get("alpha"), "after a second restart");
  }

  @Test
  void deletedVolumeRecreatedWithTheSameNameReadsZeros() throws Exception {
    engine.createVolume("v", 1 << 20, CacheMode.WRITE_BACK, 0);
    engine.write("v", 0, ByteBuffer.wrap(pattern(1, 64 << 10)));
    engine.flush("v");
    engine.write("v", 128 << 10, ByteBuffer.wrap(pattern(2, 64 << 10))); // dirty
    long usedBefore = engine.status().cacheUsedBytes();
    assertThat(usedBefore).isPositive();

    engine.deleteVolume("v");
    assertThat(engine.status().cacheUsedBytes()).isZero();
    assertThat(engine.status().dirtyBytes()).isZero();
    VolumeInfo again = engine.createVolume("v", 2 << 20, CacheMode.WRITE_BACK, 0);
    assertThat(again.sizeBytes()).isEqualTo(2 << 20);
    assertThat(engine.read("v", 0, 1 << 20)).isEqualTo(new byte[1 << 20]);
    assertThat(engine.read("v", 1 << 20, 1 << 20)).isEqualTo(new byte[1 << 20]);

    restart();
    assertThat(engine.listVolumes()).extracting(VolumeInfo::name).containsExactly("v");
    assertThat(engine.read("v", 0, 1 << 20)).isEqualTo(new byte[1 << 20]);
    engine.flush("v");
    assertFileEquals(store.fileOf("v"), new byte[2 << 20], "recreated volume");

    // Delete with dirty data, restart before recreating: nothing of the old volume comes back.
    engine.write("v", 0, ByteBuffer.wrap(pattern(3, 256 << 10)));
    engine.deleteVolume("v");
    restart();
    assertThat(engine.listVolumes()).isEmpty();
    engine.createVolume("v", 1 << 20, CacheMode.WRITE_BACK, 0);
    assertThat(engine.read("v", 0, 1 << 20)).isEqualTo(new byte[1 << 20]);
    engine.flush("v");
    assertFileEquals(store.fileOf("v"), new byte[1 << 20], "recreated after restart");
    assertThat(engine.status().dirtyBytes()).isZero();
  }

  @Test
  void tornDirtySlotIsDetectedAtRestart() throws Exception {
    engine.createVolume("v", 1 << 20, CacheMode.WRITE_BACK, 0);
    byte[] v1 = pattern(10, BLOCK);
    byte[] v2 = pattern(11, BLOCK);
    byte[] other = pattern(12, BLOCK);
    engine.write("v", 3L * BLOCK, ByteBuffer.wrap(v1));
    engine.flush("v"); // v1 on storage, clean in the cache
    engine.write("v", 3L * BLOCK, ByteBuffer.wrap(v2)); // dirty, in a new slot
    engine.write("v", 9L * BLOCK, ByteBuffer.wrap(other)); // dirty, intact
    int slot = slotOf(engine, "v", 3);
    engine.close();
    engine = null;

    // Torn write: only the first half of v2 reached the slot; the rest is what was there before.
    overwriteCacheFile(dataDir, slot, BLOCK / 2, new byte[BLOCK / 2]);
    open();

    assertThatThrownBy(() -> engine.read("v", 3L * BLOCK, BLOCK))
        .isInstanceOfSatisfying(
            CacheException.class, ex -> assertThat(ex.reason()).isEqualTo(Reason.DATA_LOSS));
    assertThatThrownBy(() -> engine.read("v", 3L * BLOCK, 512))
        .isInstanceOfSatisfying(
            CacheException.class, ex -> assertThat(ex.reason()).isEqualTo(Reason.DATA_LOSS));
    VolumeStatusView st = engine.volumeStatus("v");
    assertThat(st.health()).isEqualTo(Health.CORRUPT_DIRTY_DATA);
    assertThat(st.corruptBlocks()).isEqualTo(1);
    assertThat(engine.read("v", 9L * BLOCK, BLOCK)).isEqualTo(other);

    assertThatThrownBy(() -> engine.flush("v"))
        .isInstanceOfSatisfying(
            CacheException.class, ex -> assertThat(ex.reason()).isEqualTo(Reason.DATA_LOSS));
    assertThat(readFile(store.fileOf("v"), 9L * BLOCK, BLOCK)).isEqualTo(other);
    // The damaged version never replaces the older good one on shared storage.
    assertThat(readFile(store.fileOf("v"), 3L * BLOCK, BLOCK)).isEqualTo(v1);
  }

  @Test
  void aDirtyEntryOutsideItsVolumeIsQuarantinedAtStartAndTheVolumeStaysFlushable()
      throws Exception {
    engine.createVolume("v", 1 << 20, CacheMode.WRITE_BACK, 0);
    byte[] lost = pattern(20, BLOCK);
    byte[] kept = pattern(21, BLOCK);
    engine.write("v", 0, ByteBuffer.wrap(lost));
    engine.write("v", 5L * BLOCK, ByteBuffer.wrap(kept));
    long volumeId = engine.getVolume("v").id();
    engine.close();
    engine = null;

    // The index names a block far outside the 1 MiB volume (what an acknowledged write at offset
    // 2^63-4096 once left behind): block 0's dirty entry is moved there.
    long outside = (Long.MAX_VALUE - (BLOCK - 1)) / BLOCK;
    BlockEntry moved;
    try (RocksKeyValueStorage kv = new RocksKeyValueStorage(dataDir.resolve("index"))) {
      BlockIndex index = new BlockIndex(kv);
      moved = index.get(volumeId, 0);
      assertThat(moved).isNotNull();
      assertThat(moved.dirty()).isTrue();
      Batch batch = new Batch();
      index.put(batch, volumeId, outside, moved);
      index.delete(batch, volumeId, 0);
      kv.write(batch, true);
    }

    open();
    long flushBoundMs = 10_000;
    SoftAssertions soft = new SoftAssertions();
    soft.assertThat(engine.volumeStatus("v").dirtyBytes())
        .as("dirty bytes at start")
        .isEqualTo(BLOCK);
    soft.assertThatCode(() -> engine.flush("v", Time.SYSTEM.nowMs() + flushBoundMs))
        .as("flush within %d ms", flushBoundMs)
        .doesNotThrowAnyException();
    soft.assertThat(engine.volumeStatus("v").health()).as("health").isEqualTo(Health.HEALTHY);
    soft.assertAll();
    assertThat(engine.volumeStatus("v").dirtyBytes()).isZero();
    assertThat(readFile(store.fileOf("v"), 5L * BLOCK, BLOCK)).isEqualTo(kept);
    assertThat(readFile(store.fileOf("v"), 0, BLOCK)).isEqualTo(new byte[BLOCK]);
    assertThat(store.fileOf("v").toFile().length()).isEqualTo(1 << 20);
    // The slot it pointed to is free again: only block 5's copy is cached.
    assertThat(engine.status().cacheUsedBytes()).isEqualTo(BLOCK);
    engine.close();
    engine = null;

    assertOnlyInQuarantine(volumeId, outside, moved, lost);
    open();
    assertThat(engine.volumeStatus("v").dirtyBytes()).isZero();
    assertThat(engine.volumeStatus("v").health()).isEqualTo(Health.HEALTHY);
    engine.flush("v", Time.SYSTEM.nowMs() + flushBoundMs);
    engine.close();
    engine = null;
    assertOnlyInQuarantine(volumeId, outside, moved, lost);
  }

  /** The entry is gone from the block index and kept, with its data, in the quarantine table. */
  private void assertOnlyInQuarantine(long volumeId, long block, BlockEntry entry, byte[] data)
      throws Exception {
    try (RocksKeyValueStorage kv = new RocksKeyValueStorage(dataDir.resolve("index"))) {
      assertThat(new BlockIndex(kv).get(volumeId, block)).isNull();
      List<byte[]> keys = new ArrayList<>();
      List<byte[]> values = new ArrayList<>();
      kv.scan(
          Table.QUARANTINE,
          new byte[0],
          (k, val) -> {
            keys.add(k);
            values.add(val);
            return true;
          });
      assertThat(keys).hasSize(1);
      ByteBuffer key = ByteBuffer.wrap(keys.get(0));
      assertThat(key.getLong()).isEqualTo(volumeId);
      assertThat(key.getLong()).isEqualTo(block);
      byte[] value = values.get(0);
      // The encoded entry (slot, seq, crc, dirty flag, time), then the block's data.
      ByteBuffer e = ByteBuffer.wrap(value);
      assertThat(e.getInt()).isEqualTo(entry.slot());
      assertThat(e.getLong()).isEqualTo(entry.seq());
      assertThat(e.getInt()).isEqualTo(entry.crc());
      assertThat(e.get()).isEqualTo((byte) 1);
      assertThat(e.getLong()).isEqualTo(entry.writtenAtMs());
      assertThat(Arrays.copyOfRange(value, e.position(), value.length)).isEqualTo(data);
    }
  }
}
