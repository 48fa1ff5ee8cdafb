package io.peerflash.node.index;

/** Big-endian encoding, so encoded keys sort like the numbers they hold. */
final class Bytes {
  private Bytes() {}

  static void putLong(byte[] b, int off, long v) {
    for (int i = 7; i >= 0; i--) {
      b[off + i] = (byte) v;
      v >>>= 8;
    }
  }

  static long getLong(byte[] b, int off) {
    long v = 0;
    for (int i = 0; i < 8; i++) {
      v = (v << 8) | (b[off + i] & 0xFF);
    }
    return v;
  }

  static void putInt(byte[] b, int off, int v) {
    for (int i = 3; i >= 0; i--) {
      b[off + i] = (byte) v;
      v >>>= 8;
    }
  }

  static int getInt(byte[] b, int off) {
    int v = 0;
    for (int i = 0; i < 4; i++) {
      v = (v << 8) | (b[off + i] & 0xFF);
    }
    return v;
  }
}
