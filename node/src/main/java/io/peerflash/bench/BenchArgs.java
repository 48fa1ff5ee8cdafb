package io.peerflash.bench;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/** Parsing of the benchmark's command-line values. */
public final class BenchArgs {
  public static final int MAX_QUEUE_DEPTH = 1024;

  private BenchArgs() {}

  /**
   * "1,32" to [1, 32]: positive, at most {@value #MAX_QUEUE_DEPTH}, duplicates dropped, order kept.
   */
  public static List<Integer> queueDepths(String text) {
    List<Integer> out = new ArrayList<>();
    for (String part : text.split(",", -1)) {
      String p = part.trim();
      if (p.isEmpty()) {
        continue;
      }
      int qd;
      try {
        qd = Integer.parseInt(p);
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException("queue depth must be a number, got '" + p + "'");
      }
      if (qd < 1 || qd > MAX_QUEUE_DEPTH) {
        throw new IllegalArgumentException(
            "queue depth must be between 1 and " + MAX_QUEUE_DEPTH + ", got " + qd);
      }
      if (!out.contains(qd)) {
        out.add(qd);
      }
    }
    if (out.isEmpty()) {
      throw new IllegalArgumentException("no queue depth given");
    }
    return out;
  }

  /** "write,read-hit" to the workloads, duplicates dropped, order kept. */
  public static List<Workload> workloads(String text) {
    List<Workload> out = new ArrayList<>();
    for (String part : text.split(",", -1)) {
      if (part.isBlank()) {
        continue;
      }
      Workload w = Workload.parse(part);
      if (!out.contains(w)) {
        out.add(w);
      }
    }
    if (out.isEmpty()) {
      throw new IllegalArgumentException("no workload given (use " + Workload.names() + ")");
    }
    return out;
  }

  /**
   * "500ms", "10s", "3m", "1h", or a plain number of seconds.
   *
   * @throws IllegalArgumentException when malformed or negative
   */
  public static Duration duration(String text) {
    String t = text.trim().toLowerCase(Locale.ROOT);
    long unitNanos;
    String number;
    if (t.endsWith("ms")) {
      unitNanos = 1_000_000L;
      number = t.substring(0, t.length() - 2);
    } else if (t.endsWith("s")) {
      unitNanos = 1_000_000_000L;
      number = t.substring(0, t.length() - 1);
    } else if (t.endsWith("m")) {
      unitNanos = 60_000_000_000L;
      number = t.substring(0, t.length() - 1);
    } else if (t.endsWith("h")) {
      unitNanos = 3_600_000_000_000L;
      number = t.substring(0, t.length() - 1);
    } else {
      unitNanos = 1_000_000_000L;
      number = t;
    }
    double v;
    try {
      v = Double.parseDouble(number.trim());
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(
          "duration must look like 500ms, 10s, 3m or 1h, got '" + text + "'");
    }
    if (v < 0 || Double.isNaN(v) || Double.isInfinite(v)) {
      throw new IllegalArgumentException("duration must not be negative, got '" + text + "'");
    }
    return Duration.ofNanos(Math.round(v * unitNanos));
  }
}
