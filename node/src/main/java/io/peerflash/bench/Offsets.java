package io.peerflash.bench;

import java.util.SplittableRandom;

/** Where the i-th operation of a workload goes. Deterministic for a seed. */
public final class Offsets {
  private Offsets() {}

  /**
   * A random block-aligned offset in {@code [start, start + span)}; {@code i} picks it, so every
   * thread or completion can compute its own without shared state.
   */
  public static long random(long seed, long i, long start, long span, int block) {
    long blocks = span / block;
    if (blocks <= 0) {
      throw new IllegalArgumentException("span " + span + " holds no block of " + block);
    }
    long h = new SplittableRandom(seed * 0x9E3779B97F4A7C15L + i).nextLong(blocks);
    return start + h * block;
  }

  /**
   * The i-th offset of a walk that visits every block of {@code [start, start + span)} once before
   * any block twice (a multiplicative permutation of the block numbers), so reads never hit what an
   * earlier read brought into the cache until the whole range has been read.
   */
  public static long unique(long seed, long i, long start, long span, int block) {
    long blocks = span / block;
    if (blocks <= 0) {
      throw new IllegalArgumentException("span " + span + " holds no block of " + block);
    }
    // An odd multiplier coprime with the block count visits every residue once per period.
    long m = (0x9E3779B97F4A7C15L ^ seed) | 1;
    while (gcd(Math.floorMod(m, blocks), blocks) != 1 && blocks > 1) {
      m += 2;
    }
    long n = Math.floorMod(i, blocks);
    long b = Math.floorMod(multiplyMod(n, Math.floorMod(m, blocks), blocks) + seed, blocks);
    return start + b * block;
  }

  /** The i-th 1 MiB (or {@code block}) step of a sequential pass, wrapping at the end. */
  public static long sequential(long i, long start, long span, int block) {
    long blocks = span / block;
    if (blocks <= 0) {
      throw new IllegalArgumentException("span " + span + " holds no block of " + block);
    }
    return start + Math.floorMod(i, blocks) * block;
  }

  private static long multiplyMod(long a, long b, long mod) {
    if (mod <= (1L << 31)) {
      return (a * b) % mod; // both below 2^31: no overflow
    }
    return java.math.BigInteger.valueOf(a)
        .multiply(java.math.BigInteger.valueOf(b))
        .mod(java.math.BigInteger.valueOf(mod))
        .longValue();
  }

  private static long gcd(long a, long b) {
    while (b != 0) {
      long t = a % b;
      a = b;
      b = t;
    }
    return a;
  }
}
