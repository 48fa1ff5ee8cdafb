package io.peerflash.node.engine;

import static io.peerflash.node.engine.BlockStoreFixture.BLOCK;
import static io.peerflash.node.engine.BlockStoreFixture.content;
import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.node.index.BlockEntry;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The read path on a block store of its own (real cache file, RocksDB index, shared storage in
 * files): hits from slots, misses from shared storage promoted as clean blocks, a read assembled
 * from both at byte offsets, a clean copy that fails its checksum read again from shared storage
 * and dropped, and which reads run on the caller and which on the executor.
 */
class ReadPathTest {
  static final long VOLUME = 64L * BLOCK;

  @TempDir Path dir;
  private BlockStoreFixture f;
  private ReadPath reads;
  private CachedVolume v;
  private byte[] shared;

  @BeforeEach
  void open() throws IOException {
    f = BlockStoreFixture.plain(dir, 8 << 20);
    reads = new ReadPath(f.store);
    v = f.volume(1, "v", VOLUME);
    // Shared storage holds its own content for every block (tags 100 + block).
    f.backing.create("v", VOLUME);
    shared = new byte[(int) VOLUME];
    for (int b = 0; b < 64; b++) {
      ByteBuffer c = content(100 + b);
      c.get(0, shared, b * BLOCK, BLOCK);
    }
    f.backing.write("v", 0, ByteBuffer.wrap(shared));
  }

  @AfterEach
  void close() throws IOException {
    f.close();
  }

  private static byte[] bytes(ByteBuffer b) {
    byte[] out = new byte[b.remaining()];
    b.duplicate().get(out);
    return out;
  }

  private long hits() {
    return f.store.stats.readHits.sum();
  }

  @Test
  void aMissIsReadFromSharedStorageAndPromotedAsACleanBlockThatTheNextReadHits() throws Exception {
    assertThat(v.blocks.get(3L)).isNull();
    assertThat(reads.read("v", 3L * BLOCK, BLOCK)).isEqualTo(bytes(content(103)));
    BlockEntry promoted = v.blocks.get(3L);
    assertThat(promoted).as("promoted").isNotNull();
    assertThat(promoted.dirty()).isFalse();
    assertThat(f.store.index.get(v.id(), 3)).as("in the index too").isNotNull();

    // Shared storage changes behind the cache's back: the next read is a hit, from the slot.
    long hits = hits();
    f.backing.write("v", 3L * BLOCK, content(7));
    assertThat(reads.read("v", 3L * BLOCK, BLOCK)).isEqualTo(bytes(content(103)));
    assertThat(hits() - hits).isEqualTo(1);
  }

  @Test
  void aReadAtByteOffsetsAcrossCachedAndMissingBlocksIsAssembledInOrder() throws Exception {
    // Block 1 is dirty in the cache (newer than shared storage); blocks 0 and 2 are not cached.
    f.install(v, 1, f.written(v, 1, true));
    // Sector-aligned (512 bytes), not block-aligned: the last sector of block 0, all of block 1,
    // the first two sectors of block 2.
    long offset = BLOCK - 512;
    int length = 512 + BLOCK + 1024;
    byte[] expected = new byte[length];
    System.arraycopy(shared, (int) offset, expected, 0, 512);
    content(1).get(0, expected, 512, BLOCK);
    System.arraycopy(shared, 2 * BLOCK, expected, 512 + BLOCK, 1024);
    assertThat(reads.read("v", offset, length)).isEqualTo(expected);
  }

  @Test
  void aCleanCopyThatFailsItsChecksumIsReadFromSharedStorageAndDropped() throws Exception {
    reads.read("v", 5L * BLOCK, BLOCK); // promoted
    BlockEntry clean = v.blocks.get(5L);
    assertThat(clean).isNotNull();
    // The slot's bytes rot; the entry's checksum no longer matches.
    f.store.writeSlot(clean.slot(), content(66));
    assertThat(reads.read("v", 5L * BLOCK, BLOCK))
        .as("the good data, from shared storage")
        .isEqualTo(bytes(content(105)));
    assertThat(v.blocks.get(5L)).as("the damaged copy dropped").isNull();
    assertThat(reads.read("v", 5L * BLOCK, BLOCK)).isEqualTo(bytes(content(105)));
    assertThat(v.blocks.get(5L)).as("promoted again, good this time").isNotNull();
  }

  @Test
  void aHitRunsOnTheCallerAndAMissOnTheExecutor() throws Exception {
    f.install(v, 0, f.written(v, 9, true));
    List<Runnable> handedOff = new ArrayList<>();
    CompletableFuture<byte[]> hit = reads.submitRead("v", 0, BLOCK, handedOff::add);
    assertThat(hit).isDone();
    assertThat(hit.get()).isEqualTo(bytes(content(9)));
    assertThat(handedOff).as("no hand-off for a hit").isEmpty();

    CompletableFuture<byte[]> miss = reads.submitRead("v", 8L * BLOCK, BLOCK, handedOff::add);
    assertThat(miss).isNotDone();
    assertThat(handedOff).hasSize(1);
    handedOff.get(0).run();
    assertThat(miss.get(5, TimeUnit.SECONDS)).isEqualTo(bytes(content(108)));
  }

  @Test
  void aZeroEntryReadsAsZerosWithoutSharedStorage() throws Exception {
    f.install(v, 4, new BlockEntry(BlockEntry.NO_SLOT, v.nextSeq.getAndIncrement(), 0, true, 0));
    assertThat(reads.read("v", 4L * BLOCK, BLOCK)).isEqualTo(new byte[BLOCK]);
  }
}
