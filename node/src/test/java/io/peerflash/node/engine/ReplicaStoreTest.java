package io.peerflash.node.engine;

import static io.peerflash.node.engine.EngineTestSupport.awaitDestagerStep;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.peerflash.node.index.VolumeInfo;
import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.index.VolumeInfo.Role;
import io.peerflash.node.storage.FileBackingStore;
import io.peerflash.replication.data.BlockCopy;
import io.peerflash.util.Time;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A node holding another node's dirty blocks: apply, release, restart, and taking over. */
class ReplicaStoreTest {
  private static final int BLOCK = 4096;
  @TempDir Path dir;
  private FileBackingStore backing;
  private CacheEngine engine;

  @BeforeEach
  void open() throws Exception {
    engine = openEngine();
    engine.createVolume("v", 1 << 20, CacheMode.WRITE_BACK, 1);
    engine.setRole("v", Role.REPLICA);
  }

  @AfterEach
  void close() {
    engine.close();
  }

  private CacheEngine openEngine() throws IOException {
    backing = new FileBackingStore(dir.resolve("shared"));
    CacheEngine e =
        CacheEngine.open(
            // Watermarks at ~0 and no max dirty age: an owner destages its dirty blocks at once.
            EngineConfig.defaults(dir.resolve("data"), 8 << 20).withDestage(0.01, 0.0, 0),
            backing,
            Time.SYSTEM);
    e.start();
    return e;
  }

  private static ByteBuffer image(int fill) {
    byte[] b = new byte[BLOCK];
    Arrays.fill(b, (byte) fill);
    return ByteBuffer.wrap(b);
  }

  private byte[] backingBlock(long block) throws IOException {
    byte[] all = Files.readAllBytes(backing.fileOf("v"));
    return Arrays.copyOfRange(all, (int) block * BLOCK, (int) (block + 1) * BLOCK);
  }

  @Test
  void copiesAreKeptNewestFirstAndNeverDestagedByAReplica() throws Exception {
    engine.applyReplicaBlocks("v", List.of(new BlockCopy(3, 10, image(1))));
    // An older copy (a retransmit or a reordered message) does not replace a newer one.
    engine.applyReplicaBlocks("v", List.of(new BlockCopy(3, 9, image(2))));
    engine.applyReplicaBlocks(
        "v", List.of(new BlockCopy(4, 11, image(4)), new BlockCopy(4, 12, image(5))));
    assertThat(engine.volumeStatus("v").dirtyBytes()).isEqualTo(2 * BLOCK);
    awaitDestagerStep(engine); // an owner would have destaged them in this step
    assertThat(backingBlock(3)).isEqualTo(new byte[BLOCK]);
    assertThatThrownBy(() -> engine.read("v", 0, 4096))
        .isInstanceOf(CacheException.class)
        .hasMessageContaining("replica");
    assertThatThrownBy(() -> engine.write("v", 0, image(1)))
        .isInstanceOf(CacheException.class)
        .hasMessageContaining("replica");
    // Taking over: the copies become this node's dirty data, served and destaged.
    engine.setRole("v", Role.OWNER);
    assertThat(engine.read("v", 3 * BLOCK, BLOCK)).isEqualTo(image(1).array());
    assertThat(engine.read("v", 4 * BLOCK, BLOCK)).isEqualTo(image(5).array());
    engine.flush("v");
    assertThat(backingBlock(3)).isEqualTo(image(1).array());
    assertThat(backingBlock(4)).isEqualTo(image(5).array());
    // New writes continue after the inherited sequences.
    engine.write("v", 3 * BLOCK, image(7));
    assertThat(engine.read("v", 3 * BLOCK, BLOCK)).isEqualTo(image(7).array());
  }

  @Test
  void releaseDropsOnlyCopiesThatAreNotNewer() throws Exception {
    engine.applyReplicaBlocks(
        "v",
        List.of(
            new BlockCopy(1, 5, image(1)),
            new BlockCopy(2, 6, image(2)),
            new BlockCopy(3, 7, null)));
    engine.applyReplicaBlocks("v", List.of(new BlockCopy(2, 9, image(3))));
    engine.releaseReplicaBlocks("v", new long[] {1, 2, 3}, new long[] {5, 6, 7});
    // Block 2 holds sequence 9, newer than the release: it stays.
    assertThat(engine.volumeStatus("v").dirtyBytes()).isEqualTo(BLOCK);
    long used = engine.status().cacheUsedBytes();
    assertThat(used).isEqualTo(BLOCK);
  }

  @Test
  void copiesAndRoleSurviveRestart() throws Exception {
    engine.applyReplicaBlocks("v", List.of(new BlockCopy(0, 1, image(9))));
    engine.close();
    engine = openEngine();
    assertThat(engine.getVolume("v").role()).isEqualTo(Role.REPLICA);
    assertThat(engine.volumeStatus("v").dirtyBytes()).isEqualTo(BLOCK);
    awaitDestagerStep(engine);
    assertThat(backingBlock(0)).isEqualTo(new byte[BLOCK]);
    engine.setRole("v", Role.OWNER);
    engine.flush("v");
    assertThat(backingBlock(0)).isEqualTo(image(9).array());
  }

  /**
   * Found by the fencing simulation (seed 4990140452502299206): the old owner's last write of a
   * block reached one replica, never acknowledged, with a sequence the new owner had not seen.
   * Counting on from its own highest sequence, the new owner gave its next write of that block the
   * same number, and the replica skipped it as not newer while acknowledging it.
   */
  @Test
  void aNewOwnersWritesSupersedeCopiesTheOldOwnerLeftOnAnotherReplica() throws Exception {
    VolumeInfo replicaOfV = engine.getVolume("v");
    CacheEngine other =
        CacheEngine.open(
            EngineConfig.defaults(dir.resolve("other-data"), 8 << 20).withDestage(0.01, 0.0, 0),
            backing,
            Time.SYSTEM);
    try {
      other.start();
      other.adoptVolume(replicaOfV, false);
      // Both replicas hold the old owner's acknowledged write of block 3 at sequence 16; the other
      // one also took its next write of block 3 (17), which was never acknowledged.
      engine.applyReplicaBlocks("v", List.of(new BlockCopy(3, 16, image(1))));
      other.applyReplicaBlocks("v", List.of(new BlockCopy(3, 16, image(1))));
      other.applyReplicaBlocks("v", List.of(new BlockCopy(3, 17, image(2))));
      // This node takes the volume over at a later epoch; its writes reach the other replica's
      // store, which acknowledges only what it applied or already held newer.
      engine.setReplicationPort(
          new ReplicationPort() {
            @Override
            public Placement place(VolumeInfo volume) {
              return Placement.serving(this::replicate);
            }

            private CompletableFuture<Void> replicate(VolumeInfo volume, List<BlockCopy> blocks) {
              try {
                other.applyReplicaBlocks(volume.name(), blocks);
                return CompletableFuture.completedFuture(null);
              } catch (CacheException e) {
                return CompletableFuture.failedFuture(e);
              }
            }

            @Override
            public void released(VolumeInfo volume, long[] blocks, long[] seqs) {
              try {
                other.releaseReplicaBlocks(volume.name(), blocks, seqs);
              } catch (CacheException e) {
                throw new IllegalStateException(e);
              }
            }
          });
      long floor = 5L << 40; // what the cluster layer passes for epoch 6
      engine.adoptVolume(replicaOfV.withRole(Role.OWNER), false, floor);
      engine.write("v", 3 * BLOCK, image(7));
      // The other replica takes over in turn: it serves the acknowledged write, not the old
      // owner's unacknowledged one.
      other.setRole("v", Role.OWNER);
      assertThat(other.read("v", 3 * BLOCK, BLOCK)).isEqualTo(image(7).array());
    } finally {
      other.close();
    }
  }

  @Test
  void anOwnerTakesNoCopies() throws Exception {
    engine.setRole("v", Role.OWNER);
    assertThatThrownBy(() -> engine.applyReplicaBlocks("v", List.of(new BlockCopy(0, 1, image(1)))))
        .isInstanceOf(CacheException.class)
        .satisfies(
            e ->
                assertThat(((CacheException) e).reason())
                    .isEqualTo(CacheException.Reason.FAILED_PRECONDITION));
  }

  @Test
  void tryApplyStoresWithoutWaitingOrLeavesEverythingAsItWas() throws Exception {
    engine.createVolume("big", 16 << 20, CacheMode.WRITE_BACK, 1);
    engine.setRole("big", Role.REPLICA);
    assertThat(engine.tryApplyReplicaBlocks("v", List.of(new BlockCopy(0, 1, image(1))))).isTrue();
    // Fill the cache with copies (a replica never destages them) until no slot is left.
    long block = 0;
    while (engine.tryApplyReplicaBlocks(
        "big", List.of(new BlockCopy(block, block + 1, image(2))))) {
      block++;
    }
    long dirty = engine.volumeStatus("big").dirtyBytes();
    assertThat(dirty).isEqualTo(block * BLOCK).isPositive();
    // Full: the copy would have to wait for space, so it is refused and nothing changes.
    assertThat(engine.tryApplyReplicaBlocks("v", List.of(new BlockCopy(1, 2, image(3))))).isFalse();
    assertThat(engine.volumeStatus("v").dirtyBytes()).isEqualTo(BLOCK);
    assertThat(engine.volumeStatus("big").dirtyBytes()).isEqualTo(dirty);
    // Space again once the owner releases copies it destaged.
    engine.releaseReplicaBlocks("big", new long[] {0, 1}, new long[] {1, 2});
    assertThat(engine.tryApplyReplicaBlocks("v", List.of(new BlockCopy(1, 2, image(3))))).isTrue();
    assertThat(engine.volumeStatus("v").dirtyBytes()).isEqualTo(2 * BLOCK);
  }

  @Test
  void withSyncEveryApplyWaitsForAnFsyncSoTryApplyRefuses() throws Exception {
    engine.close();
    backing = new FileBackingStore(dir.resolve("shared"));
    engine =
        CacheEngine.open(
            EngineConfig.defaults(dir.resolve("data"), 8 << 20).withSync(true),
            backing,
            Time.SYSTEM);
    engine.start();
    assertThat(engine.tryApplyReplicaBlocks("v", List.of(new BlockCopy(0, 1, image(1))))).isFalse();
    assertThat(engine.volumeStatus("v").dirtyBytes()).isZero();
    engine.applyReplicaBlocks("v", List.of(new BlockCopy(0, 1, image(1))));
    assertThat(engine.volumeStatus("v").dirtyBytes()).isEqualTo(BLOCK);
  }
}
