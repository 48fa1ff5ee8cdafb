package io.peerflash.node.index;

import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.node.index.KeyValueStorage.Batch;
import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.index.VolumeInfo.Role;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@link VolumeCatalog} over a real RocksDB, reopened as a restarted node reopens it. */
class VolumeCatalogTest {
  @TempDir Path dir;
  private KeyValueStorage kv;
  private VolumeCatalog catalog;

  @BeforeEach
  void open() throws Exception {
    kv = new RocksKeyValueStorage(dir.resolve("index"));
    catalog = new VolumeCatalog(kv);
  }

  @AfterEach
  void close() {
    kv.close();
  }

  private void reopen() throws Exception {
    kv.close();
    open();
  }

  @Test
  void createAssignsIncreasingIdsThatAReopenDoesNotReuse() throws Exception {
    VolumeInfo a = catalog.create("a", 1 << 20, CacheMode.WRITE_BACK, 1);
    VolumeInfo b = catalog.create("b", 2 << 20, CacheMode.WRITE_THROUGH, 0);
    assertThat(a.id()).isEqualTo(1);
    assertThat(b.id()).isEqualTo(2);
    assertThat(a.role()).isEqualTo(Role.OWNER);

    reopen();
    VolumeInfo c = catalog.create("c", 1 << 20, CacheMode.WRITE_AROUND, 2);
    assertThat(c.id()).as("after a reopen").isEqualTo(3);

    // A deleted volume's id is not handed out again: its block entries may still be on disk
    // until the next start drops them.
    catalog.delete(c, new Batch());
    reopen();
    assertThat(catalog.create("d", 1 << 20, CacheMode.WRITE_BACK, 0).id()).isEqualTo(4);
    assertThat(catalog.loadAll()).extracting(VolumeInfo::name).containsExactly("a", "b", "d");
  }

  @Test
  void loadAllAfterAReopenReturnsEveryDefinitionAsStored() throws Exception {
    VolumeInfo a = catalog.create("vol-a", 8L << 30, CacheMode.WRITE_BACK, 2);
    VolumeInfo b = catalog.create("vol_b.2", 4096, CacheMode.WRITE_AROUND, 0);
    VolumeInfo assigned =
        new VolumeInfo(42, "from-the-map", 1L << 40, CacheMode.WRITE_BACK, 1, Role.REPLICA);
    catalog.put(assigned);

    reopen();
    assertThat(catalog.loadAll()).containsExactlyInAnyOrder(a, b, assigned);
    assertThat(catalog.create("next", 4096, CacheMode.WRITE_BACK, 0).id())
        .as("ids assigned by the map do not move the local counter")
        .isEqualTo(3);
  }

  @Test
  void updateReplacesTheDefinitionAndDeleteAppliesItsBatchTogether() throws Exception {
    VolumeInfo v = catalog.create("v", 1 << 20, CacheMode.WRITE_BACK, 1);
    VolumeInfo other = catalog.create("w", 1 << 20, CacheMode.WRITE_BACK, 1);
    VolumeInfo changed = v.withPolicy(CacheMode.WRITE_THROUGH, 0).withRole(Role.REPLICA);
    catalog.update(changed);
    reopen();
    assertThat(catalog.loadAll()).containsExactlyInAnyOrder(changed, other);

    BlockIndex index = new BlockIndex(kv);
    Batch blocks = new Batch();
    index.put(blocks, v.id(), 0, new BlockEntry(1, 1, 2, true, 3));
    index.put(blocks, other.id(), 0, new BlockEntry(2, 1, 2, true, 3));
    kv.write(blocks, true);

    Batch alsoApply = new Batch();
    index.deleteVolume(alsoApply, v.id());
    catalog.delete(changed, alsoApply);
    reopen();
    index = new BlockIndex(kv);
    assertThat(catalog.loadAll()).containsExactly(other);
    assertThat(index.get(v.id(), 0)).as("the batch given to delete").isNull();
    assertThat(index.get(other.id(), 0)).isNotNull();
  }
}
