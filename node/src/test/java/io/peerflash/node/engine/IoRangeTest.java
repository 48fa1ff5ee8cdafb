package io.peerflash.node.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.peerflash.node.engine.CacheException.Reason;
import org.assertj.core.api.ThrowableAssert.ThrowingCallable;
import org.junit.jupiter.api.Test;

/** The one range check every entry point uses: unsigned wire values, no overflow. */
class IoRangeTest {
  private static final int BLOCK = 4096;
  private static final long MIB = 1 << 20;

  /** 2^63 - 4096: positive as a long, and {@code offset + 4096} wraps to Long.MIN_VALUE. */
  private static final long NEAR_2_63 = Long.MAX_VALUE - (BLOCK - 1);

  /** 2^64 - 4096 as a wire value: -4096 in a long. */
  private static final long NEAR_2_64 = -4096L;

  /** A length whose low 32 bits are 4096: an {@code (int)} cast once turned it into one block. */
  private static final long LENGTH_LOW_BITS_4096 = 0xFFFFFFFF00001000L;

  private static IoRange check(long volumeBytes, long offset, long length) throws CacheException {
    return IoRange.check("write", "v", volumeBytes, offset, length);
  }

  private static void assertInvalid(ThrowingCallable call, String... messageParts) {
    assertThatThrownBy(call)
        .isInstanceOfSatisfying(
            CacheException.class,
            e -> {
              assertThat(e.reason()).isEqualTo(Reason.INVALID_ARGUMENT);
              assertThat(e.getMessage()).contains(messageParts);
              // Wire values are unsigned: a negative number in the message would be a lie.
              assertThat(e.getMessage()).doesNotContain("-4096", "-9223372036854775808");
            });
  }

  @Test
  void offsetsNearTwoToThe63And64AreOutsideEveryVolume() {
    assertInvalid(
        () -> check(MIB, NEAR_2_63, BLOCK),
        "write of 4096 bytes at offset 9223372036854771712",
        "outside volume 'v' of 1048576 bytes");
    assertInvalid(
        () -> check(MIB, NEAR_2_64, BLOCK),
        "offset 18446744073709547520",
        "outside volume 'v' of 1048576 bytes");
    assertInvalid(() -> check(MIB, Long.MIN_VALUE, BLOCK), "offset 9223372036854775808", "outside");
    // Also against the largest volume there is.
    assertInvalid(() -> check(CacheEngine.MAX_VOLUME_BYTES, NEAR_2_63, BLOCK), "outside");
    assertInvalid(() -> check(CacheEngine.MAX_VOLUME_BYTES, NEAR_2_64, BLOCK), "outside");
    assertInvalid(
        () -> check(MIB, Long.MAX_VALUE, BLOCK),
        "offset 9223372036854775807 is not a multiple of 512 bytes");
    assertInvalid(() -> check(MIB, -1L, BLOCK), "offset 18446744073709551615 is not a multiple");
  }

  @Test
  void theEndOfTheVolumeIsTheLimit() throws CacheException {
    assertInvalid(
        () -> check(MIB, MIB - BLOCK + 512, BLOCK),
        "write of 4096 bytes at offset 1044992 is outside volume 'v' of 1048576 bytes");
    assertInvalid(() -> check(MIB, MIB, BLOCK), "at offset 1048576 is outside");
    assertInvalid(() -> check(MIB, MIB, 512), "at offset 1048576 is outside");
    assertInvalid(() -> check(MIB, MIB - 512, 1024), "outside");

    IoRange lastBlock = check(MIB, MIB - BLOCK, BLOCK);
    assertThat(lastBlock.end()).isEqualTo(MIB);
    IoRange lastSector = check(MIB, MIB - 512, 512);
    assertThat(lastSector.end()).isEqualTo(MIB);
    IoRange whole = check(MIB, 0, MIB);
    assertThat(whole.length()).isEqualTo((int) MIB);
  }

  @Test
  void lengthsMustBePositiveSectorMultiplesOfAtMostOneMib() throws CacheException {
    assertInvalid(() -> check(MIB, 0, 0), "write length 0 is not a positive multiple of 512");
    assertInvalid(() -> check(MIB, 0, 100), "write length 100 is not a positive multiple of 512");
    assertInvalid(
        () -> check(MIB, 0, LENGTH_LOW_BITS_4096),
        "write length 18446744069414588416 exceeds the limit of 1048576 bytes (1 MiB)");
    assertInvalid(() -> check(4 * MIB, 0, MIB + 512), "length 1049088 exceeds the limit");
    assertInvalid(() -> check(MIB, 0, -512L), "length 18446744073709551104 exceeds the limit");
    assertInvalid(() -> check(MIB, 0, 1L << 32), "length 4294967296 exceeds the limit");
    assertInvalid(() -> check(MIB, 100, BLOCK), "offset 100 is not a multiple of 512 bytes");

    assertThat(check(4 * MIB, 0, MIB).length()).isEqualTo(1 << 20);
    assertThat(check(4 * MIB, 3 * MIB, MIB).end()).isEqualTo(4 * MIB);
  }

  @Test
  void theOperationIsNamed() {
    assertInvalid(() -> IoRange.check("read", "v", MIB, 0, 0), "read length 0");
    assertInvalid(
        () -> IoRange.check("trim", "v", MIB, NEAR_2_63, BLOCK), "trim of 4096 bytes at offset");
  }

  @Test
  void blockNumbersOutsideTheVolumeAreRefused() throws CacheException {
    IoRange.checkBlock("replica copy of", "v", MIB, 0);
    IoRange.checkBlock("replica copy of", "v", MIB, 255);
    assertInvalid(
        () -> IoRange.checkBlock("replica copy of", "v", MIB, 256),
        "replica copy of block 256 is outside volume 'v' of 256 blocks");
    assertInvalid(
        () -> IoRange.checkBlock("replica copy of", "v", MIB, -1L),
        "block 18446744073709551615 is outside volume 'v' of 256 blocks");
    assertInvalid(
        () -> IoRange.checkBlock("replica copy of", "v", MIB, NEAR_2_63 / BLOCK),
        "block 2251799813685247 is outside");
    assertInvalid(
        () -> IoRange.checkBlock("replica copy of", "v", MIB, Long.MIN_VALUE),
        "block 9223372036854775808 is outside");
    assertThat(IoRange.blockInside(MIB, 255)).isTrue();
    assertThat(IoRange.blockInside(MIB, 256)).isFalse();
    assertThat(IoRange.blockInside(MIB, -1)).isFalse();
    assertThat(IoRange.blockInside(CacheEngine.MAX_VOLUME_BYTES, (1L << 34) - 1)).isTrue();
    assertThat(IoRange.blockInside(CacheEngine.MAX_VOLUME_BYTES, 1L << 34)).isFalse();
  }

  @Test
  void aRangeStraddlingBlocksSplitsIntoPartialAndWholeParts() throws CacheException {
    // Blocks 3 (from byte 512), 4 (whole) and 5 (up to byte 512).
    IoRange r = check(MIB, 3L * BLOCK + 512, 2 * BLOCK);
    assertThat(r.firstBlock()).isEqualTo(3);
    assertThat(r.blockCount()).isEqualTo(3);
    assertThat(r.partialBlocks()).isEqualTo(2);
    assertThat(r.fromInBlock(3)).isEqualTo(512);
    assertThat(r.toInBlock(3)).isEqualTo(BLOCK);
    assertThat(r.fromInBlock(4)).isZero();
    assertThat(r.toInBlock(4)).isEqualTo(BLOCK);
    assertThat(r.coversWhole(4)).isTrue();
    assertThat(r.fromInBlock(5)).isZero();
    assertThat(r.toInBlock(5)).isEqualTo(512);
    assertThat(r.dataPosition(3)).isZero();
    assertThat(r.dataPosition(4)).isEqualTo(BLOCK - 512);
    assertThat(r.dataPosition(5)).isEqualTo(2 * BLOCK - 512);
  }

  @Test
  void partialBlocksCountsEachEndOnce() throws CacheException {
    // Inside one block, touching neither end: one partial block, not two.
    IoRange inside = check(MIB, 512, 1024);
    assertThat(inside.blockCount()).isEqualTo(1);
    assertThat(inside.partialBlocks()).isEqualTo(1);
    assertThat(inside.fromInBlock(0)).isEqualTo(512);
    assertThat(inside.toInBlock(0)).isEqualTo(1536);
    assertThat(inside.dataPosition(0)).isZero();

    IoRange aligned = check(MIB, 2L * BLOCK, 2 * BLOCK);
    assertThat(aligned.blockCount()).isEqualTo(2);
    assertThat(aligned.partialBlocks()).isZero();

    IoRange alignedStart = check(MIB, 2L * BLOCK, BLOCK + 512);
    assertThat(alignedStart.blockCount()).isEqualTo(2);
    assertThat(alignedStart.partialBlocks()).isEqualTo(1);
    assertThat(alignedStart.coversWhole(2)).isTrue();
    assertThat(alignedStart.coversWhole(3)).isFalse();

    IoRange alignedEnd = check(MIB, 2L * BLOCK + 3584, 512);
    assertThat(alignedEnd.blockCount()).isEqualTo(1);
    assertThat(alignedEnd.partialBlocks()).isEqualTo(1);
    assertThat(alignedEnd.toInBlock(2)).isEqualTo(BLOCK);
  }

  @Test
  void theLastBlockOfTheLargestVolumeIsAddressedWithoutOverflow() throws CacheException {
    long size = CacheEngine.MAX_VOLUME_BYTES;
    IoRange last = check(size, size - MIB, MIB);
    assertThat(last.firstBlock()).isEqualTo((size - MIB) / BLOCK);
    assertThat(last.blockCount()).isEqualTo(256);
    assertThat(last.end()).isEqualTo(size);
    assertThat(last.dataPosition(size / BLOCK - 1)).isEqualTo((int) MIB - BLOCK);
    assertThat(last.toInBlock(size / BLOCK - 1)).isEqualTo(BLOCK);
  }
}
