package io.peerflash.itbench;

import com.hazelcast.client.HazelcastClient;
import com.hazelcast.client.config.ClientConfig;
import com.hazelcast.core.HazelcastInstance;
import com.hazelcast.map.IMap;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.HdrHistogram.Histogram;
import org.HdrHistogram.Recorder;

/**
 * The peer's load: {@code IMap.put} of 4 KiB values at random keys through a Hazelcast client, at
 * each queue depth: QD N is N client threads each doing blocking {@code put}s in a closed loop,
 * measured like {@code peerflash bench} (warm-up, then HdrHistogram) and written as the same
 * results JSON ({@code peerflash-bench/1}).
 *
 * <p>Why threads and not {@code putAsync}: with N {@code putAsync} calls chained from their
 * completions, every next put was issued from the client's response thread, one at a time, and QD32
 * ran no faster than QD1 (5.4-5.7k/s against 5k/s): that measured the chaining, not Hazelcast.
 * Blocking puts on N threads keep N puts in flight whatever thread completes them.
 *
 * <p>Usage: {@code HazelcastLoad --members H:P,H:P --qd 1,32 --duration 10 --warmup 2 --json FILE}
 * (seconds).
 */
public final class HazelcastLoad {
  static final int VALUE_BYTES = 4096;
  static final double[] CURVE = {
    1, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 99.999, 100
  };

  private HazelcastLoad() {}

  public static void main(String[] args) throws Exception {
    String members = "127.0.0.1:5701,127.0.0.1:5702";
    String qds = "1,32";
    double duration = 10;
    double warmup = 2;
    int keys = 16384;
    String json = null;
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--members" -> members = args[++i];
        case "--qd" -> qds = args[++i];
        case "--duration" -> duration = Double.parseDouble(args[++i]);
        case "--warmup" -> warmup = Double.parseDouble(args[++i]);
        case "--keys" -> keys = Integer.parseInt(args[++i]);
        case "--json" -> json = args[++i];
        default -> {
          System.err.println("unknown argument " + args[i]);
          System.exit(2);
        }
      }
    }
    ClientConfig cc = new ClientConfig();
    cc.setClusterName(HazelcastMember.CLUSTER);
    cc.getNetworkConfig().addAddress(members.split(","));
    HazelcastInstance client = HazelcastClient.newHazelcastClient(cc);
    try {
      long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
      while (client.getCluster().getMembers().size() < 2 && System.nanoTime() < until) {
        Thread.sleep(100);
      }
      int size = client.getCluster().getMembers().size();
      if (size < 2) {
        throw new IllegalStateException("only " + size + " Hazelcast member(s) joined");
      }
      IMap<Long, byte[]> map = client.getMap(HazelcastMember.MAP);
      byte[][] values = new byte[64][VALUE_BYTES];
      SplittableRandom rnd = new SplittableRandom(1);
      for (byte[] v : values) {
        rnd.nextBytes(v);
      }
      List<String> results = new ArrayList<>();
      System.out.printf(
          Locale.ROOT,
          "%-8s %4s %8s %9s %9s %9s %9s %6s%n",
          "WORKLOAD",
          "QD",
          "IOPS",
          "P50 us",
          "P99 us",
          "P99.9 us",
          "MAX us",
          "ERRORS");
      for (String q : qds.split(",")) {
        int qd = Integer.parseInt(q.trim());
        Run run = new Run(map, values, keys, qd);
        run.go(warmup, duration);
        Histogram h = run.total;
        System.out.printf(
            Locale.ROOT,
            "%-8s %4d %8.0f %9.1f %9.1f %9.1f %9.1f %6d%n",
            "put",
            qd,
            h.getTotalCount() / run.seconds,
            h.getValueAtPercentile(50) / 1e3,
            h.getValueAtPercentile(99) / 1e3,
            h.getValueAtPercentile(99.9) / 1e3,
            h.getMaxValue() / 1e3,
            run.errors.get());
        results.add(json(run, qd));
      }
      if (json != null) {
        Path p = Path.of(json);
        if (p.toAbsolutePath().getParent() != null) {
          Files.createDirectories(p.toAbsolutePath().getParent());
        }
        Files.writeString(
            p,
            "{\"schema\": \"peerflash-bench/1\", \"results\": [\n"
                + String.join(",\n", results)
                + "\n]}\n",
            StandardCharsets.UTF_8);
        System.out.println("results: " + json);
      }
    } finally {
      client.shutdown();
    }
  }

  /** One queue depth: closed loop, warm-up dropped. */
  static final class Run {
    final IMap<Long, byte[]> map;
    final byte[][] values;
    final int keys;
    final int qd;
    final Recorder recorder = new Recorder(3);
    final AtomicLong next = new AtomicLong();
    final AtomicLong errors = new AtomicLong();
    volatile boolean stop;
    Histogram total;
    double seconds;

    Run(IMap<Long, byte[]> map, byte[][] values, int keys, int qd) {
      this.map = map;
      this.values = values;
      this.keys = keys;
      this.qd = qd;
    }

    long key(long i) {
      return new SplittableRandom(i * 0x9E3779B97F4A7C15L).nextLong(keys);
    }

    void go(double warmupS, double durationS) throws InterruptedException {
      Thread[] threads = new Thread[qd];
      CountDownLatch done = new CountDownLatch(qd);
      for (int k = 0; k < qd; k++) {
        threads[k] =
            new Thread(
                () -> {
                  try {
                    while (!stop) {
                      long i = next.getAndIncrement();
                      long t0 = System.nanoTime();
                      try {
                        map.put(key(i), values[(int) (i & 63)]);
                        recorder.recordValue(System.nanoTime() - t0);
                      } catch (RuntimeException e) {
                        errors.incrementAndGet();
                      }
                    }
                  } finally {
                    done.countDown();
                  }
                },
                "bench-load-" + k);
        threads[k].setDaemon(true);
        threads[k].start();
      }
      Thread.sleep((long) (warmupS * 1000));
      recorder.getIntervalHistogram();
      long from = System.nanoTime();
      Thread.sleep((long) (durationS * 1000));
      stop = true;
      done.await(60, TimeUnit.SECONDS);
      seconds = (System.nanoTime() - from) / 1e9;
      total = recorder.getIntervalHistogram();
    }
  }

  static String json(Run run, int qd) {
    Histogram h = run.total;
    StringBuilder curve = new StringBuilder();
    for (double p : CURVE) {
      double v = p >= 100 ? h.getMaxValue() : h.getValueAtPercentile(p);
      if (curve.length() > 0) {
        curve.append(", ");
      }
      curve.append(String.format(Locale.ROOT, "[%s, %.1f]", p, v / 1e3));
    }
    return String.format(
        Locale.ROOT,
        "{\"id\": \"hazelcast\", \"label\": \"Hazelcast 5.7.0 IMap.put 4 KiB, backup-count 1, 2"
            + " members (%s)\", \"system\": \"hazelcast\", \"workload\": \"put\", \"qd\": %d,"
            + " \"block_bytes\": %d, \"mode\": \"\", \"replicas\": 1, \"seconds\": %.3f,"
            + " \"ops\": %d, \"errors\": %d, \"iops\": %.1f, \"latency_us\": {\"p50\": %.1f,"
            + " \"p90\": %.1f, \"p99\": %.1f, \"p99_9\": %.1f, \"max\": %.1f, \"mean\": %.1f},"
            + " \"percentiles_us\": [%s]}",
        qd == 1 ? "blocking put" : qd + " threads of blocking puts",
        qd,
        VALUE_BYTES,
        run.seconds,
        h.getTotalCount(),
        run.errors.get(),
        h.getTotalCount() / run.seconds,
        h.getValueAtPercentile(50) / 1e3,
        h.getValueAtPercentile(90) / 1e3,
        h.getValueAtPercentile(99) / 1e3,
        h.getValueAtPercentile(99.9) / 1e3,
        h.getMaxValue() / 1e3,
        h.getMean() / 1e3,
        curve);
  }
}
