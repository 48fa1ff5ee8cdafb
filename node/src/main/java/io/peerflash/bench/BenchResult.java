package io.peerflash.bench;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.HdrHistogram.Histogram;

/**
 * One measured run: a workload at one queue depth against one system, with its latency percentiles,
 * its rate and, for long runs, its phases and per-second timeline.
 *
 * @param id what the run stands for in a comparison ({@code echo}, {@code wb-r1}...): runs of the
 *     same id differ by queue depth only
 * @param label a human description
 * @param system {@code peerflash}, {@code grpc-echo}, {@code hazelcast}...
 * @param workload {@link Workload#cliName()}, or the peer's own operation ({@code put})
 * @param mode the volume's mode, or empty
 * @param replicas the volume's replicas, or -1
 * @param seconds measured time (warm-up excluded)
 * @param percentiles (percentile, microseconds) points of the latency distribution, for plots
 * @param cacheBytes the cache size of the node that served the run, 0 when unknown
 * @param note how the calls travelled ({@value #TRANSPORT_TLS} or {@value #TRANSPORT_PLAINTEXT})
 *     for the runs of {@code peerflash bench}; empty when unknown
 */
public record BenchResult(
    String id,
    String label,
    String system,
    String workload,
    int qd,
    int blockBytes,
    String mode,
    int replicas,
    double seconds,
    long ops,
    long errors,
    Latency latency,
    List<double[]> percentiles,
    List<Phase> phases,
    List<TimelinePoint> timeline,
    long cacheBytes,
    String note) {

  /** {@link #note} of a run whose calls went over mutual TLS. */
  public static final String TRANSPORT_TLS = "TLS";

  /** {@link #note} of a run whose calls went in plaintext. */
  public static final String TRANSPORT_PLAINTEXT = "plaintext";

  /** The format tag of a results file. */
  public static final String SCHEMA = "peerflash-bench/1";

  /** The percentiles a distribution is summarised at for plots. */
  static final double[] CURVE = {
    1, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 99.999, 100
  };

  /** A part of a run, e.g. the time after the cache filled up. */
  public record Phase(String name, long ops, double seconds, Latency latency) {
    public double iops() {
      return seconds > 0 ? ops / seconds : 0;
    }
  }

  /**
   * One interval of a run. Latencies in microseconds; {@code dirtyFraction} and {@code
   * destageMibPerSec} are NaN when the node was not watched.
   */
  public record TimelinePoint(
      double t,
      double iops,
      double p50,
      double p99,
      double max,
      double dirtyFraction,
      double destageMibPerSec) {}

  public BenchResult {
    percentiles = List.copyOf(percentiles);
    phases = List.copyOf(phases);
    timeline = List.copyOf(timeline);
    note = note == null ? "" : note;
    mode = mode == null ? "" : mode;
  }

  public double iops() {
    return seconds > 0 ? ops / seconds : 0;
  }

  public double mibPerSec() {
    return iops() * blockBytes / (1024.0 * 1024.0);
  }

  public long bytes() {
    return ops * (long) blockBytes;
  }

  /** The named phase, or null. */
  public Phase phase(String name) {
    for (Phase p : phases) {
      if (p.name().equals(name)) {
        return p;
      }
    }
    return null;
  }

  /** (percentile, microseconds) points of a histogram of nanoseconds. */
  public static List<double[]> curve(Histogram nanos) {
    List<double[]> points = new ArrayList<>();
    if (nanos.getTotalCount() == 0) {
      return points;
    }
    for (double p : CURVE) {
      double v = p >= 100 ? nanos.getMaxValue() : nanos.getValueAtPercentile(p);
      points.add(new double[] {p, v / 1e3});
    }
    return points;
  }

  public Map<String, Object> toJson() {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("id", id);
    m.put("label", label);
    m.put("system", system);
    m.put("workload", workload);
    m.put("qd", qd);
    m.put("block_bytes", blockBytes);
    m.put("mode", mode);
    m.put("replicas", replicas);
    m.put("seconds", seconds);
    m.put("ops", ops);
    m.put("errors", errors);
    m.put("iops", iops());
    m.put("mib_per_s", mibPerSec());
    m.put("latency_us", latency.toJson());
    List<Object> curve = new ArrayList<>();
    for (double[] p : percentiles) {
      curve.add(List.of(p[0], p[1]));
    }
    m.put("percentiles_us", curve);
    if (!phases.isEmpty()) {
      List<Object> ph = new ArrayList<>();
      for (Phase p : phases) {
        Map<String, Object> pm = new LinkedHashMap<>();
        pm.put("name", p.name());
        pm.put("ops", p.ops());
        pm.put("seconds", p.seconds());
        pm.put("iops", p.iops());
        pm.put("latency_us", p.latency().toJson());
        ph.add(pm);
      }
      m.put("phases", ph);
    }
    if (!timeline.isEmpty()) {
      List<Object> tl = new ArrayList<>();
      for (TimelinePoint t : timeline) {
        tl.add(
            List.of(
                t.t(),
                t.iops(),
                t.p50(),
                t.p99(),
                t.max(),
                t.dirtyFraction(),
                t.destageMibPerSec()));
      }
      m.put("timeline_columns", "t_s,iops,p50_us,p99_us,max_us,dirty_fraction,destage_mib_per_s");
      m.put("timeline", tl);
    }
    if (cacheBytes > 0) {
      m.put("cache_bytes", cacheBytes);
    }
    if (!note.isEmpty()) {
      m.put("note", note);
    }
    return m;
  }

  public static BenchResult fromJson(Map<?, ?> m) {
    List<double[]> curve = new ArrayList<>();
    if (m.get("percentiles_us") instanceof List<?> l) {
      for (Object o : l) {
        if (o instanceof List<?> pair && pair.size() == 2) {
          curve.add(new double[] {d(pair.get(0)), d(pair.get(1))});
        }
      }
    }
    List<Phase> phases = new ArrayList<>();
    if (m.get("phases") instanceof List<?> l) {
      for (Object o : l) {
        if (o instanceof Map<?, ?> pm) {
          phases.add(
              new Phase(
                  str(pm.get("name")),
                  (long) d(pm.get("ops")),
                  d(pm.get("seconds")),
                  Latency.fromJson(pm.get("latency_us"))));
        }
      }
    }
    List<TimelinePoint> timeline = new ArrayList<>();
    if (m.get("timeline") instanceof List<?> l) {
      for (Object o : l) {
        if (o instanceof List<?> r && r.size() >= 7) {
          timeline.add(
              new TimelinePoint(
                  d(r.get(0)),
                  d(r.get(1)),
                  d(r.get(2)),
                  d(r.get(3)),
                  d(r.get(4)),
                  d(r.get(5)),
                  d(r.get(6))));
        }
      }
    }
    Object replicas = m.get("replicas");
    return new BenchResult(
        str(m.get("id")),
        str(m.get("label")),
        str(m.get("system")),
        str(m.get("workload")),
        (int) d(m.get("qd")),
        (int) d(m.get("block_bytes")),
        str(m.get("mode")),
        replicas instanceof Number n ? n.intValue() : -1,
        d(m.get("seconds")),
        (long) d(m.get("ops")),
        m.get("errors") instanceof Number n ? n.longValue() : 0,
        Latency.fromJson(m.get("latency_us")),
        curve,
        phases,
        timeline,
        m.get("cache_bytes") instanceof Number n ? n.longValue() : 0,
        m.get("note") == null ? "" : str(m.get("note")));
  }

  private static double d(Object o) {
    return o instanceof Number n ? n.doubleValue() : Double.NaN;
  }

  private static String str(Object o) {
    return o == null ? "" : o.toString();
  }

  /** Writes a results file: {@code {"schema": ..., "results": [...]}}. */
  public static void writeFile(Path file, List<BenchResult> results) throws IOException {
    Map<String, Object> doc = new LinkedHashMap<>();
    doc.put("schema", SCHEMA);
    List<Object> list = new ArrayList<>();
    for (BenchResult r : results) {
      list.add(r.toJson());
    }
    doc.put("results", list);
    Path parent = file.toAbsolutePath().getParent();
    if (parent != null) {
      Files.createDirectories(parent);
    }
    Files.writeString(file, Json.pretty(doc), StandardCharsets.UTF_8);
  }

  /**
   * Reads a results file.
   *
   * @throws IOException when unreadable or not a results file
   */
  public static List<BenchResult> readFile(Path file) throws IOException {
    Object doc;
    try {
      doc = Json.parse(Files.readString(file, StandardCharsets.UTF_8));
    } catch (IllegalArgumentException e) {
      throw new IOException(file + ": " + e.getMessage(), e);
    }
    if (!(doc instanceof Map<?, ?> m) || !SCHEMA.equals(m.get("schema"))) {
      throw new IOException(file + " is not a " + SCHEMA + " results file");
    }
    List<BenchResult> out = new ArrayList<>();
    if (m.get("results") instanceof List<?> l) {
      for (Object o : l) {
        if (o instanceof Map<?, ?> rm) {
          out.add(fromJson(rm));
        }
      }
    }
    return out;
  }
}
