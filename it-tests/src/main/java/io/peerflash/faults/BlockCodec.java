package io.peerflash.faults;

import java.nio.ByteBuffer;
import java.util.SplittableRandom;
import java.util.zip.CRC32C;

/**
 * Self-describing 4 KiB blocks: each written block says which volume and block it was written to,
 * by which write (its id, unique in the volume's {@link WriteModel}; every block of a multi-block
 * write carries the same one) and writer, and carries a checksum over all of it, so a read can tell
 * exactly which write it returns, or that it returns data never written.
 *
 * <p>Layout: magic (4 bytes), volume tag (4), block number (8), write id (8), writer (4), CRC32C of
 * the whole block with this field zero (4), then bytes drawn from a generator seeded by (volume
 * tag, block, sequence).
 */
public final class BlockCodec {
  public static final int BLOCK = 4096;
  private static final int MAGIC = 0x50465731; // "PFW1"
  private static final int CRC_AT = 28;
  private static final int PAYLOAD_AT = 32;

  private final int volumeTag;

  public BlockCodec(String volume) {
    this.volumeTag = volume.hashCode();
  }

  /** What a block read back holds. */
  public sealed interface Content permits Zero, Written, Garbage {}

  /** Never written (all zeros). */
  public record Zero() implements Content {}

  /** A well-formed block of this volume at this block number: written by write {@code seq}. */
  public record Written(long seq, int writer) implements Content {}

  /** Anything else: a checksum mismatch, another block's or another volume's data, torn data. */
  public record Garbage(String why) implements Content {}

  /** The 4 KiB image written to {@code block} by write {@code seq} of {@code writer}. */
  public void encode(long block, long seq, int writer, byte[] dst, int at) {
    ByteBuffer b = ByteBuffer.wrap(dst, at, BLOCK).slice();
    b.putInt(MAGIC).putInt(volumeTag).putLong(block).putLong(seq).putInt(writer).putInt(0);
    SplittableRandom rnd = new SplittableRandom(mix(volumeTag, block, seq));
    for (int i = PAYLOAD_AT; i < BLOCK; i += 8) {
      b.putLong(i, rnd.nextLong());
    }
    b.putInt(CRC_AT, crc(dst, at));
  }

  /** Decodes the 4 KiB at {@code at}, expected to be block {@code block} of this volume. */
  public Content decode(long block, byte[] src, int at) {
    ByteBuffer b = ByteBuffer.wrap(src, at, BLOCK).slice();
    boolean zero = true;
    for (int i = 0; i < BLOCK; i += 8) {
      if (b.getLong(i) != 0) {
        zero = false;
        break;
      }
    }
    if (zero) {
      return new Zero();
    }
    if (b.getInt(0) != MAGIC) {
      return new Garbage("no block header");
    }
    int storedCrc = b.getInt(CRC_AT);
    byte[] copy = new byte[BLOCK];
    System.arraycopy(src, at, copy, 0, BLOCK);
    ByteBuffer.wrap(copy).putInt(CRC_AT, 0);
    if (crc(copy, 0) != storedCrc) {
      return new Garbage("checksum mismatch");
    }
    if (b.getInt(4) != volumeTag) {
      return new Garbage("block of another volume");
    }
    if (b.getLong(8) != block) {
      return new Garbage("block " + b.getLong(8) + " found at block " + block);
    }
    return new Written(b.getLong(16), b.getInt(24));
  }

  private static int crc(byte[] data, int at) {
    CRC32C c = new CRC32C();
    c.update(data, at, BLOCK);
    return (int) c.getValue();
  }

  private static long mix(int tag, long block, long seq) {
    long h = tag * 0x9E3779B97F4A7C15L;
    h ^= block * 0xC2B2AE3D27D4EB4FL;
    h ^= seq * 0x165667B19E3779F9L;
    return h;
  }
}
