package io.peerflash.util;

/**
 * Client-supplied text put into messages. An error names what it refused, but a name can be 100,000
 * characters long or hold a NUL: echoed as it is, it broke the HTTP/2 header that carries a gRPC
 * status (the client saw INTERNAL instead of the real error) and put control characters into logs.
 */
public final class Texts {
  /** Characters of a client's value shown in a message; the rest is counted, not shown. */
  public static final int MAX_QUOTED_CHARS = 64;

  /** Longest status description a node sends; longer ones are cut (their start says enough). */
  public static final int MAX_DESCRIPTION_CHARS = 1024;

  private Texts() {}

  /**
   * {@code 'value'} with control and other non-printable characters escaped ({@code \u0000}) and at
   * most {@link #MAX_QUOTED_CHARS} characters shown.
   */
  public static String quote(String value) {
    if (value == null) {
      return "(none)";
    }
    StringBuilder b = new StringBuilder(Math.min(value.length(), MAX_QUOTED_CHARS) + 16);
    b.append('\'');
    int shown = Math.min(value.length(), MAX_QUOTED_CHARS);
    escape(value, 0, shown, b);
    b.append('\'');
    if (shown < value.length()) {
      b.append("... (").append(value.length()).append(" characters)");
    }
    return b.toString();
  }

  /**
   * A status description safe to send and log: printable, at most {@link #MAX_DESCRIPTION_CHARS}
   * characters.
   */
  public static String description(String text) {
    if (text == null) {
      return null;
    }
    boolean clean = text.length() <= MAX_DESCRIPTION_CHARS;
    for (int i = 0; clean && i < text.length(); i++) {
      clean = printable(text.charAt(i));
    }
    if (clean) {
      return text;
    }
    StringBuilder b = new StringBuilder(MAX_DESCRIPTION_CHARS + 32);
    int shown = Math.min(text.length(), MAX_DESCRIPTION_CHARS);
    escape(text, 0, shown, b);
    if (shown < text.length()) {
      b.append("... (").append(text.length() - shown).append(" more characters)");
    }
    return b.toString();
  }

  private static void escape(String s, int from, int to, StringBuilder out) {
    for (int i = from; i < to; i++) {
      char c = s.charAt(i);
      if (printable(c)) {
        out.append(c);
      } else {
        out.append(String.format("\\u%04x", (int) c));
      }
    }
  }

  private static boolean printable(char c) {
    if (c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0)) {
      return false;
    }
    int type = Character.getType(c);
    return type != Character.UNASSIGNED
        && type != Character.SURROGATE
        && type != Character.PRIVATE_USE
        && type != Character.FORMAT
        && type != Character.LINE_SEPARATOR
        && type != Character.PARAGRAPH_SEPARATOR;
  }
}
