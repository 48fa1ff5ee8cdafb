package io.peerflash.node.engine;

import io.peerflash.util.Texts;

/**
 * A byte range of a volume that a request may touch, checked once for every entry point (the client
 * API, replica copies, recovery, and any later front end): the only place that decides whether a
 * range is inside a volume.
 *
 * <p>Offsets and lengths arrive as unsigned 64-bit wire values in Java {@code long}s: a value of
 * 2^63 or more is negative here, and {@code offset + length} can wrap. Every comparison below is
 * written so that neither can slip through (a write at offset 2^63-4096 to a 1 MiB volume was once
 * acknowledged: {@code offset + length} wrapped in the check, and the destager then failed on it
 * forever).
 *
 * @param offset first byte, a multiple of {@link #SECTOR}
 * @param length bytes, a positive multiple of {@link #SECTOR}, at most {@link #MAX_IO_BYTES}
 */
public record IoRange(long offset, int length) {
  public static final int BLOCK = CacheEngine.BLOCK;
  public static final int SECTOR = 512;

  /** Largest request (read, write or trim), in bytes. */
  public static final int MAX_IO_BYTES = 1 << 20;

  /**
   * Checks a request against a volume of {@code volumeBytes} and returns its range.
   *
   * @param op what the request is ("write", "read", "trim"), for the message
   * @param offset the wire value (unsigned)
   * @param length the wire value (unsigned)
   * @throws CacheException INVALID_ARGUMENT naming the rule broken
   */
  public static IoRange check(String op, String volume, long volumeBytes, long offset, long length)
      throws CacheException {
    if (Long.remainderUnsigned(offset, SECTOR) != 0) {
      throw CacheException.invalid(
          op + " offset " + Long.toUnsignedString(offset) + " is not a multiple of 512 bytes");
    }
    if (length == 0 || Long.remainderUnsigned(length, SECTOR) != 0) {
      throw CacheException.invalid(
          op
              + " length "
              + Long.toUnsignedString(length)
              + " is not a positive multiple of 512 bytes");
    }
    if (Long.compareUnsigned(length, MAX_IO_BYTES) > 0) {
      throw CacheException.invalid(
          op
              + " length "
              + Long.toUnsignedString(length)
              + " exceeds the limit of "
              + MAX_IO_BYTES
              + " bytes (1 MiB) per request");
    }
    // offset + length <= volumeBytes, without the addition: length is small and positive here,
    // and an offset of 2^63 or more compares as larger than any volume.
    if (Long.compareUnsigned(offset, volumeBytes) >= 0
        || Long.compareUnsigned(length, volumeBytes - offset) > 0) {
      throw CacheException.invalid(
          op
              + " of "
              + Long.toUnsignedString(length)
              + " bytes at offset "
              + Long.toUnsignedString(offset)
              + " is outside volume "
              + Texts.quote(volume)
              + " of "
              + volumeBytes
              + " bytes");
    }
    return new IoRange(offset, (int) length);
  }

  /**
   * Checks a block number carried by a replica copy, a release or a recovered index entry.
   *
   * @throws CacheException INVALID_ARGUMENT when it lies outside the volume
   */
  public static void checkBlock(String what, String volume, long volumeBytes, long block)
      throws CacheException {
    if (!blockInside(volumeBytes, block)) {
      throw CacheException.invalid(
          what
              + " block "
              + Long.toUnsignedString(block)
              + " is outside volume "
              + Texts.quote(volume)
              + " of "
              + volumeBytes / BLOCK
              + " blocks");
    }
  }

  /** Whether block {@code block} lies inside a volume of {@code volumeBytes}. */
  public static boolean blockInside(long volumeBytes, long block) {
    return block >= 0 && block < volumeBytes / BLOCK;
  }

  /** First block the range touches. */
  public long firstBlock() {
    return offset / BLOCK;
  }

  /** Number of blocks the range touches (whole or in part). */
  public int blockCount() {
    return (int) ((offset + length - 1) / BLOCK - firstBlock() + 1);
  }

  public long end() {
    return offset + length;
  }

  /** Where, inside block {@code block}, this range starts (0 when it covers the block's start). */
  public int fromInBlock(long block) {
    long blockStart = block * BLOCK;
    return (int) (Math.max(offset, blockStart) - blockStart);
  }

  /** Where, inside block {@code block}, this range ends (exclusive; BLOCK at most). */
  public int toInBlock(long block) {
    long blockStart = block * BLOCK;
    return (int) (Math.min(end(), blockStart + BLOCK) - blockStart);
  }

  /** Whether the range covers block {@code block} whole. */
  public boolean coversWhole(long block) {
    return fromInBlock(block) == 0 && toInBlock(block) == BLOCK;
  }

  /** Blocks touched only in part: the first and/or the last (read-modify-write). */
  public int partialBlocks() {
    long first = firstBlock();
    int count = blockCount();
    int n = coversWhole(first) ? 0 : 1;
    if (count > 1 && !coversWhole(first + count - 1)) {
      n++;
    }
    return n;
  }

  /** Where block {@code block}'s part of this range sits in the request's data. */
  public int dataPosition(long block) {
    return (int) (block * BLOCK + fromInBlock(block) - offset);
  }
}
