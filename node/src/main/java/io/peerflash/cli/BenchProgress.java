package io.peerflash.cli;

import io.peerflash.bench.LoadDriver;
import io.peerflash.bench.Plots;
import io.peerflash.bench.Report;
import java.io.PrintStream;
import java.util.Locale;

/** A progress bar on stderr: redrawn in place on a terminal, a line every 5 s elsewhere. */
final class BenchProgress implements LoadDriver.ProgressListener {
  static final int BAR_WIDTH = 20;
  private final PrintStream err;
  private final boolean interactive;
  private final String what;
  private int calls;
  private String last = "";

  BenchProgress(PeerFlashCli cli, String what) {
    this.err = cli.err();
    this.interactive = cli.interactive();
    this.what = what;
  }

  @Override
  public void interval(
      double fractionDone, boolean warmingUp, double iops, double p99Micros, long errors) {
    String line = line(what, fractionDone, warmingUp, iops, p99Micros, errors);
    calls++;
    if (interactive) {
      err.print("\r" + line + " ".repeat(Math.max(0, last.length() - line.length())));
      if (fractionDone >= 1) {
        err.println();
      }
    } else if (calls % 5 == 0 || fractionDone >= 1) {
      err.println(line);
    }
    err.flush();
    last = line;
  }

  /**
   * E.g. {@code write qd32 [#########...........] 45% now 12.3k IOPS, p99 850 us}: the rate and p99
   * of the last interval only ("now"), where the final table gives the whole run's.
   */
  static String line(
      String what,
      double fractionDone,
      boolean warmingUp,
      double iops,
      double p99Micros,
      long errors) {
    int filled = (int) Math.round(Math.max(0, Math.min(1, fractionDone)) * BAR_WIDTH);
    return String.format(
        Locale.ROOT,
        "%s [%s%s] %3d%% now %s IOPS, p99 %s%s%s",
        what,
        "#".repeat(filled),
        ".".repeat(BAR_WIDTH - filled),
        (int) Math.floor(Math.max(0, Math.min(1, fractionDone)) * 100),
        Report.count(iops),
        Plots.micros(Math.round(p99Micros)),
        warmingUp ? " (warm-up)" : "",
        errors > 0 ? ", " + errors + " errors" : "");
  }
}
