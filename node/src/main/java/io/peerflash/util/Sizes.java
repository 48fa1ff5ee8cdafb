package io.peerflash.util;

import java.util.Locale;

/**
 * Parses and prints byte sizes such as {@code 4096}, {@code 64KiB}, {@code 256MiB}, {@code 1GiB}.
 */
public final class Sizes {
  public static final long KIB = 1024L;
  public static final long MIB = 1024L * KIB;
  public static final long GIB = 1024L * MIB;
  public static final long TIB = 1024L * GIB;

  private Sizes() {}

  /**
   * Parses a size. Binary suffixes (KiB, MiB, GiB, TiB) and their short forms (K, M, G, T, KB, MB,
   * GB, TB, all taken as powers of 1024) are accepted, case-insensitively; no suffix means bytes.
   *
   * @throws IllegalArgumentException naming the accepted forms when the text is not a size
   */
  public static long parse(String text) {
    String t = text.trim().toLowerCase(Locale.ROOT).replace("_", "");
    int i = 0;
    while (i < t.length() && Character.isDigit(t.charAt(i))) {
      i++;
    }
    if (i == 0) {
      throw new IllegalArgumentException(
          "not a size: '" + text + "' (expected e.g. 4096, 64KiB, 256MiB, 1GiB)");
    }
    long number = Long.parseLong(t.substring(0, i));
    String unit = t.substring(i).trim();
    long multiplier =
        switch (unit) {
          case "", "b" -> 1;
          case "k", "kb", "kib" -> KIB;
          case "m", "mb", "mib" -> MIB;
          case "g", "gb", "gib" -> GIB;
          case "t", "tb", "tib" -> TIB;
          default ->
              throw new IllegalArgumentException(
                  "unknown size unit '" + unit + "' in '" + text + "' (use KiB, MiB, GiB or TiB)");
        };
    return Math.multiplyExact(number, multiplier);
  }

  /** Formats a size with the largest binary unit that keeps one decimal, e.g. {@code 1.5 GiB}. */
  public static String format(long bytes) {
    if (bytes < KIB) {
      return bytes + " B";
    }
    String[] units = {"KiB", "MiB", "GiB", "TiB"};
    double value = bytes;
    int u = -1;
    while (value >= 1024 && u < units.length - 1) {
      value /= 1024;
      u++;
    }
    return String.format(Locale.ROOT, "%.1f %s", value, units[u]);
  }
}
