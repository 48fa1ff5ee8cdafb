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

  /** How sizes are written, for help texts and messages. */
  public static final String RULE =
      "a number of bytes, or a number (fractions allowed, e.g. 1.5) with a unit K, M, G or T;"
          + " every unit is binary: K, KB and KiB all mean 1024";

  /**
   * Parses a size. Binary suffixes (KiB, MiB, GiB, TiB) and their short forms (K, M, G, T, KB, MB,
   * GB, TB, all taken as powers of 1024) are accepted, case-insensitively; no suffix means bytes. A
   * fraction is allowed when the result is a whole number of bytes (1.5GiB, not 1.5 bytes).
   *
   * @throws IllegalArgumentException naming the accepted forms when the text is not a size
   */
  public static long parse(String text) {
    String t = text.trim().toLowerCase(Locale.ROOT).replace("_", "");
    int i = 0;
    while (i < t.length() && (Character.isDigit(t.charAt(i)) || t.charAt(i) == '.')) {
      i++;
    }
    String digits = t.substring(0, i);
    if (digits.isEmpty() || digits.equals(".") || digits.indexOf('.') != digits.lastIndexOf('.')) {
      throw new IllegalArgumentException("not a size: '" + text + "' (" + RULE + ")");
    }
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
                  "unknown size unit '" + unit + "' in '" + text + "' (" + RULE + ")");
        };
    java.math.BigDecimal bytes =
        new java.math.BigDecimal(digits).multiply(java.math.BigDecimal.valueOf(multiplier));
    try {
      return bytes.longValueExact();
    } catch (ArithmeticException e) {
      throw new IllegalArgumentException(
          "'"
              + text
              + "' is "
              + bytes.stripTrailingZeros().toPlainString()
              + " bytes: not a whole number of bytes, or too large");
    }
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
