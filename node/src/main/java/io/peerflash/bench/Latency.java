package io.peerflash.bench;

import java.util.LinkedHashMap;
import java.util.Map;
import org.HdrHistogram.Histogram;

/** Latency percentiles of a run, in microseconds. */
public record Latency(double p50, double p90, double p99, double p999, double max, double mean) {
  public static final Latency NONE = new Latency(0, 0, 0, 0, 0, 0);

  /** From a histogram of nanoseconds. */
  public static Latency ofNanos(Histogram h) {
    if (h.getTotalCount() == 0) {
      return NONE;
    }
    return new Latency(
        h.getValueAtPercentile(50) / 1e3,
        h.getValueAtPercentile(90) / 1e3,
        h.getValueAtPercentile(99) / 1e3,
        h.getValueAtPercentile(99.9) / 1e3,
        h.getMaxValue() / 1e3,
        h.getMean() / 1e3);
  }

  Map<String, Object> toJson() {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("p50", p50);
    m.put("p90", p90);
    m.put("p99", p99);
    m.put("p99_9", p999);
    m.put("max", max);
    m.put("mean", mean);
    return m;
  }

  static Latency fromJson(Object o) {
    if (!(o instanceof Map<?, ?> m)) {
      return NONE;
    }
    return new Latency(
        num(m, "p50"),
        num(m, "p90"),
        num(m, "p99"),
        num(m, "p99_9"),
        num(m, "max"),
        num(m, "mean"));
  }

  static double num(Map<?, ?> m, String key) {
    Object v = m.get(key);
    return v instanceof Number n ? n.doubleValue() : Double.NaN;
  }
}
