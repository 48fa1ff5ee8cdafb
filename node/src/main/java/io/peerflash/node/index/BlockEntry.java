package io.peerflash.node.index;

/**
 * Where one cached 4 KiB block of a volume lives and what state it is in. Immutable: a change is a
 * new entry.
 *
 * @param slot cache-file slot holding the data, or {@link #NO_SLOT} for a zero block (a trimmed
 *     range waiting to be destaged as zeros)
 * @param seq the volume's write sequence number of this version; grows with every write
 * @param crc CRC32C of the 4 KiB in the slot
 * @param dirty true while shared storage does not yet hold this version
 * @param writtenAtMs when this version was written, for dirty age
 */
public record BlockEntry(int slot, long seq, int crc, boolean dirty, long writtenAtMs) {
  public static final int NO_SLOT = -1;
  static final int ENCODED_SIZE = 4 + 8 + 4 + 1 + 8;

  public boolean isZero() {
    return slot == NO_SLOT;
  }

  public BlockEntry asClean() {
    return new BlockEntry(slot, seq, crc, false, writtenAtMs);
  }

  byte[] encode() {
    byte[] b = new byte[ENCODED_SIZE];
    Bytes.putInt(b, 0, slot);
    Bytes.putLong(b, 4, seq);
    Bytes.putInt(b, 12, crc);
    b[16] = (byte) (dirty ? 1 : 0);
    Bytes.putLong(b, 17, writtenAtMs);
    return b;
  }

  static BlockEntry decode(byte[] b) {
    if (b.length != ENCODED_SIZE) {
      throw new IllegalStateException("corrupt block index entry of " + b.length + " bytes");
    }
    return new BlockEntry(
        Bytes.getInt(b, 0),
        Bytes.getLong(b, 4),
        Bytes.getInt(b, 12),
        b[16] == 1,
        Bytes.getLong(b, 17));
  }
}
