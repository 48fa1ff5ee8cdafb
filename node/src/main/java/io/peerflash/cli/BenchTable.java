package io.peerflash.cli;

import io.peerflash.bench.BenchResult;
import io.peerflash.bench.Report;
import java.io.PrintStream;
import java.util.List;
import java.util.Locale;

/** The table {@code peerflash bench} prints: one row per run, one more per phase of a run. */
final class BenchTable {
  private BenchTable() {}

  static void print(PrintStream out, List<BenchResult> results) {
    Table t =
        new Table(
            "WORKLOAD", "QD", "IOPS", "MiB/s", "P50 us", "P99 us", "P99.9 us", "MAX us", "ERRORS");
    for (BenchResult r : results) {
      t.row(
          r.workload(),
          r.qd(),
          Report.count(r.iops()),
          String.format(Locale.ROOT, "%.1f", r.mibPerSec()),
          us(r.latency().p50()),
          us(r.latency().p99()),
          us(r.latency().p999()),
          us(r.latency().max()),
          r.errors());
      for (BenchResult.Phase p : r.phases()) {
        t.row(
            "  " + p.name(),
            "",
            Report.count(p.iops()),
            "",
            us(p.latency().p50()),
            us(p.latency().p99()),
            us(p.latency().p999()),
            us(p.latency().max()),
            "");
      }
    }
    t.print(out);
  }

  private static String us(double v) {
    return String.format(Locale.ROOT, v >= 100 ? "%.0f" : "%.1f", v);
  }
}
