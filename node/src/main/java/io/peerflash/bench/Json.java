package io.peerflash.bench;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The little JSON the benchmark needs: writes maps, lists, strings, numbers, booleans and null, and
 * reads them back ({@link Map} in key order, {@link List}, {@link String}, {@link Double}, {@link
 * Boolean}, null). Results are exchanged between processes (the bench client, the peer's load
 * client, the report) as files of this form.
 */
public final class Json {
  private Json() {}

  /** Compact JSON of {@code value}; non-finite numbers are written as null. */
  public static String write(Object value) {
    StringBuilder b = new StringBuilder();
    write(b, value, "", false);
    return b.toString();
  }

  /** Indented JSON (two spaces), one object member or array element per line. */
  public static String pretty(Object value) {
    StringBuilder b = new StringBuilder();
    write(b, value, "", true);
    return b.append('\n').toString();
  }

  private static void write(StringBuilder b, Object v, String indent, boolean pretty) {
    if (v == null) {
      b.append("null");
    } else if (v instanceof String s) {
      quote(b, s);
    } else if (v instanceof Boolean bool) {
      b.append(bool);
    } else if (v instanceof Double || v instanceof Float) {
      double d = ((Number) v).doubleValue();
      if (!Double.isFinite(d)) {
        b.append("null");
      } else if (d == Math.rint(d) && Math.abs(d) < 1e15) {
        b.append((long) d);
      } else {
        // Six significant digits are plenty for latencies and rates.
        b.append(
            new java.math.BigDecimal(d)
                .round(new java.math.MathContext(6))
                .stripTrailingZeros()
                .toPlainString());
      }
    } else if (v instanceof Number n) {
      b.append(n.longValue());
    } else if (v instanceof Map<?, ?> m) {
      if (m.isEmpty()) {
        b.append("{}");
        return;
      }
      String inner = indent + "  ";
      b.append('{');
      boolean first = true;
      for (Map.Entry<?, ?> e : m.entrySet()) {
        if (!first) {
          b.append(',');
        }
        first = false;
        if (pretty) {
          b.append('\n').append(inner);
        }
        quote(b, String.valueOf(e.getKey()));
        b.append(pretty ? ": " : ":");
        write(b, e.getValue(), inner, pretty);
      }
      if (pretty) {
        b.append('\n').append(indent);
      }
      b.append('}');
    } else if (v instanceof List<?> list) {
      // Lists of numbers stay on one line: percentile curves and timelines would be too tall.
      boolean flat = !pretty || list.stream().allMatch(x -> x == null || x instanceof Number);
      String inner = indent + "  ";
      b.append('[');
      for (int i = 0; i < list.size(); i++) {
        if (i > 0) {
          b.append(flat && pretty ? ", " : ",");
        }
        if (!flat) {
          b.append('\n').append(inner);
        }
        write(b, list.get(i), inner, pretty);
      }
      if (!flat && !list.isEmpty()) {
        b.append('\n').append(indent);
      }
      b.append(']');
    } else if (v instanceof double[] arr) {
      List<Object> l = new ArrayList<>(arr.length);
      for (double d : arr) {
        l.add(d);
      }
      write(b, l, indent, pretty);
    } else {
      throw new IllegalArgumentException("cannot write " + v.getClass().getName() + " as JSON");
    }
  }

  private static void quote(StringBuilder b, String s) {
    b.append('"');
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      switch (c) {
        case '"' -> b.append("\\\"");
        case '\\' -> b.append("\\\\");
        case '\n' -> b.append("\\n");
        case '\r' -> b.append("\\r");
        case '\t' -> b.append("\\t");
        default -> {
          if (c < 0x20) {
            b.append(String.format(Locale.ROOT, "\\u%04x", (int) c));
          } else {
            b.append(c);
          }
        }
      }
    }
    b.append('"');
  }

  /**
   * Parses one JSON value.
   *
   * @throws IllegalArgumentException naming the offset of the first error
   */
  public static Object parse(String text) {
    Parser p = new Parser(text);
    p.skipBlanks();
    Object v = p.value();
    p.skipBlanks();
    if (p.pos != text.length()) {
      throw p.error("unexpected text after the value");
    }
    return v;
  }

  private static final class Parser {
    private final String s;
    private int pos;

    Parser(String s) {
      this.s = s;
    }

    IllegalArgumentException error(String what) {
      return new IllegalArgumentException("bad JSON at offset " + pos + ": " + what);
    }

    void skipBlanks() {
      while (pos < s.length() && Character.isWhitespace(s.charAt(pos))) {
        pos++;
      }
    }

    char peek() {
      if (pos >= s.length()) {
        throw error("unexpected end");
      }
      return s.charAt(pos);
    }

    void expect(char c) {
      if (peek() != c) {
        throw error("expected '" + c + "'");
      }
      pos++;
    }

    Object value() {
      char c = peek();
      switch (c) {
        case '{':
          return object();
        case '[':
          return array();
        case '"':
          return string();
        case 't':
          return literal("true", Boolean.TRUE);
        case 'f':
          return literal("false", Boolean.FALSE);
        case 'n':
          return literal("null", null);
        default:
          if (c == '-' || (c >= '0' && c <= '9')) {
            return number();
          }
          throw error("unexpected '" + c + "'");
      }
    }

    Object literal(String word, Object v) {
      if (!s.startsWith(word, pos)) {
        throw error("expected " + word);
      }
      pos += word.length();
      return v;
    }

    Map<String, Object> object() {
      expect('{');
      Map<String, Object> m = new LinkedHashMap<>();
      skipBlanks();
      if (peek() == '}') {
        pos++;
        return m;
      }
      while (true) {
        skipBlanks();
        String key = string();
        skipBlanks();
        expect(':');
        skipBlanks();
        m.put(key, value());
        skipBlanks();
        if (peek() == ',') {
          pos++;
          continue;
        }
        expect('}');
        return m;
      }
    }

    List<Object> array() {
      expect('[');
      List<Object> l = new ArrayList<>();
      skipBlanks();
      if (peek() == ']') {
        pos++;
        return l;
      }
      while (true) {
        skipBlanks();
        l.add(value());
        skipBlanks();
        if (peek() == ',') {
          pos++;
          continue;
        }
        expect(']');
        return l;
      }
    }

    String string() {
      expect('"');
      StringBuilder b = new StringBuilder();
      while (true) {
        char c = peek();
        pos++;
        if (c == '"') {
          return b.toString();
        }
        if (c != '\\') {
          b.append(c);
          continue;
        }
        char e = peek();
        pos++;
        switch (e) {
          case '"', '\\', '/' -> b.append(e);
          case 'n' -> b.append('\n');
          case 'r' -> b.append('\r');
          case 't' -> b.append('\t');
          case 'b' -> b.append('\b');
          case 'f' -> b.append('\f');
          case 'u' -> {
            if (pos + 4 > s.length()) {
              throw error("short \\u escape");
            }
            b.append((char) Integer.parseInt(s.substring(pos, pos + 4), 16));
            pos += 4;
          }
          default -> throw error("bad escape \\" + e);
        }
      }
    }

    Double number() {
      int start = pos;
      while (pos < s.length() && "+-0123456789.eE".indexOf(s.charAt(pos)) >= 0) {
        pos++;
      }
      try {
        return Double.parseDouble(s.substring(start, pos));
      } catch (NumberFormatException e) {
        pos = start;
        throw error("bad number");
      }
    }
  }
}
