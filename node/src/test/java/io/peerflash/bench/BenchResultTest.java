package io.peerflash.bench;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.peerflash.bench.BenchResult.Phase;
import io.peerflash.bench.BenchResult.TimelinePoint;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.HdrHistogram.Histogram;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class BenchResultTest {
  @TempDir Path tmp;

  static Histogram histogram(long... micros) {
    Histogram h = new Histogram(3);
    for (long us : micros) {
      h.recordValue(us * 1000);
    }
    return h;
  }

  @Test
  void percentilesComeFromTheHistogramInMicroseconds() {
    long[] values = new long[1000];
    for (int i = 0; i < values.length; i++) {
      values[i] = i + 1; // 1..1000 us
    }
    Histogram h = histogram(values);
    Latency l = Latency.ofNanos(h);
    assertThat(l.p50()).isBetween(499.0, 501.0);
    assertThat(l.p99()).isBetween(989.0, 991.0);
    assertThat(l.p999()).isBetween(998.0, 1000.5);
    assertThat(l.max()).isBetween(999.0, 1000.5);
    assertThat(Latency.ofNanos(new Histogram(3))).isEqualTo(Latency.NONE);
    List<double[]> curve = BenchResult.curve(h);
    assertThat(curve).hasSize(BenchResult.CURVE.length);
    assertThat(curve.get(curve.size() - 1)[0]).isEqualTo(100);
    assertThat(curve.get(curve.size() - 1)[1]).isEqualTo(l.max());
    for (int i = 1; i < curve.size(); i++) {
      assertThat(curve.get(i)[1]).isGreaterThanOrEqualTo(curve.get(i - 1)[1]);
    }
  }

  static BenchResult sample(String id, int qd, double p50, double iops) {
    Histogram h = histogram((long) p50, (long) p50, (long) (p50 * 3));
    return new BenchResult(
        id,
        id + " run",
        "peerflash",
        "write",
        qd,
        4096,
        "write-back",
        1,
        10,
        (long) (iops * 10),
        0,
        new Latency(p50, p50 * 2, p50 * 3, p50 * 4, p50 * 5, p50 * 1.1),
        BenchResult.curve(h),
        List.of(),
        List.of(),
        0,
        "");
  }

  @Test
  void fileRoundTripKeepsEverything() throws IOException {
    BenchResult plain = sample("wb-r1", 32, 250, 9000);
    BenchResult full =
        new BenchResult(
            "sustained",
            "long run",
            "peerflash",
            "write",
            32,
            4096,
            "write-back",
            1,
            60,
            600_000,
            3,
            new Latency(100, 200, 300, 400, 50_000, 150),
            BenchResult.curve(histogram(100, 200)),
            List.of(
                new Phase("burst", 100, 10, new Latency(1, 2, 3, 4, 5, 6)),
                new Phase("destage-bound", 200, 50, new Latency(7, 8, 9, 10, 11, 12))),
            List.of(
                new TimelinePoint(1, 1000, 100, 300, 900, 0.25, 40.5),
                new TimelinePoint(2, 900, 110, 320, 1000, Double.NaN, Double.NaN)),
            64L << 20,
            "a note");
    Path f = tmp.resolve("sub/r.json");
    BenchResult.writeFile(f, List.of(plain, full));
    List<BenchResult> back = BenchResult.readFile(f);
    assertThat(back).hasSize(2);
    BenchResult b = back.get(1);
    assertThat(b.id()).isEqualTo("sustained");
    assertThat(b.qd()).isEqualTo(32);
    assertThat(b.ops()).isEqualTo(600_000);
    assertThat(b.errors()).isEqualTo(3);
    assertThat(b.iops()).isEqualTo(10_000);
    assertThat(b.latency()).isEqualTo(full.latency());
    assertThat(b.phase("destage-bound").latency().max()).isEqualTo(11);
    assertThat(b.phase("destage-bound").iops()).isEqualTo(4);
    assertThat(b.phase("none")).isNull();
    assertThat(b.timeline()).hasSize(2);
    assertThat(b.timeline().get(0)).isEqualTo(full.timeline().get(0));
    assertThat(b.timeline().get(1).dirtyFraction()).isNaN();
    assertThat(b.cacheBytes()).isEqualTo(64L << 20);
    assertThat(b.note()).isEqualTo("a note");
    assertThat(b.percentiles()).hasSameSizeAs(full.percentiles());
    assertThat(back.get(0).replicas()).isEqualTo(1);
    assertThat(back.get(0).mibPerSec()).isCloseTo(9000 * 4096 / 1048576.0, within());
  }

  private static org.assertj.core.data.Offset<Double> within() {
    return org.assertj.core.data.Offset.offset(1e-6);
  }

  @Test
  void rejectsOtherFiles() throws IOException {
    Path f = tmp.resolve("other.json");
    Files.writeString(f, "{\"results\": []}");
    assertThatThrownBy(() -> BenchResult.readFile(f)).hasMessageContaining("not a peerflash-bench");
    Files.writeString(f, "{oops");
    assertThatThrownBy(() -> BenchResult.readFile(f)).hasMessageContaining("bad JSON");
  }
}
