package io.peerflash.node.engine;

import static io.peerflash.node.engine.EngineTestSupport.BLOCK;
import static io.peerflash.node.engine.EngineTestSupport.pattern;
import static io.peerflash.node.engine.EngineTestSupport.readFile;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.index.VolumeInfo.Role;
import io.peerflash.node.storage.FileBackingStore;
import io.peerflash.replication.data.BlockCopy;
import io.peerflash.util.Time;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.assertj.core.api.SoftAssertions;
import org.assertj.core.api.ThrowableAssert.ThrowingCallable;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Requests whose offset, length or block lies outside the volume, at every engine entry point:
 * refused with INVALID_ARGUMENT, nothing stored, and the volume stays flushable.
 */
class BadRequestTest {
  private static final long MIB = 1 << 20;

  /** 2^63 - 4096: {@code offset + 4096} wraps to Long.MIN_VALUE. */
  private static final long NEAR_2_63 = Long.MAX_VALUE - (BLOCK - 1);

  /** 2^64 - 4096 as a wire value. */
  private static final long NEAR_2_64 = -4096L;

  /** A length whose low 32 bits are 4096 (an {@code (int)} cast made it one block). */
  private static final long LENGTH_LOW_BITS_4096 = 0xFFFFFFFF00001000L;

  /** Offsets outside a 1 MiB volume, each a multiple of 512 (so only the range check can fail). */
  private static final long[] OUTSIDE_OFFSETS = {
    MIB - BLOCK + 512, MIB, NEAR_2_63, Long.MIN_VALUE, NEAR_2_64, Long.MAX_VALUE - 511
  };

  /** Bound on a flush that has nothing stuck: it destages a few blocks to a local file. */
  private static final long FLUSH_BOUND_MS = 10_000;

  @TempDir Path tmp;
  private FileBackingStore store;
  private CacheEngine engine;
  private ExecutorService waits;

  @BeforeEach
  void setUp() throws Exception {
    waits = Executors.newFixedThreadPool(2);
    store = new FileBackingStore(tmp.resolve("shared"));
    engine =
        CacheEngine.open(EngineConfig.defaults(tmp.resolve("data"), 8 * MIB), store, Time.SYSTEM);
    engine.start();
    engine.createVolume("v", MIB, CacheMode.WRITE_BACK, 0);
  }

  @AfterEach
  void tearDown() throws Exception {
    waits.shutdownNow();
    waits.awaitTermination(10, TimeUnit.SECONDS);
    if (engine != null) {
      engine.close();
    }
  }

  /** The reason of the CacheException a call threw (a future's failure counts as thrown). */
  private static Throwable failureOf(ThrowingCallable call) {
    Throwable t = catchThrowable(call);
    if (t instanceof ExecutionException && t.getCause() != null) {
      return t.getCause();
    }
    return t;
  }

  private static void assertInvalid(SoftAssertions soft, String what, Throwable t) {
    soft.assertThat(t)
        .as(what)
        .isInstanceOfSatisfying(
            CacheException.class,
            e -> assertThat(e.reason()).as(what).isEqualTo(Reason.INVALID_ARGUMENT));
  }

  private long deadline() {
    return Time.SYSTEM.nowMs() + FLUSH_BOUND_MS;
  }

  @Test
  void aWriteAtTwoToThe63MinusABlockIsRefusedAndTheVolumeStaysFlushable() throws Exception {
    byte[] good = pattern(1, BLOCK);
    engine.write("v", 0, ByteBuffer.wrap(good));

    SoftAssertions soft = new SoftAssertions();
    Throwable refused =
        failureOf(() -> engine.write("v", NEAR_2_63, ByteBuffer.wrap(pattern(2, BLOCK))));
    soft.assertThat(refused)
        .as("a 4 KiB write at offset 2^63-4096 of a 1 MiB volume")
        .isInstanceOfSatisfying(
            CacheException.class,
            e -> {
              assertThat(e.reason()).isEqualTo(Reason.INVALID_ARGUMENT);
              assertThat(e.getMessage())
                  .contains("offset 9223372036854771712", "outside volume 'v' of 1048576 bytes");
            });
    // Nothing but block 0 is dirty: the refused write left nothing for the destager.
    soft.assertThat(engine.volumeStatus("v").dirtyBytes()).as("dirty bytes").isEqualTo(BLOCK);
    soft.assertThatCode(() -> engine.flush("v", deadline()))
        .as("flush within %d ms", FLUSH_BOUND_MS)
        .doesNotThrowAnyException();
    soft.assertThatCode(
            () ->
                assertTimeoutPreemptively(
                    Duration.ofMillis(FLUSH_BOUND_MS),
                    () -> engine.setPolicy("v", CacheMode.WRITE_THROUGH, 0)))
        .as("set-policy to write-through")
        .doesNotThrowAnyException();
    soft.assertAll();

    assertThat(engine.getVolume("v").mode()).isEqualTo(CacheMode.WRITE_THROUGH);
    assertThat(engine.volumeStatus("v").dirtyBytes()).isZero();
    assertThat(readFile(store.fileOf("v"), 0, BLOCK)).isEqualTo(good);
    assertThat(engine.volumeStatus("v").health()).isEqualTo(VolumeStatusView.Health.HEALTHY);
  }

  @Test
  void offsetsOutsideTheVolumeAreInvalidArgumentAtEveryEntryPoint() throws Exception {
    SoftAssertions soft = new SoftAssertions();
    for (long offset : OUTSIDE_OFFSETS) {
      String at = " at offset " + Long.toUnsignedString(offset);
      ByteBuffer data = ByteBuffer.wrap(pattern(offset, BLOCK));
      assertInvalid(soft, "write" + at, failureOf(() -> engine.write("v", offset, data)));
      assertInvalid(
          soft,
          "submitWrite" + at,
          failureOf(() -> engine.submitWrite("v", offset, data.duplicate(), waits).get()));
      assertInvalid(soft, "read" + at, failureOf(() -> engine.read("v", offset, BLOCK)));
      assertInvalid(
          soft,
          "submitRead" + at,
          failureOf(() -> engine.submitRead("v", offset, BLOCK, waits).get()));
      assertInvalid(soft, "trim" + at, failureOf(() -> engine.trim("v", offset, BLOCK)));
      if (Long.compareUnsigned(offset, MIB) >= 0) {
        // Not even one sector lies inside.
        assertInvalid(soft, "512-byte read" + at, failureOf(() -> engine.read("v", offset, 512)));
        assertInvalid(soft, "512-byte trim" + at, failureOf(() -> engine.trim("v", offset, 512)));
      }
    }
    soft.assertAll();
    assertThat(engine.volumeStatus("v").dirtyBytes()).isZero();
    assertThat(engine.status().cacheUsedBytes()).isZero();
    engine.flush("v", deadline());
  }

  @Test
  void aReadLengthWhoseLowBitsAreOneBlockIsRefusedNotCut() throws Exception {
    engine.write("v", 0, ByteBuffer.wrap(pattern(3, BLOCK)));
    SoftAssertions soft = new SoftAssertions();
    for (long length : new long[] {LENGTH_LOW_BITS_4096, -512L, 1L << 32, MIB + 512}) {
      String what = "read of length " + Long.toUnsignedString(length);
      Throwable sync = failureOf(() -> engine.read("v", 0, length));
      assertInvalid(soft, what, sync);
      soft.assertThat(sync).as(what).hasMessageContaining("exceeds the limit of 1048576 bytes");
      assertInvalid(
          soft,
          "submitted " + what,
          failureOf(() -> engine.submitRead("v", 0, length, waits).get()));
    }
    soft.assertAll();
  }

  @Test
  void trimsOutsideTheVolumeAreRefusedAndStoreNothing() throws Exception {
    SoftAssertions soft = new SoftAssertions();
    Throwable high = failureOf(() -> engine.trim("v", NEAR_2_63, BLOCK));
    soft.assertThat(high)
        .as("a trim at offset 2^63-4096")
        .isInstanceOfSatisfying(
            CacheException.class,
            e -> {
              assertThat(e.reason()).isEqualTo(Reason.INVALID_ARGUMENT);
              assertThat(e.getMessage())
                  .contains("trim of 4096 bytes at offset 9223372036854771712");
            });
    assertInvalid(
        soft,
        "a trim of length 2^64-2^32+4096",
        failureOf(() -> engine.trim("v", 0, LENGTH_LOW_BITS_4096)));
    assertInvalid(soft, "a trim of 1 MiB at 512", failureOf(() -> engine.trim("v", 512, MIB)));
    assertInvalid(soft, "a trim of length 0", failureOf(() -> engine.trim("v", 0, 0)));
    soft.assertThat(engine.volumeStatus("v").dirtyBytes()).as("dirty bytes").isZero();
    soft.assertThatCode(() -> engine.flush("v", deadline()))
        .as("flush within %d ms", FLUSH_BOUND_MS)
        .doesNotThrowAnyException();
    soft.assertAll();
  }

  @Test
  void replicaCopiesOfBlocksOutsideTheVolumeAreRefusedWhole() throws Exception {
    engine.createVolume("r", MIB, CacheMode.WRITE_BACK, 1);
    engine.setRole("r", Role.REPLICA);
    ByteBuffer image = ByteBuffer.wrap(pattern(4, BLOCK));
    SoftAssertions soft = new SoftAssertions();
    for (long block : new long[] {256, NEAR_2_63 / BLOCK, Long.MIN_VALUE, -1L, NEAR_2_64 / BLOCK}) {
      String what = "a replica copy of block " + Long.toUnsignedString(block);
      // With a good block first: the call is refused whole, the good copy is not stored either.
      List<BlockCopy> copies =
          List.of(
              new BlockCopy(0, 1, image.duplicate()), new BlockCopy(block, 2, image.duplicate()));
      Throwable t = failureOf(() -> engine.applyReplicaBlocks("r", copies));
      assertInvalid(soft, what, t);
      soft.assertThat(t).as(what).hasMessageContaining("outside volume 'r' of 256 blocks");
      assertInvalid(
          soft, "tried " + what, failureOf(() -> engine.tryApplyReplicaBlocks("r", copies)));
      assertInvalid(
          soft,
          "a zero " + what,
          failureOf(() -> engine.applyReplicaBlocks("r", List.of(new BlockCopy(block, 3, null)))));
    }
    soft.assertAll();
    assertThat(engine.volumeStatus("r").dirtyBytes()).isZero();
    assertThat(engine.status().cacheUsedBytes()).isZero();
    // The volume still takes good copies, and its owner-to-be can flush them.
    engine.applyReplicaBlocks("r", List.of(new BlockCopy(255, 5, image.duplicate())));
    engine.setRole("r", Role.OWNER);
    engine.flush("r", deadline());
    assertThat(readFile(store.fileOf("r"), 255L * BLOCK, BLOCK)).isEqualTo(image.array());
  }

  @Test
  void aRefusedRequestDoesNotDisturbTheOnesAroundIt() throws Exception {
    // Many bad writes interleaved with good ones, on the asynchronous path a stream uses.
    byte[] model = new byte[(int) MIB];
    List<CompletableFuture<WriteAck>> good = new java.util.ArrayList<>();
    SoftAssertions soft = new SoftAssertions();
    for (int i = 0; i < 64; i++) {
      byte[] data = pattern(100 + i, BLOCK);
      System.arraycopy(data, 0, model, i * BLOCK, BLOCK);
      good.add(engine.submitWrite("v", (long) i * BLOCK, ByteBuffer.wrap(data), waits));
      long bad = OUTSIDE_OFFSETS[i % OUTSIDE_OFFSETS.length];
      assertInvalid(
          soft,
          "write at " + Long.toUnsignedString(bad),
          failureOf(() -> engine.submitWrite("v", bad, ByteBuffer.wrap(data), waits).get()));
    }
    soft.assertAll();
    CompletableFuture.allOf(good.toArray(new CompletableFuture[0])).get(10, TimeUnit.SECONDS);
    engine.flush("v", deadline());
    assertThat(readFile(store.fileOf("v"), 0, (int) MIB)).isEqualTo(model);
    assertThat(engine.read("v", 0, MIB)).isEqualTo(model);
  }
}
