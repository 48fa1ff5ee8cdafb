package io.peerflash.node.bench;

import io.peerflash.node.engine.CacheEngine;
import io.peerflash.node.engine.EngineConfig;
import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.storage.FileBackingStore;
import io.peerflash.util.NamedThreadFactory;
import io.peerflash.util.Time;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.HdrHistogram.Histogram;

/**
 * How much does destaging cost foreground writes? Runs 4 KiB random write-back writes against the
 * engine (in process, real RocksDB and files) in three phases of the same length and prints a table
 * with ratios:
 *
 * <ol>
 *   <li>floor: a 4 KiB {@code pwrite} into a file, the cost no cache can avoid;
 *   <li>destage idle: the destager has nothing to do (watermarks out of reach);
 *   <li>destage flat out: the destager writes to shared storage all the time (watermarks at 0).
 * </ol>
 *
 * <p>Run: {@code node/bench/destage-impact.sh [seconds] [threads] [rounds]}.
 */
public final class DestageImpactBenchmark {
  private static final int BLOCK = 4096;
  private static final long VOLUME_BYTES = 1L << 30;

  record Result(String name, long ops, double seconds, Histogram latencyNanos, long destagedBytes) {
    double iops() {
      return ops / seconds;
    }
  }

  interface Op {
    void run(long offset, ByteBuffer data) throws Exception;
  }

  public static void main(String[] args) throws Exception {
    int seconds = args.length > 0 ? Integer.parseInt(args[0]) : 5;
    int threads = args.length > 1 ? Integer.parseInt(args[1]) : 4;
    int rounds = args.length > 2 ? Integer.parseInt(args[2]) : 3;
    Path dir = Files.createTempDirectory("peerflash-bench");
    try {
      List<Result> results = new ArrayList<>();
      results.add(floor(dir.resolve("floor"), seconds, threads));
      settle(dir);
      for (int round = 1; round <= rounds; round++) {
        results.add(
            engine(dir.resolve("idle-" + round), "destage idle", 1.0, 0.99, seconds, threads));
        settle(dir);
        results.add(
            engine(
                dir.resolve("busy-" + round), "destage flat out", 0.0001, 0.0, seconds, threads));
        settle(dir);
      }
      print(results, threads);
    } finally {
      deleteTree(dir);
    }
  }

  /**
   * Lets one phase's files leave before the next starts: a finished phase's dirty pages (a gigabyte
   * of cache file) written back by the kernel during the next phase would be charged to it. Its
   * files are deleted, which drops their pages, and whatever else is dirty is synced.
   */
  private static void settle(Path dir) throws Exception {
    try (var entries = Files.list(dir)) {
      for (Path p : entries.toList()) {
        deleteTree(p);
      }
    }
    Process sync = new ProcessBuilder("sync").inheritIO().start();
    if (sync.waitFor() != 0) {
      throw new IllegalStateException("sync failed");
    }
  }

  private static void deleteTree(Path dir) throws java.io.IOException {
    try (var walk = Files.walk(dir)) {
      walk.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    }
  }

  private static Result floor(Path dir, int seconds, int threads) throws Exception {
    Files.createDirectories(dir);
    try (FileChannel ch =
        FileChannel.open(
            dir.resolve("file"),
            StandardOpenOption.CREATE,
            StandardOpenOption.READ,
            StandardOpenOption.WRITE)) {
      return run(
          "floor: pwrite 4 KiB", seconds, threads, (off, data) -> ch.write(data, off), () -> 0L);
    }
  }

  private static Result engine(
      Path dir, String name, double high, double low, int seconds, int threads) throws Exception {
    FileBackingStore backing = new FileBackingStore(dir.resolve("shared"));
    EngineConfig config =
        EngineConfig.defaults(dir.resolve("data"), 1L << 30)
            .withDestage(high, low, Long.MAX_VALUE / 4)
            .withBackpressureTimeoutMs(60_000);
    try (CacheEngine engine = CacheEngine.open(config, backing, Time.SYSTEM)) {
      engine.start();
      engine.createVolume("bench", VOLUME_BYTES, CacheMode.WRITE_BACK, 0);
      return run(
          name,
          seconds,
          threads,
          (off, data) -> engine.write("bench", off, data),
          () -> engine.status().destagedBytes());
    }
  }

  private static Result run(
      String name, int seconds, int threads, Op op, java.util.function.LongSupplier destaged)
      throws Exception {
    ExecutorService pool =
        Executors.newFixedThreadPool(threads, new NamedThreadFactory("bench", true));
    // Warm up the JIT and the files for a second, then measure.
    long warmupEnd = System.nanoTime() + 1_000_000_000L;
    long destagedBefore = 0;
    List<Future<Histogram>> futures = new ArrayList<>();
    long[] start = new long[1];
    for (int t = 0; t < threads; t++) {
      final int seed = t;
      futures.add(
          pool.submit(
              () -> {
                SplittableRandom rnd = new SplittableRandom(seed);
                byte[] bytes = new byte[BLOCK];
                Histogram h = new Histogram(3_600_000_000_000L, 3);
                long end = warmupEnd + seconds * 1_000_000_000L;
                long now;
                while ((now = System.nanoTime()) < end) {
                  rnd.nextBytes(bytes);
                  long off = rnd.nextLong(VOLUME_BYTES / BLOCK) * BLOCK;
                  long t0 = System.nanoTime();
                  op.run(off, ByteBuffer.wrap(bytes));
                  long t1 = System.nanoTime();
                  if (now >= warmupEnd) {
                    h.recordValue(t1 - t0);
                  }
                }
                return h;
              }));
    }
    while (System.nanoTime() < warmupEnd) {
      Thread.sleep(10);
    }
    destagedBefore = destaged.getAsLong();
    Histogram all = new Histogram(3_600_000_000_000L, 3);
    for (Future<Histogram> f : futures) {
      all.add(f.get());
    }
    long destagedBytes = destaged.getAsLong() - destagedBefore;
    pool.shutdown();
    return new Result(name, all.getTotalCount(), seconds, all, destagedBytes);
  }

  private static void print(List<Result> results, int threads) {
    Result floor = results.get(0);
    System.out.printf(
        Locale.ROOT,
        "4 KiB random writes, %d threads, %.0f s per phase (write-back, no --sync); each round"
            + " an idle and a flat-out phase, each on a fresh engine%n",
        threads,
        floor.seconds());
    System.out.printf(
        Locale.ROOT,
        "| %-22s | %9s | %8s | %8s | %9s | %9s | %11s | %12s | %13s |%n",
        "phase",
        "IOPS",
        "p50 us",
        "p99 us",
        "p99.9 us",
        "max us",
        "destage MB/s",
        "IOPS vs floor",
        "IOPS vs idle");
    System.out.println("|---|---|---|---|---|---|---|---|---|");
    List<Double> ratios = new ArrayList<>();
    List<Double> idleIops = new ArrayList<>();
    List<Double> busyIops = new ArrayList<>();
    Result idle = null;
    for (Result r : results) {
      double vsIdle = 1.0;
      if (r.name().equals("destage idle")) {
        idle = r;
        idleIops.add(r.iops());
      } else if (idle != null) {
        vsIdle = r.iops() / idle.iops();
        ratios.add(vsIdle);
        busyIops.add(r.iops());
      }
      Histogram h = r.latencyNanos();
      System.out.printf(
          Locale.ROOT,
          "| %-22s | %9.0f | %8.1f | %8.1f | %9.1f | %9.1f | %11.1f | %12.2f | %13.2f |%n",
          r.name(),
          r.iops(),
          h.getValueAtPercentile(50) / 1000.0,
          h.getValueAtPercentile(99) / 1000.0,
          h.getValueAtPercentile(99.9) / 1000.0,
          h.getMaxValue() / 1000.0,
          r.destagedBytes() / r.seconds() / 1e6,
          r.iops() / floor.iops(),
          vsIdle);
    }
    System.out.printf(
        Locale.ROOT,
        "medians of %d rounds: idle %.0f IOPS, flat out %.0f IOPS, flat out vs idle %.2fx"
            + " (each round's ratio: %s)%n",
        ratios.size(),
        median(idleIops),
        median(busyIops),
        median(ratios),
        ratios.stream().map(x -> String.format(Locale.ROOT, "%.2f", x)).toList());
  }

  private static double median(List<Double> values) {
    List<Double> sorted = values.stream().sorted().toList();
    int n = sorted.size();
    return n % 2 == 1 ? sorted.get(n / 2) : (sorted.get(n / 2 - 1) + sorted.get(n / 2)) / 2;
  }

  private DestageImpactBenchmark() {}

  static {
    // Keep engine logs out of the table.
    System.setProperty("peerflash.log.level", "WARN");
  }
}
