package io.peerflash.bench;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.function.ToDoubleFunction;

/**
 * Turns the results of one comparison run into a Markdown report with every ratio, the targets (met
 * or missed) and the plots.
 *
 * <p>Runs are found by id ({@code compare.sh} names them): {@value #ECHO}, {@value #WB_R0}, {@value
 * #WB_R1}, {@value #WB_R2}, {@value #READ_HIT}, {@value #READ_MISS}, {@value #MIX}, {@value
 * #SEQ_WRITE}, {@value #WT_SLOW}, {@value #WB_SLOW}, {@value #PEER}, {@value #SUSTAINED}, and the
 * alternating rounds of TLS against plaintext, {@value #TLS_ROUND}N and {@value #PLAIN_ROUND}N (N =
 * 1, 2, ...), with the plaintext echo {@value #PLAIN_ECHO} beside the echo, and the QD1 rounds of
 * the runs judged against the echo, {@value #WB_R1}{@value #AGAIN}N and {@value #READ_HIT}{@value
 * #AGAIN}N (N = 2, 3, ...). Any other id is listed with its ratios but takes part in no target.
 */
public final class Report {
  public static final String ECHO = "echo";
  public static final String WB_R0 = "wb-r0";
  public static final String WB_R1 = "wb-r1";
  public static final String WB_R2 = "wb-r2";
  public static final String READ_HIT = "read-hit";
  public static final String READ_MISS = "read-miss";
  public static final String MIX = "mix";
  public static final String SEQ_WRITE = "seq-write";
  public static final String WT_SLOW = "wt-1ms";
  public static final String WB_SLOW = "wb-r1-1ms";
  public static final String PEER = "hazelcast";
  public static final String SUSTAINED = "sustained";

  /** The gRPC echo in plaintext; {@value #ECHO} is the one over TLS, as the nodes serve. */
  public static final String PLAIN_ECHO = "plain-echo";

  /** Round N of write-back, replicas 1, on a cluster with TLS: id {@code tls-wb-r1-N}. */
  public static final String TLS_ROUND = "tls-wb-r1-";

  /** Round N of the same on a cluster in plaintext, run right before or after the TLS round. */
  public static final String PLAIN_ROUND = "plain-wb-r1-";

  /**
   * Round N (2, 3, ...) of a QD1 run judged against its floor, {@value #WB_R1} or {@value
   * #READ_HIT}, run again with its own interleaved echo: id {@code <run id>-again-N}; the run
   * itself is round 1.
   */
  public static final String AGAIN = "-again-";

  /** Rounds of each transport the TLS against plaintext targets need. */
  public static final int MIN_ROUNDS = 3;

  /** QD1 write, replicas 1: TLS p50 at most this times plaintext p50 (medians of the rounds). */
  static final double TLS_QD1_P50_LIMIT = 1.15;

  /** Deepest queue, write, replicas 1: TLS IOPS at least this times plaintext IOPS (medians). */
  static final double TLS_DEEP_IOPS_LIMIT = 0.85;

  /** The file names {@link #write} creates in its directory. */
  public static final String MARKDOWN = "report.md";

  public static final String LATENCY_PNG = "latency.png";
  public static final String SUSTAINED_PNG = "sustained.png";

  /** A target of the benchmark and how this run did against it. */
  public record Verdict(String target, String measured, String ratio, String limit, Boolean met) {
    String metText() {
      return met == null ? "not run" : met ? "**met**" : "**missed**";
    }
  }

  private final List<BenchResult> results;

  public Report(List<BenchResult> results) {
    this.results = List.copyOf(results);
  }

  /** The run with this id and queue depth, or null. */
  public BenchResult find(String id, int qd) {
    for (BenchResult r : results) {
      if (r.id().equals(id) && r.qd() == qd) {
        return r;
      }
    }
    return null;
  }

  /** The first run with this id at the highest queue depth above 1, or null. */
  public BenchResult findDeep(String id) {
    BenchResult best = null;
    for (BenchResult r : results) {
      if (r.id().equals(id) && r.qd() > 1 && (best == null || r.qd() > best.qd())) {
        best = r;
      }
    }
    return best;
  }

  private BenchResult first(String id) {
    for (BenchResult r : results) {
      if (r.id().equals(id)) {
        return r;
      }
    }
    return null;
  }

  /**
   * The floor for a run at {@code qd}: the echo measured beside it (id {@code echo-<run id>}:
   * interleaved with it, or right before it) when there is one, since the machine drifts over a
   * long run; otherwise the run's echo.
   */
  public BenchResult floorFor(BenchResult run) {
    BenchResult adjacent = find(ECHO + "-" + run.id(), run.qd());
    if (adjacent != null) {
      return adjacent;
    }
    // A plaintext run's floor is the plaintext echo: the TLS echo would charge TLS to the run.
    return find(isPlaintext(run) ? PLAIN_ECHO : ECHO, run.qd());
  }

  private static boolean isFloor(BenchResult r) {
    return r.id().equals(ECHO) || r.id().startsWith(ECHO + "-") || r.id().equals(PLAIN_ECHO);
  }

  /** A run in plaintext: a round of {@link #PLAIN_ROUND} or one whose calls say so. */
  private static boolean isPlaintext(BenchResult r) {
    return r.id().startsWith("plain-") || r.note().equals(BenchResult.TRANSPORT_PLAINTEXT);
  }

  /**
   * The rounds of TLS against plaintext: round number to its run at {@code qd}, for one id prefix
   * ({@link #TLS_ROUND} or {@link #PLAIN_ROUND}), in round order.
   */
  SortedMap<Integer, BenchResult> rounds(String prefix, int qd) {
    SortedMap<Integer, BenchResult> m = new TreeMap<>();
    for (BenchResult r : results) {
      Integer n = roundOf(r.id(), prefix);
      if (n != null && r.qd() == qd) {
        m.putIfAbsent(n, r);
      }
    }
    return m;
  }

  /** N of a round's id ({@code prefix} then 1 to 6 digits), or null when {@code id} is none. */
  static Integer roundOf(String id, String prefix) {
    if (!id.startsWith(prefix)) {
      return null;
    }
    String rest = id.substring(prefix.length());
    if (rest.isEmpty() || rest.length() > 6 || !rest.chars().allMatch(Character::isDigit)) {
      return null;
    }
    return Integer.parseInt(rest);
  }

  /** The deepest queue (above 1) the rounds of either transport ran at, or 0 when none did. */
  private int deepestRoundQd() {
    int best = 0;
    for (BenchResult r : results) {
      if (r.qd() > best
          && (roundOf(r.id(), TLS_ROUND) != null || roundOf(r.id(), PLAIN_ROUND) != null)) {
        best = r.qd();
      }
    }
    return best > 1 ? best : 0;
  }

  /** The median; the mean of the middle two for an even count; NaN for none. */
  static double median(List<Double> values) {
    if (values.isEmpty()) {
      return Double.NaN;
    }
    List<Double> v = new ArrayList<>(values);
    v.sort(null);
    int n = v.size();
    return n % 2 == 1 ? v.get(n / 2) : (v.get(n / 2 - 1) + v.get(n / 2)) / 2;
  }

  private static List<Double> values(
      Map<Integer, BenchResult> rounds, ToDoubleFunction<BenchResult> f) {
    List<Double> out = new ArrayList<>();
    for (BenchResult r : rounds.values()) {
      out.add(f.applyAsDouble(r));
    }
    return out;
  }

  /**
   * TLS against plaintext on one figure: the medians over the rounds of each transport, their ratio
   * (TLS / plaintext) within {@code limit}. Not run when neither transport has a round at {@code
   * qd}; a miss when either has fewer than {@link #MIN_ROUNDS} (one transport alone proves nothing,
   * and two rounds cannot outvote a disturbed one) or when a round had errors.
   */
  Verdict tlsAgainstPlaintext(
      String what, int qd, ToDoubleFunction<BenchResult> f, double limit, boolean latency) {
    String limitText = (latency ? "<= " : ">= ") + x(limit);
    SortedMap<Integer, BenchResult> tls = rounds(TLS_ROUND, qd);
    SortedMap<Integer, BenchResult> plain = rounds(PLAIN_ROUND, qd);
    String target =
        "TLS vs plaintext, write-back, replicas 1, QD"
            + (qd > 0 ? String.valueOf(qd) : latency ? "1" : "32")
            + ": "
            + what
            + " (medians of alternating rounds on two clusters)";
    if (tls.isEmpty() && plain.isEmpty()) {
      return new Verdict(target, "-", "-", limitText, null);
    }
    double a = median(values(tls, f));
    double b = median(values(plain, f));
    double ratio = a / b;
    StringBuilder measured = new StringBuilder();
    measured.append(latency ? micros(a) : countOrDash(a)).append(" vs ");
    measured.append(latency ? micros(b) : countOrDash(b) + " IOPS");
    measured.append(", rounds ").append(tls.size()).append(" + ").append(plain.size());
    boolean enough = tls.size() >= MIN_ROUNDS && plain.size() >= MIN_ROUNDS;
    if (!enough) {
      measured.append(" (").append(MIN_ROUNDS).append(" of each needed)");
    }
    long errors = 0;
    for (BenchResult r : tls.values()) {
      errors += r.errors();
    }
    for (BenchResult r : plain.values()) {
      errors += r.errors();
    }
    if (errors > 0) {
      measured.append(", ").append(errors).append(" errors");
    }
    boolean within = latency ? ratio <= limit : ratio >= limit;
    return new Verdict(
        target, measured.toString(), x(ratio), limitText, enough && errors == 0 && within);
  }

  private static String micros(double us) {
    return Double.isNaN(us) ? "-" : Plots.micros(us);
  }

  private static String countOrDash(double n) {
    return Double.isNaN(n) ? "-" : count(n);
  }

  /** Every target of the issue, evaluated on these results. */
  public List<Verdict> verdicts() {
    List<Verdict> v = new ArrayList<>();
    v.add(atMostFloor("write-back, replicas 1, QD1: p50 vs gRPC echo QD1 p50", WB_R1, 2.5));
    v.add(atMostFloor("read hit, QD1: p50 vs gRPC echo QD1 p50", READ_HIT, 1.3));
    BenchResult wbDeep = findDeep(WB_R1);
    BenchResult peerDeep = wbDeep == null ? findDeep(PEER) : find(PEER, wbDeep.qd());
    if (wbDeep == null || peerDeep == null) {
      v.add(
          new Verdict(
              "write-back, replicas 1, QD32: IOPS vs Hazelcast put (backup-count 1) at the same QD",
              "-",
              "-",
              ">= 1.5x",
              null));
    } else {
      double ratio = wbDeep.iops() / peerDeep.iops();
      v.add(
          new Verdict(
              "write-back, replicas 1, QD"
                  + wbDeep.qd()
                  + ": IOPS vs Hazelcast put (backup-count 1)",
              count(wbDeep.iops()) + " vs " + count(peerDeep.iops()) + " IOPS",
              x(ratio),
              ">= 1.5x",
              ratio >= 1.5));
    }
    BenchResult wt = find(WT_SLOW, 1);
    BenchResult wbSlow = find(WB_SLOW, 1);
    if (wt == null || wbSlow == null) {
      v.add(
          new Verdict(
              "1 ms storage, QD1: write-through p50 vs write-back p50", "-", "-", ">= 5x", null));
    } else {
      double ratio = wt.latency().p50() / wbSlow.latency().p50();
      v.add(
          new Verdict(
              "1 ms storage, QD1: write-through p50 vs write-back (replicas 1) p50",
              Plots.micros(wt.latency().p50()) + " vs " + Plots.micros(wbSlow.latency().p50()),
              x(ratio),
              ">= 5x",
              ratio >= 5));
    }
    BenchResult s = first(SUSTAINED);
    BenchResult.Phase bound = s == null ? null : s.phase(LoadDriver.PHASE_DESTAGE_BOUND);
    if (s == null || bound == null || bound.ops() == 0) {
      v.add(
          new Verdict(
              "sustained: slowest write while destage runs flat out (cache > 2x full)",
              s == null ? "-" : "no destage-bound phase (wrote too little)",
              "-",
              "<= 100 ms",
              s == null ? null : false));
    } else {
      double fill = s.cacheBytes() > 0 ? (double) s.bytes() / s.cacheBytes() : Double.NaN;
      boolean full = !Double.isNaN(fill) && fill >= 2;
      v.add(
          new Verdict(
              "sustained: slowest write while destage runs flat out (cache > 2x full)",
              String.format(
                  Locale.ROOT,
                  "max %s, p99.9 %s, %s written (%s the cache)",
                  Plots.micros(bound.latency().max()),
                  Plots.micros(bound.latency().p999()),
                  mib(s.bytes()),
                  Double.isNaN(fill) ? "?" : x(fill)),
              "-",
              "<= 100 ms",
              bound.latency().max() <= 100_000 && full));
    }
    v.add(tlsAgainstPlaintext("p50", 1, r -> r.latency().p50(), TLS_QD1_P50_LIMIT, true));
    v.add(
        tlsAgainstPlaintext(
            "IOPS", deepestRoundQd(), BenchResult::iops, TLS_DEEP_IOPS_LIMIT, false));
    return v;
  }

  /**
   * A QD1 p50 against the floor measured beside it, judged by the median over the rounds ({@code
   * id}, then {@code id}{@value #AGAIN}N) of each round's ratio: on a shared machine one run's
   * ratio moves by more than a target's margin. A miss with fewer than {@link #MIN_ROUNDS} rounds
   * or with errors in any.
   */
  private Verdict atMostFloor(String target, String id, double limit) {
    List<BenchResult> runs = new ArrayList<>();
    BenchResult first = find(id, 1);
    if (first != null) {
      runs.add(first);
    }
    runs.addAll(rounds(id + AGAIN, 1).values());
    String limitText = "<= " + x(limit);
    List<Double> ratios = new ArrayList<>();
    List<Double> p50s = new ArrayList<>();
    List<Double> floors = new ArrayList<>();
    long errors = 0;
    boolean beside = false;
    for (BenchResult run : runs) {
      BenchResult floor = floorFor(run);
      if (floor == null) {
        continue;
      }
      beside |= !floor.id().equals(ECHO);
      p50s.add(run.latency().p50());
      floors.add(floor.latency().p50());
      ratios.add(run.latency().p50() / floor.latency().p50());
      errors += run.errors();
    }
    target += beside ? " (the echo interleaved with each round)" : "";
    target += ", median of rounds";
    if (ratios.isEmpty()) {
      return new Verdict(target, "-", "-", limitText, null);
    }
    double ratio = median(ratios);
    StringBuilder measured = new StringBuilder();
    measured
        .append(Plots.micros(median(p50s)))
        .append(" vs ")
        .append(Plots.micros(median(floors)))
        .append(", rounds ");
    for (int i = 0; i < ratios.size(); i++) {
      measured.append(i == 0 ? "" : " / ").append(x(ratios.get(i)));
    }
    boolean enough = ratios.size() >= MIN_ROUNDS;
    if (!enough) {
      measured.append(" (").append(MIN_ROUNDS).append(" needed)");
    }
    if (errors > 0) {
      measured.append(", ").append(errors).append(" errors");
    }
    return new Verdict(
        target, measured.toString(), x(ratio), limitText, enough && errors == 0 && ratio <= limit);
  }

  private Verdict atMost(
      String target,
      BenchResult a,
      BenchResult b,
      ToDoubleFunction<BenchResult> f,
      double limit,
      boolean latency) {
    if (a == null || b == null) {
      return new Verdict(target, "-", "-", "<= " + x(limit), null);
    }
    double ratio = f.applyAsDouble(a) / f.applyAsDouble(b);
    String measured =
        latency
            ? Plots.micros(f.applyAsDouble(a)) + " vs " + Plots.micros(f.applyAsDouble(b))
            : count(f.applyAsDouble(a)) + " vs " + count(f.applyAsDouble(b));
    return new Verdict(target, measured, x(ratio), "<= " + x(limit), ratio <= limit);
  }

  /** The report as Markdown; {@code context} lines go under the title. */
  public String markdown(List<String> context, boolean withLatencyPlot, boolean withSustainedPlot) {
    StringBuilder b = new StringBuilder();
    b.append("# PeerFlash benchmark report\n\n");
    for (String line : context) {
      b.append(line).append("  \n");
    }
    b.append('\n');
    b.append("## Targets\n\n");
    b.append("| target | measured | ratio | limit | result |\n|---|---|---|---|---|\n");
    for (Verdict v : verdicts()) {
      b.append("| ")
          .append(v.target())
          .append(" | ")
          .append(v.measured())
          .append(" | ")
          .append(v.ratio())
          .append(" | ")
          .append(v.limit())
          .append(" | ")
          .append(v.metText())
          .append(" |\n");
    }
    b.append('\n');
    b.append("## Every run\n\n");
    b.append(
        "Latencies in microseconds. Ratios are against the gRPC echo (the floor) at the same queue"
            + " depth, measured in the same run (beside the run where there is an echo-<run>"
            + " line: its label says how): latency ratio = p50 / echo p50, rate ratio = IOPS /"
            + " echo IOPS.\n\n");
    b.append(
        "| run | what | QD | IOPS | MiB/s | p50 | p99 | p99.9 | max | p50 / echo | IOPS / echo |"
            + " errors | transport |\n");
    b.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (BenchResult r : sorted()) {
      BenchResult echo =
          r.id().equals(PLAIN_ECHO) ? r : isFloor(r) ? find(ECHO, r.qd()) : floorFor(r);
      b.append("| ")
          .append(r.id())
          .append(" | ")
          .append(r.label())
          .append(" | ")
          .append(r.qd())
          .append(" | ")
          .append(count(r.iops()))
          .append(" | ")
          .append(String.format(Locale.ROOT, "%.1f", r.mibPerSec()))
          .append(" | ")
          .append(us(r.latency().p50()))
          .append(" | ")
          .append(us(r.latency().p99()))
          .append(" | ")
          .append(us(r.latency().p999()))
          .append(" | ")
          .append(us(r.latency().max()))
          .append(" | ")
          .append(echo == null ? "-" : x(r.latency().p50() / echo.latency().p50()))
          .append(" | ")
          .append(echo == null ? "-" : x(r.iops() / echo.iops()))
          .append(" | ")
          .append(r.errors())
          .append(" | ")
          .append(r.note().isEmpty() ? "-" : r.note())
          .append(" |\n");
    }
    b.append('\n');
    comparisons(b);
    tlsSection(b);
    BenchResult s = first(SUSTAINED);
    if (s != null) {
      b.append("## Sustained run\n\n");
      b.append(
          String.format(
              Locale.ROOT,
              "%s, QD%d, %.0f s: %s written, %s the cache of the owner (%s); %d errors.\n\n",
              s.label(),
              s.qd(),
              s.seconds(),
              mib(s.bytes()),
              s.cacheBytes() > 0 ? x((double) s.bytes() / s.cacheBytes()) : "?",
              s.cacheBytes() > 0 ? mib(s.cacheBytes()) : "unknown size",
              s.errors()));
      b.append(
          "The destage-bound phase starts once the writes since the start (warm-up included) exceed"
              + " the cache: from then on every write needs space the destager must free.\n\n");
      b.append("| phase | ops | s | IOPS | p50 | p99 | p99.9 | max |\n");
      b.append("|---|---|---|---|---|---|---|---|\n");
      for (BenchResult.Phase p : s.phases()) {
        b.append(
            String.format(
                Locale.ROOT,
                "| %s | %d | %.1f | %s | %s | %s | %s | %s |\n",
                p.name(),
                p.ops(),
                p.seconds(),
                count(p.iops()),
                us(p.latency().p50()),
                us(p.latency().p99()),
                us(p.latency().p999()),
                us(p.latency().max())));
      }
      double destage = 0;
      int n = 0;
      for (BenchResult.TimelinePoint t : s.timeline()) {
        if (!Double.isNaN(t.destageMibPerSec())) {
          destage += t.destageMibPerSec();
          n++;
        }
      }
      if (n > 0) {
        b.append(
            String.format(
                Locale.ROOT, "\nMean destage rate of the owner: %.1f MiB/s.\n", destage / n));
      }
      b.append('\n');
      if (withSustainedPlot) {
        b.append("![sustained run](").append(SUSTAINED_PNG).append(")\n\n");
      }
    }
    if (withLatencyPlot) {
      b.append("## Latency distributions\n\n![latency](").append(LATENCY_PNG).append(")\n");
    }
    return b.toString();
  }

  private void comparisons(StringBuilder b) {
    List<String> lines = new ArrayList<>();
    BenchResult peer1 = find(PEER, 1);
    BenchResult wb1 = find(WB_R1, 1);
    if (peer1 != null && wb1 != null) {
      lines.add(
          String.format(
              Locale.ROOT,
              "- QD1 write, replicas/backups 1: PeerFlash p50 %s vs Hazelcast put p50 %s (%s);"
                  + " IOPS %s vs %s (%s)",
              Plots.micros(wb1.latency().p50()),
              Plots.micros(peer1.latency().p50()),
              x(wb1.latency().p50() / peer1.latency().p50()),
              count(wb1.iops()),
              count(peer1.iops()),
              x(wb1.iops() / peer1.iops())));
    }
    BenchResult wbDeep = findDeep(WB_R1);
    BenchResult peerDeep = wbDeep == null ? null : find(PEER, wbDeep.qd());
    if (wbDeep != null && peerDeep != null) {
      lines.add(
          String.format(
              Locale.ROOT,
              "- QD%d write, replicas/backups 1: PeerFlash %s IOPS vs Hazelcast %s IOPS (%s); p50 %s"
                  + " vs %s",
              wbDeep.qd(),
              count(wbDeep.iops()),
              count(peerDeep.iops()),
              x(wbDeep.iops() / peerDeep.iops()),
              Plots.micros(wbDeep.latency().p50()),
              Plots.micros(peerDeep.latency().p50())));
    }
    String[] ladder = {WB_R0, WB_R1, WB_R2};
    BenchResult r0 = find(WB_R0, 1);
    if (r0 != null) {
      for (String id : ladder) {
        BenchResult r = find(id, 1);
        if (r != null && r != r0) {
          lines.add(
              String.format(
                  Locale.ROOT,
                  "- QD1 write-back, %s vs replicas 0: p50 %s vs %s (%s): the cost of the copies",
                  r.label(),
                  Plots.micros(r.latency().p50()),
                  Plots.micros(r0.latency().p50()),
                  x(r.latency().p50() / r0.latency().p50())));
        }
      }
    }
    BenchResult wt = find(WT_SLOW, 1);
    BenchResult wbSlow = find(WB_SLOW, 1);
    if (wt != null && wbSlow != null) {
      lines.add(
          String.format(
              Locale.ROOT,
              "- 1 ms storage, QD1: write-through p50 %s vs write-back p50 %s (%s lower)",
              Plots.micros(wt.latency().p50()),
              Plots.micros(wbSlow.latency().p50()),
              x(wt.latency().p50() / wbSlow.latency().p50())));
    }
    for (BenchResult plainEcho : results) {
      BenchResult tlsEcho = find(ECHO, plainEcho.qd());
      if (plainEcho.id().equals(PLAIN_ECHO) && tlsEcho != null) {
        lines.add(
            String.format(
                Locale.ROOT,
                "- gRPC echo QD%d, TLS vs plaintext: p50 %s vs %s (%s); IOPS %s vs %s (%s)",
                plainEcho.qd(),
                Plots.micros(tlsEcho.latency().p50()),
                Plots.micros(plainEcho.latency().p50()),
                x(tlsEcho.latency().p50() / plainEcho.latency().p50()),
                count(tlsEcho.iops()),
                count(plainEcho.iops()),
                x(tlsEcho.iops() / plainEcho.iops())));
      }
    }
    if (!lines.isEmpty()) {
      b.append("## Side by side\n\n");
      for (String l : lines) {
        b.append(l).append('\n');
      }
      b.append('\n');
    }
  }

  /** The rounds of TLS against plaintext, each beside the other, and their medians. */
  private void tlsSection(StringBuilder b) {
    TreeSet<Integer> depths = new TreeSet<>();
    for (BenchResult r : results) {
      if (roundOf(r.id(), TLS_ROUND) != null || roundOf(r.id(), PLAIN_ROUND) != null) {
        depths.add(r.qd());
      }
    }
    if (depths.isEmpty()) {
      return;
    }
    b.append("## TLS vs plaintext\n\n");
    b.append(
        "Write-back, replicas 1, on two clusters side by side, one with mutual TLS (the default)"
            + " and one run with --insecure; their runs alternate, so a drift of the machine's"
            + " speed reaches both. Each figure compares the medians over the rounds.\n\n");
    b.append(
        "| QD | round | TLS p50 | plaintext p50 | p50 TLS / plaintext | TLS IOPS | plaintext IOPS"
            + " | IOPS TLS / plaintext |\n");
    b.append("|---|---|---|---|---|---|---|---|\n");
    for (int qd : depths) {
      SortedMap<Integer, BenchResult> tls = rounds(TLS_ROUND, qd);
      SortedMap<Integer, BenchResult> plain = rounds(PLAIN_ROUND, qd);
      TreeSet<Integer> numbers = new TreeSet<>(tls.keySet());
      numbers.addAll(plain.keySet());
      for (int n : numbers) {
        BenchResult t = tls.get(n);
        BenchResult p = plain.get(n);
        roundRow(
            b,
            qd,
            String.valueOf(n),
            t == null ? Double.NaN : t.latency().p50(),
            p == null ? Double.NaN : p.latency().p50(),
            t == null ? Double.NaN : t.iops(),
            p == null ? Double.NaN : p.iops());
      }
      roundRow(
          b,
          qd,
          "**median**",
          median(values(tls, r -> r.latency().p50())),
          median(values(plain, r -> r.latency().p50())),
          median(values(tls, BenchResult::iops)),
          median(values(plain, BenchResult::iops)));
    }
    b.append('\n');
  }

  private static void roundRow(
      StringBuilder b,
      int qd,
      String round,
      double tlsP50,
      double plainP50,
      double tlsIops,
      double plainIops) {
    b.append(
        String.format(
            Locale.ROOT,
            "| %d | %s | %s | %s | %s | %s | %s | %s |\n",
            qd,
            round,
            us(tlsP50),
            us(plainP50),
            x(tlsP50 / plainP50),
            Double.isNaN(tlsIops) ? "-" : count(tlsIops),
            Double.isNaN(plainIops) ? "-" : count(plainIops),
            x(tlsIops / plainIops)));
  }

  private List<BenchResult> sorted() {
    List<String> order =
        List.of(
            ECHO,
            PLAIN_ECHO,
            WB_R0,
            WB_R1,
            WB_R2,
            READ_HIT,
            READ_MISS,
            MIX,
            SEQ_WRITE,
            WB_SLOW,
            WT_SLOW,
            PEER,
            SUSTAINED);
    List<BenchResult> out = new ArrayList<>(results);
    // An adjacent floor (echo-<run>) goes right before its run; the rounds of TLS against
    // plaintext go last, round by round, TLS first.
    out.sort(
        Comparator.comparingInt(
                (BenchResult r) -> {
                  String id =
                      r.id().startsWith(ECHO + "-") ? r.id().substring(ECHO.length() + 1) : r.id();
                  int i = order.indexOf(id);
                  return i < 0 ? order.size() : i;
                })
            .thenComparingInt(r -> isFloor(r) ? 0 : 1)
            .thenComparingInt(
                r -> {
                  Integer t = roundOf(r.id(), TLS_ROUND);
                  Integer p = roundOf(r.id(), PLAIN_ROUND);
                  return t != null ? 2 * t : p != null ? 2 * p + 1 : 0;
                })
            .thenComparing(BenchResult::id)
            .thenComparingInt(BenchResult::qd));
    return out;
  }

  /** Writes report.md and the plots into {@code dir}; returns the Markdown file. */
  public Path write(Path dir, List<String> context) throws IOException {
    Files.createDirectories(dir);
    TreeSet<Integer> depths = new TreeSet<>();
    for (BenchResult r : results) {
      if (!r.id().equals(SUSTAINED) && !r.percentiles().isEmpty()) {
        depths.add(r.qd());
      }
    }
    boolean latencyPlot = !depths.isEmpty();
    if (latencyPlot) {
      List<Plots.Panel> panels = new ArrayList<>();
      for (int qd : depths) {
        List<BenchResult> rs = new ArrayList<>();
        for (BenchResult r : sorted()) {
          if (r.qd() == qd && !r.id().equals(SUSTAINED)) {
            rs.add(r);
          }
        }
        panels.add(new Plots.Panel("queue depth " + qd, rs));
      }
      Plots.writePng(Plots.percentiles(panels), dir.resolve(LATENCY_PNG));
    }
    BenchResult s = first(SUSTAINED);
    boolean sustainedPlot = s != null && !s.timeline().isEmpty();
    if (sustainedPlot) {
      Plots.writePng(
          Plots.timeline(s.label() + ", QD" + s.qd() + ": per second", s.timeline()),
          dir.resolve(SUSTAINED_PNG));
    }
    Path md = dir.resolve(MARKDOWN);
    Files.writeString(md, markdown(context, latencyPlot, sustainedPlot), StandardCharsets.UTF_8);
    return md;
  }

  /** "2.50x". */
  static String x(double ratio) {
    if (Double.isNaN(ratio) || Double.isInfinite(ratio)) {
      return "-";
    }
    return String.format(Locale.ROOT, ratio >= 100 ? "%.0fx" : "%.2fx", ratio);
  }

  /** "812", "12.3k", "1.20M". */
  public static String count(double v) {
    if (v >= 1e6) {
      return String.format(Locale.ROOT, "%.2fM", v / 1e6);
    }
    if (v >= 1e4) {
      return String.format(Locale.ROOT, "%.1fk", v / 1e3);
    }
    return String.format(Locale.ROOT, "%.0f", v);
  }

  /** Microseconds with a precision that suits their size. */
  static String us(double v) {
    if (Double.isNaN(v)) {
      return "-";
    }
    return String.format(Locale.ROOT, v >= 100 ? "%.0f" : "%.1f", v);
  }

  static String mib(long bytes) {
    return String.format(Locale.ROOT, "%.0f MiB", bytes / (1024.0 * 1024.0));
  }
}
