package io.peerflash.node.index;

import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.node.index.KeyValueStorage.Batch;
import io.peerflash.node.index.KeyValueStorage.Table;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@link BlockIndex} over a real RocksDB: entries, their key order, quarantine, volume deletes. */
class BlockIndexTest {
  @TempDir Path dir;
  private KeyValueStorage kv;
  private BlockIndex index;

  @BeforeEach
  void open() throws Exception {
    kv = new RocksKeyValueStorage(dir.resolve("index"));
    index = new BlockIndex(kv);
  }

  @AfterEach
  void close() {
    kv.close();
  }

  private void reopen() throws Exception {
    kv.close();
    open();
  }

  private static BlockEntry entry(int slot, long seq, boolean dirty) {
    return new BlockEntry(slot, seq, 0x1234_5678 ^ (int) seq, dirty, 1_700_000_000_000L + seq);
  }

  private record Visit(long volumeId, long block, BlockEntry entry) {}

  private List<Visit> all() throws Exception {
    List<Visit> visits = new ArrayList<>();
    index.forEach((volumeId, block, entry) -> visits.add(new Visit(volumeId, block, entry)));
    return visits;
  }

  @Test
  void putGetAndDeleteRoundTripEveryFieldAcrossAReopen() throws Exception {
    BlockEntry dirty = entry(7, 41, true);
    BlockEntry zero = new BlockEntry(BlockEntry.NO_SLOT, 42, 0, true, 5);
    Batch batch = new Batch();
    index.put(batch, 3, 100, dirty);
    index.put(batch, 3, 101, zero);
    assertThat(index.get(3, 100)).as("staged, not written").isNull();
    kv.write(batch, true);

    reopen();
    assertThat(index.get(3, 100)).isEqualTo(dirty);
    assertThat(index.get(3, 101)).isEqualTo(zero);
    assertThat(index.get(3, 101).isZero()).isTrue();
    assertThat(index.get(3, 102)).isNull();
    assertThat(index.get(4, 100)).as("another volume's block of that number").isNull();

    Batch replace = new Batch();
    index.put(replace, 3, 100, dirty.asClean());
    index.delete(replace, 3, 101);
    kv.write(replace, false);
    assertThat(index.get(3, 100)).isEqualTo(dirty.asClean());
    assertThat(index.get(3, 100).dirty()).isFalse();
    assertThat(index.get(3, 101)).isNull();
  }

  @Test
  void forEachVisitsEveryEntryInVolumeThenBlockOrderWithItsKey() throws Exception {
    // Written out of order, with numbers whose low bytes would sort differently in little-endian
    // or as signed bytes (0x80, 0x100, 2^40).
    long[][] keys = {
      {2, 0x100}, {1, 5}, {2, 1}, {256, 0}, {1, 0x80}, {1, 1L << 40}, {2, 0x7F}, {1, 0}
    };
    Batch batch = new Batch();
    for (int i = 0; i < keys.length; i++) {
      index.put(batch, keys[i][0], keys[i][1], entry(i, 1000 + i, i % 2 == 0));
    }
    kv.write(batch, false);

    List<Visit> visits = all();
    long[][] sorted = keys.clone();
    Arrays.sort(
        sorted, (a, b) -> a[0] != b[0] ? Long.compare(a[0], b[0]) : Long.compare(a[1], b[1]));
    assertThat(visits).hasSize(keys.length);
    for (int i = 0; i < sorted.length; i++) {
      Visit v = visits.get(i);
      assertThat(new long[] {v.volumeId(), v.block()}).as("visit %d", i).isEqualTo(sorted[i]);
      assertThat(v.entry())
          .as("entry of volume %d block %d", v.volumeId(), v.block())
          .isEqualTo(index.get(v.volumeId(), v.block()));
    }
  }

  @Test
  void quarantineMovesTheEntryAsideWithItsDataInOneBatch() throws Exception {
    BlockEntry outside = entry(9, 77, true);
    BlockEntry noData = entry(10, 78, false);
    Batch setup = new Batch();
    index.put(setup, 5, 1_000_000, outside);
    index.put(setup, 5, 1_000_001, noData);
    index.put(setup, 5, 3, entry(11, 79, true));
    kv.write(setup, true);

    byte[] data = new byte[4096];
    Arrays.fill(data, (byte) 0xA5);
    Batch batch = new Batch();
    index.quarantine(batch, 5, 1_000_000, outside, data);
    index.quarantine(batch, 5, 1_000_001, noData, null);
    assertThat(index.get(5, 1_000_000)).as("staged only").isEqualTo(outside);
    kv.write(batch, true);
    reopen();

    assertThat(index.get(5, 1_000_000)).as("gone from the block index").isNull();
    assertThat(index.get(5, 1_000_001)).isNull();
    assertThat(all())
        .as("only the other block is left to recover")
        .containsExactly(new Visit(5, 3, entry(11, 79, true)));

    byte[] kept = kv.get(Table.QUARANTINE, BlockIndex.key(5, 1_000_000));
    assertThat(kept).hasSize(BlockEntry.ENCODED_SIZE + data.length);
    assertThat(BlockEntry.decode(Arrays.copyOf(kept, BlockEntry.ENCODED_SIZE))).isEqualTo(outside);
    assertThat(Arrays.copyOfRange(kept, BlockEntry.ENCODED_SIZE, kept.length)).isEqualTo(data);
    byte[] keptNoData = kv.get(Table.QUARANTINE, BlockIndex.key(5, 1_000_001));
    assertThat(BlockEntry.decode(keptNoData)).isEqualTo(noData);
  }

  @Test
  void deleteVolumeStagesOnlyThatVolumesKeys() throws Exception {
    // Neighbours on both sides, and ids sharing all but the last byte with volume 2 (0x102) or
    // its last byte (0x102 vs 2 and 0x202): an id prefix shorter than 8 bytes would take them.
    long[] volumes = {1, 2, 3, 0x102, 0x202, Long.MAX_VALUE};
    Batch batch = new Batch();
    for (long vol : volumes) {
      for (long block : new long[] {0, 1, 0xFF, 1L << 32, Long.MAX_VALUE}) {
        index.put(batch, vol, block, entry((int) (block & 0xFFF), vol * 10, true));
      }
    }
    kv.write(batch, false);

    Batch delete = new Batch();
    index.deleteVolume(delete, 2);
    assertThat(delete.size()).as("one delete per block of volume 2").isEqualTo(5);
    assertThat(index.get(2, 0)).as("staged only").isNotNull();
    kv.write(delete, true);

    List<Visit> left = all();
    assertThat(left).noneMatch(v -> v.volumeId() == 2);
    for (long vol : volumes) {
      if (vol != 2) {
        assertThat(left.stream().filter(v -> v.volumeId() == vol))
            .as("volume %d keeps every block", vol)
            .hasSize(5);
      }
    }

    Batch none = new Batch();
    index.deleteVolume(none, 2);
    assertThat(none.isEmpty()).as("a volume without entries").isTrue();
  }
}
