package io.peerflash.bench;

import static io.peerflash.bench.BenchResultTest.sample;
import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.bench.BenchResult.Phase;
import io.peerflash.bench.BenchResult.TimelinePoint;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ReportTest {
  @TempDir Path tmp;

  static BenchResult sustained(double maxMicros, long cacheBytes) {
    List<TimelinePoint> tl = new ArrayList<>();
    for (int t = 1; t <= 30; t++) {
      tl.add(new TimelinePoint(t, 5000 + 100 * t, 200, 900, 3000 + t, t / 30.0, 40));
    }
    return new BenchResult(
        Report.SUSTAINED,
        "sustained writes",
        "peerflash",
        "write",
        32,
        4096,
        "write-back",
        1,
        30,
        150_000,
        0,
        new Latency(200, 400, 900, 2000, maxMicros, 250),
        BenchResult.curve(BenchResultTest.histogram(200, 900)),
        List.of(
            new Phase(
                LoadDriver.PHASE_BURST, 50_000, 10, new Latency(150, 300, 600, 900, 1000, 170)),
            new Phase(
                LoadDriver.PHASE_DESTAGE_BOUND,
                100_000,
                20,
                new Latency(250, 500, 1000, 2000, maxMicros, 300))),
        tl,
        cacheBytes,
        "");
  }

  static List<BenchResult> all(double wbP50) {
    return List.of(
        sample(Report.ECHO, 1, 100, 9000),
        sample(Report.ECHO, 32, 1000, 30000),
        sample(Report.WB_R0, 1, 150, 6000),
        sample(Report.WB_R1, 1, wbP50, 4000),
        sample(Report.WB_R1, 32, 2000, 12000),
        sample(Report.WB_R1 + Report.AGAIN + 2, 1, wbP50, 4000),
        sample(Report.WB_R1 + Report.AGAIN + 3, 1, wbP50, 4000),
        sample(Report.READ_HIT, 1, 120, 8000),
        sample(Report.READ_HIT + Report.AGAIN + 2, 1, 120, 8000),
        sample(Report.READ_HIT + Report.AGAIN + 3, 1, 120, 8000),
        sample(Report.WT_SLOW, 1, 2500, 400),
        sample(Report.WB_SLOW, 1, 300, 3000),
        sample(Report.PEER, 1, 180, 5000),
        sample(Report.PEER, 32, 6000, 6000),
        sustained(45_000, 64L << 20));
  }

  @Test
  void verdictsCompareTheRightRuns() {
    List<Report.Verdict> v = new Report(all(240)).verdicts();
    assertThat(v).hasSize(7);
    // No rounds of TLS against plaintext: those two targets were not run.
    assertThat(v.get(5).met()).isNull();
    assertThat(v.get(6).met()).isNull();
    assertThat(v.get(0).ratio()).isEqualTo("2.40x");
    assertThat(v.get(0).met()).isTrue();
    assertThat(v.get(1).ratio()).isEqualTo("1.20x");
    assertThat(v.get(1).met()).isTrue();
    assertThat(v.get(2).ratio()).isEqualTo("2.00x");
    assertThat(v.get(2).measured()).isEqualTo("12.0k vs 6000 IOPS");
    assertThat(v.get(2).met()).isTrue();
    assertThat(v.get(3).ratio()).isEqualTo("8.33x");
    assertThat(v.get(3).met()).isTrue();
    // 150000 writes of 4 KiB = 586 MiB into a 64 MiB cache.
    assertThat(v.get(4).measured()).contains("max 45 ms", "9.16x the cache");
    assertThat(v.get(4).met()).isTrue();

    List<Report.Verdict> missed = new Report(all(260)).verdicts();
    assertThat(missed.get(0).met()).isFalse();
    assertThat(missed.get(0).metText()).isEqualTo("**missed**");
  }

  @Test
  void anEchoMeasuredJustBeforeARunIsThatRunsFloor() throws IOException {
    List<BenchResult> results = new ArrayList<>(all(240));
    // The machine got slower after the first echo: the floor next to each run counts.
    for (String round : List.of("", Report.AGAIN + 2, Report.AGAIN + 3)) {
      results.add(sample(Report.ECHO + "-" + Report.WB_R1 + round, 1, 120, 8000));
      results.add(sample(Report.ECHO + "-" + Report.READ_HIT + round, 1, 80, 8000));
    }
    Report report = new Report(results);
    List<Report.Verdict> v = report.verdicts();
    assertThat(v.get(0).ratio()).isEqualTo("2.00x");
    assertThat(v.get(0).target()).contains("(the echo interleaved with each round)");
    assertThat(v.get(1).ratio()).isEqualTo("1.50x");
    assertThat(v.get(1).met()).isFalse();
    // Runs without one keep the run's echo.
    assertThat(report.floorFor(report.find(Report.WB_R0, 1)).id()).isEqualTo(Report.ECHO);

    String md = Files.readString(report.write(tmp, List.of()));
    assertThat(md.indexOf("| echo-wb-r1 |"))
        .isBetween(md.indexOf("| wb-r0 |"), md.indexOf("| wb-r1 |"));
  }

  @Test
  void aQd1TargetIsJudgedByTheMedianOfItsRoundsAndNeedsThree() {
    List<BenchResult> results = new ArrayList<>();
    double[] p50s = {220, 270, 240}; // against echoes of 100: 2.2x, 2.7x, 2.4x
    for (int i = 0; i < p50s.length; i++) {
      String id = i == 0 ? Report.WB_R1 : Report.WB_R1 + Report.AGAIN + (i + 1);
      results.add(sample(Report.ECHO + "-" + id, 1, 100, 9000));
      results.add(sample(id, 1, p50s[i], 4000));
    }
    Report.Verdict v = new Report(results).verdicts().get(0);
    assertThat(v.ratio()).isEqualTo("2.40x");
    assertThat(v.measured()).isEqualTo("240 us vs 100 us, rounds 2.20x / 2.70x / 2.40x");
    assertThat(v.target()).contains("median of rounds");
    assertThat(v.met()).isTrue();

    // Two rounds whose median is within the limit are still a miss: three are needed.
    Report.Verdict two = new Report(results.subList(0, 4)).verdicts().get(0);
    assertThat(two.ratio()).isEqualTo("2.45x");
    assertThat(two.measured()).endsWith("(3 needed)");
    assertThat(two.met()).isFalse();
  }

  @Test
  void missingRunsAreNotRunAndSlowDestageMisses() {
    List<Report.Verdict> none = new Report(List.of(sample(Report.ECHO, 1, 100, 1))).verdicts();
    assertThat(none).allSatisfy(v -> assertThat(v.met()).isNull());
    List<Report.Verdict> slow = new Report(List.of(sustained(150_000, 64L << 20))).verdicts();
    assertThat(slow.get(4).met()).isFalse();
    // Too little written: the cache never was twice full.
    List<Report.Verdict> small = new Report(List.of(sustained(1_000, 1L << 30))).verdicts();
    assertThat(small.get(4).met()).isFalse();
  }

  @Test
  void writesMarkdownAndPlots() throws IOException {
    Path md = new Report(all(240)).write(tmp, List.of("machine: test"));
    String text = Files.readString(md);
    assertThat(text)
        .contains("# PeerFlash benchmark report", "machine: test", "## Targets", "**met**")
        .contains("| wb-r1 | wb-r1 run | 32 | 12.0k |")
        .contains("## Side by side", "## Sustained run", "destage-bound")
        .contains("![latency](latency.png)", "![sustained run](sustained.png)")
        .contains("Mean destage rate of the owner: 40.0 MiB/s");
    // Echo at QD1 is 1.00x of itself.
    assertThat(text).contains("| echo | echo run | 1 | 9000 | 35.2 | 100 |");
    BufferedImage latency = ImageIO.read(tmp.resolve(Report.LATENCY_PNG).toFile());
    assertThat(latency.getWidth()).isEqualTo(2 * 640);
    BufferedImage sus = ImageIO.read(tmp.resolve(Report.SUSTAINED_PNG).toFile());
    assertThat(sus.getWidth()).isEqualTo(1100);
    // Something was drawn besides the white background.
    assertThat(distinctColours(latency)).isGreaterThan(5);
  }

  private static int distinctColours(BufferedImage img) {
    java.util.Set<Integer> c = new java.util.HashSet<>();
    for (int x = 0; x < img.getWidth(); x += 3) {
      for (int y = 0; y < img.getHeight(); y += 3) {
        c.add(img.getRGB(x, y));
      }
    }
    return c.size();
  }

  /** Rounds of TLS and plaintext at QD1 and QD32: p50 and IOPS of each round, in order. */
  static List<BenchResult> rounds(
      double[] tlsP50, double[] plainP50, double[] tlsIops, double[] plainIops) {
    List<BenchResult> out = new ArrayList<>();
    for (int i = 0; i < tlsP50.length; i++) {
      out.add(sample(Report.TLS_ROUND + (i + 1), 1, tlsP50[i], 5000));
      out.add(sample(Report.TLS_ROUND + (i + 1), 32, 2000, tlsIops[i]));
    }
    for (int i = 0; i < plainP50.length; i++) {
      out.add(sample(Report.PLAIN_ROUND + (i + 1), 1, plainP50[i], 5000));
      out.add(sample(Report.PLAIN_ROUND + (i + 1), 32, 2000, plainIops[i]));
    }
    return out;
  }

  @Test
  void medianOfOddAndEvenCounts() {
    assertThat(Report.median(List.of(5.0, 1.0, 3.0))).isEqualTo(3.0);
    assertThat(Report.median(List.of(4.0, 1.0, 3.0, 100.0))).isEqualTo(3.5);
    assertThat(Report.median(List.of(7.0))).isEqualTo(7.0);
    assertThat(Report.median(List.of())).isNaN();
  }

  @Test
  void roundNumbersComeFromTheIdOnly() {
    assertThat(Report.roundOf("tls-wb-r1-1", Report.TLS_ROUND)).isEqualTo(1);
    assertThat(Report.roundOf("tls-wb-r1-12", Report.TLS_ROUND)).isEqualTo(12);
    assertThat(Report.roundOf("plain-wb-r1-3", Report.PLAIN_ROUND)).isEqualTo(3);
    assertThat(Report.roundOf("plain-wb-r1-3", Report.TLS_ROUND)).isNull();
    assertThat(Report.roundOf("tls-wb-r1-", Report.TLS_ROUND)).isNull();
    assertThat(Report.roundOf("tls-wb-r1-2b", Report.TLS_ROUND)).isNull();
    assertThat(Report.roundOf("tls-wb-r1-1234567", Report.TLS_ROUND)).isNull();
    assertThat(Report.roundOf(Report.WB_R1, Report.TLS_ROUND)).isNull();

    // Rounds are keyed by number and queue depth; other runs stay out.
    List<BenchResult> results =
        new ArrayList<>(
            rounds(
                new double[] {110, 120, 130},
                new double[] {100, 100},
                new double[] {9, 9, 9},
                new double[] {10, 10}));
    results.add(sample(Report.WB_R1, 1, 999, 1));
    Report report = new Report(results);
    assertThat(report.rounds(Report.TLS_ROUND, 1).keySet()).containsExactly(1, 2, 3);
    assertThat(report.rounds(Report.PLAIN_ROUND, 1).keySet()).containsExactly(1, 2);
    assertThat(report.rounds(Report.TLS_ROUND, 32).get(2).iops()).isEqualTo(9);
    assertThat(report.rounds(Report.TLS_ROUND, 64)).isEmpty();
  }

  @Test
  void tlsAgainstPlaintextComparesMediansOfTheRounds() {
    // One disturbed TLS round (500 us, 2000 IOPS) moves no median.
    List<BenchResult> results = new ArrayList<>(all(240));
    results.addAll(
        rounds(
            new double[] {110, 500, 112},
            new double[] {100, 98, 101},
            new double[] {9000, 2000, 9200},
            new double[] {10_000, 10_400, 9800}));
    List<Report.Verdict> v = new Report(results).verdicts();
    Report.Verdict qd1 = v.get(5);
    assertThat(qd1.target()).contains("TLS vs plaintext", "QD1", "p50");
    assertThat(qd1.measured()).isEqualTo("112 us vs 100 us, rounds 3 + 3");
    assertThat(qd1.ratio()).isEqualTo("1.12x");
    assertThat(qd1.limit()).isEqualTo("<= 1.15x");
    assertThat(qd1.met()).isTrue();
    Report.Verdict deep = v.get(6);
    assertThat(deep.target()).contains("QD32", "IOPS");
    assertThat(deep.measured()).isEqualTo("9000 vs 10.0k IOPS, rounds 3 + 3");
    assertThat(deep.ratio()).isEqualTo("0.90x");
    assertThat(deep.limit()).isEqualTo(">= 0.85x");
    assertThat(deep.met()).isTrue();
    // The earlier targets are still there and still judged.
    assertThat(v.get(0).met()).isTrue();

    List<Report.Verdict> slow =
        new Report(
                rounds(
                    new double[] {120, 118, 119},
                    new double[] {100, 100, 100},
                    new double[] {8000, 8400, 8300},
                    new double[] {10_000, 10_000, 10_000}))
            .verdicts();
    assertThat(slow.get(5).ratio()).isEqualTo("1.19x");
    assertThat(slow.get(5).met()).isFalse();
    assertThat(slow.get(6).ratio()).isEqualTo("0.83x");
    assertThat(slow.get(6).met()).isFalse();
  }

  @Test
  void tooFewRoundsOrErrorsMiss() {
    // Two rounds of plaintext: the ratio is shown but the target is missed.
    List<Report.Verdict> two =
        new Report(
                rounds(
                    new double[] {100, 100, 100},
                    new double[] {100, 100},
                    new double[] {10_000, 10_000, 10_000},
                    new double[] {10_000, 10_000}))
            .verdicts();
    assertThat(two.get(5).ratio()).isEqualTo("1.00x");
    assertThat(two.get(5).measured()).contains("rounds 3 + 2", "(3 of each needed)");
    assertThat(two.get(5).met()).isFalse();
    assertThat(two.get(6).met()).isFalse();

    // TLS alone compares with nothing: missed, not "not run".
    List<Report.Verdict> alone =
        new Report(
                rounds(
                    new double[] {100, 100, 100},
                    new double[0],
                    new double[] {10_000, 10_000, 10_000},
                    new double[0]))
            .verdicts();
    assertThat(alone.get(5).met()).isFalse();
    assertThat(alone.get(5).ratio()).isEqualTo("-");
    assertThat(alone.get(6).met()).isFalse();
    assertThat(alone.get(6).target()).contains("QD32");

    // A round with errors measured something else than the transport.
    List<BenchResult> results =
        new ArrayList<>(
            rounds(
                new double[] {100, 100},
                new double[] {100, 100, 100},
                new double[] {10_000, 10_000},
                new double[] {10_000, 10_000, 10_000}));
    BenchResult ok = sample(Report.TLS_ROUND + 3, 1, 100, 5000);
    results.add(
        new BenchResult(
            ok.id(),
            ok.label(),
            ok.system(),
            ok.workload(),
            ok.qd(),
            ok.blockBytes(),
            ok.mode(),
            ok.replicas(),
            ok.seconds(),
            ok.ops(),
            4,
            ok.latency(),
            ok.percentiles(),
            ok.phases(),
            ok.timeline(),
            ok.cacheBytes(),
            ok.note()));
    Report.Verdict withErrors = new Report(results).verdicts().get(5);
    assertThat(withErrors.ratio()).isEqualTo("1.00x");
    assertThat(withErrors.measured()).contains("4 errors");
    assertThat(withErrors.met()).isFalse();
  }

  @Test
  void markdownShowsTheRoundsAndThePlaintextEcho() throws IOException {
    List<BenchResult> results = new ArrayList<>(all(240));
    results.add(sample(Report.PLAIN_ECHO, 1, 80, 11_000));
    results.addAll(
        rounds(
            new double[] {110, 120, 115},
            new double[] {100, 104, 102},
            new double[] {9000, 9100, 9200},
            new double[] {10_000, 10_100, 10_200}));
    Report report = new Report(results);
    // A plaintext round is judged against the plaintext echo, a TLS one against the TLS echo.
    assertThat(report.floorFor(report.find(Report.PLAIN_ROUND + 1, 1)).id())
        .isEqualTo(Report.PLAIN_ECHO);
    assertThat(report.floorFor(report.find(Report.TLS_ROUND + 1, 1)).id()).isEqualTo(Report.ECHO);

    String md = Files.readString(report.write(tmp, List.of()));
    assertThat(md)
        .contains("## TLS vs plaintext")
        .contains("| 1 | 1 | 110 | 100 | 1.10x | 5000 | 5000 | 1.00x |")
        .contains("| 1 | **median** | 115 | 102 | 1.13x |")
        .contains("| 32 | **median** | 2000 | 2000 | 1.00x | 9100 | 10.1k | 0.90x |")
        .contains("- gRPC echo QD1, TLS vs plaintext: p50 100 us vs 80 us (1.25x)")
        .contains("| plain-echo | plain-echo run | 1 | 11.0k |");
    // Rounds in the order they ran: TLS 1, plaintext 1, TLS 2, ...
    assertThat(md.indexOf("| tls-wb-r1-1 |")).isLessThan(md.indexOf("| plain-wb-r1-1 |"));
    assertThat(md.indexOf("| plain-wb-r1-1 |")).isLessThan(md.indexOf("| tls-wb-r1-2 |"));
  }

  @Test
  void formats() {
    assertThat(Report.count(812)).isEqualTo("812");
    assertThat(Report.count(12_345)).isEqualTo("12.3k");
    assertThat(Report.count(1_200_000)).isEqualTo("1.20M");
    assertThat(Report.x(2.5)).isEqualTo("2.50x");
    assertThat(Report.x(Double.NaN)).isEqualTo("-");
    assertThat(Plots.micros(250)).isEqualTo("250 us");
    assertThat(Plots.micros(1500)).isEqualTo("1.5 ms");
    assertThat(Plots.micros(2_000_000)).isEqualTo("2 s");
    assertThat(Plots.nines(90)).isCloseTo(1, org.assertj.core.data.Offset.offset(1e-9));
    assertThat(Plots.nines(99.9)).isCloseTo(3, org.assertj.core.data.Offset.offset(1e-9));
    assertThat(Plots.nines(100)).isEqualTo(5);
    assertThat(Plots.decades(120, 4500)).containsExactly(2, 4);
  }
}
