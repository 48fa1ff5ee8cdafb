package io.peerflash.node.rpc;

import java.util.List;
import java.util.SplittableRandom;

/**
 * Boundary and random values for {@link ApiFuzzer}. Every uint64 of the API is a Java long, so
 * 2^64-1 is -1 and 2^63 is Long.MIN_VALUE; {@link #u64} prints them as the client meant them.
 */
final class FuzzValues {
  static final long KIB = 1024;
  static final long MIB = 1024 * KIB;
  static final long TIB = MIB * MIB;
  static final long MAX_IO_BYTES = MIB;

  /** 2^63-4096: aligned, positive, and offset + 4096 overflows a signed long. */
  static final long TWO_63_MINUS_4096 = Long.MAX_VALUE - 4095;

  /** 2^64-4096 as a uint64: -4096 as a long. */
  static final long TWO_64_MINUS_4096 = -4096L;

  /** A length whose low 32 bits are 4096: a cast to int makes it a valid-looking 4 KiB. */
  static final long HUGE_LENGTH_LOW_BITS_4096 = 0xFFFFFFFF00001000L;

  /** Over the node's largest accepted message (8 MiB): gRPC answers RESOURCE_EXHAUSTED itself. */
  static final int OVERSIZED_MESSAGE_BYTES = (8 << 20) + 1;

  private FuzzValues() {}

  static <T> T pick(SplittableRandom rng, List<T> values) {
    return values.get(rng.nextInt(values.size()));
  }

  static long pick(SplittableRandom rng, long[] values) {
    return values[rng.nextInt(values.length)];
  }

  static int pick(SplittableRandom rng, int[] values) {
    return values[rng.nextInt(values.length)];
  }

  /** Offsets around a volume of {@code size} bytes, the uint64 edges, and unaligned ones. */
  static long offset(SplittableRandom rng, long size) {
    long[] edges = {
      0,
      -1L,
      Long.MAX_VALUE,
      TWO_63_MINUS_4096,
      Long.MIN_VALUE,
      TWO_64_MINUS_4096,
      size - 4096,
      size - 512,
      size,
      size + 512,
      size + 4096,
      1,
      511,
      4095,
      4096,
      (1L << 32) - 4096,
      1L << 32,
      1L << 40,
      64 * TIB,
      (rng.nextLong(Math.max(1, size / 512))) * 512,
      (rng.nextLong(Math.max(1, size / 4096))) * 4096,
      rng.nextLong(Math.max(1, size)),
      rng.nextLong()
    };
    return pick(rng, edges);
  }

  /**
   * Lengths: zero, unaligned, the 1 MiB limit and past it, and uint64s whose low bits look fine.
   */
  static long length(SplittableRandom rng, long size) {
    long[] edges = {
      0,
      1,
      511,
      512,
      4095,
      4096,
      8192,
      64 * KIB,
      MIB - 512,
      MIB,
      MIB + 512,
      MIB + 4096,
      HUGE_LENGTH_LOW_BITS_4096,
      1L << 31,
      1L << 32,
      (1L << 32) + 4096,
      Long.MIN_VALUE,
      Long.MAX_VALUE,
      -1L,
      TWO_64_MINUS_4096,
      TWO_63_MINUS_4096,
      size,
      size + 4096,
      (1 + rng.nextLong(2 * MIB / 512)) * 512
    };
    return pick(rng, edges);
  }

  /** Sizes of write payloads: empty, one byte, unaligned, the limit, past it, and oversized. */
  static int dataLength(SplittableRandom rng) {
    if (rng.nextInt(200) == 0) {
      return OVERSIZED_MESSAGE_BYTES;
    }
    int[] edges = {
      0,
      1,
      511,
      512,
      4095,
      4096,
      8192,
      (int) (MIB - 512),
      (int) MIB,
      (int) (MIB + 512),
      (int) (MIB + 4096),
      (1 + rng.nextInt(64)) * 512,
      (1 + rng.nextInt(64)) * 4096
    };
    return pick(rng, edges);
  }

  /** Volume sizes for CreateVolume. */
  static long volumeSize(SplittableRandom rng) {
    long[] edges = {
      0,
      -1L,
      Long.MIN_VALUE,
      TWO_64_MINUS_4096,
      TWO_63_MINUS_4096,
      512,
      4095,
      4096,
      4097,
      MIB,
      8 * MIB,
      64 * TIB,
      64 * TIB + 4096,
      1L << 62,
      (1 + rng.nextLong(4096)) * 4096
    };
    return pick(rng, edges);
  }

  /** uint32 replica counts as the int protobuf carries them (2^32-1 is -1). */
  static int replicas(SplittableRandom rng) {
    return pick(rng, new int[] {0, 1, 2, 3, -1, Integer.MAX_VALUE, Integer.MIN_VALUE, 0, 1, 2});
  }

  /** Enum numbers, in and out of range (protobuf keeps unknown ones as UNRECOGNIZED). */
  static int enumValue(SplittableRandom rng) {
    return pick(rng, new int[] {0, 1, 2, 3, 4, -1, 99, Integer.MAX_VALUE, 1, 2, 3});
  }

  /** Odd strings: empty, one char, the 128-char limit and past it, huge, NUL, unicode, paths. */
  static final List<String> ODD_STRINGS =
      List.of(
          "",
          "a",
          "a".repeat(128),
          "b".repeat(129),
          "n".repeat(100_000),
          "a\u0000b",
          "\u0000",
          "model\u0000",
          "v\u00f6l\u00fcme",
          "\u5377",
          "\uD83D\uDCBE",
          "a/b",
          "../model",
          "..",
          ".",
          ".hidden",
          "-x",
          "_x",
          "a b",
          "MODEL",
          " model",
          "model ",
          "model/",
          "s1\n",
          "%s%n%x",
          "\u202Emodel",
          "a".repeat(127) + "\u00e9");

  /** A uint64 as the client meant it, with the name of a notable value. */
  static String u64(long v) {
    String s = Long.toUnsignedString(v);
    String name =
        v == -1L
            ? "2^64-1"
            : v == Long.MIN_VALUE
                ? "2^63"
                : v == Long.MAX_VALUE
                    ? "2^63-1"
                    : v == TWO_63_MINUS_4096
                        ? "2^63-4096"
                        : v == TWO_64_MINUS_4096
                            ? "2^64-4096"
                            : v == HUGE_LENGTH_LOW_BITS_4096 ? "0xFFFFFFFF00001000" : null;
    return name == null ? s : s + " (" + name + ")";
  }

  /** A uint32 as the client meant it. */
  static String u32(int v) {
    return Integer.toUnsignedString(v) + (v == -1 ? " (2^32-1)" : "");
  }

  /** A string fit for a report: escaped, long ones shortened with their length. */
  static String str(String s) {
    StringBuilder b = new StringBuilder("\"");
    int shown = Math.min(s.length(), 40);
    for (int i = 0; i < shown; i++) {
      char c = s.charAt(i);
      if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
        b.append(c);
      } else {
        b.append(String.format("\\u%04x", (int) c));
      }
    }
    b.append('"');
    if (shown < s.length()) {
      b.append("...(").append(s.length()).append(" chars: ");
      b.append(s.chars().distinct().count() == 1 ? "'" + s.charAt(0) + "' repeated" : "mixed");
      b.append(")");
    }
    return b.toString();
  }
}
