package io.peerflash.node.engine;

import static io.peerflash.node.engine.EngineTestSupport.BLOCK;
import static io.peerflash.node.engine.EngineTestSupport.assertFileEquals;
import static io.peerflash.node.engine.EngineTestSupport.firstDiff;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;

import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.storage.FileBackingStore;
import io.peerflash.util.Time;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * Randomized model test: random writes, reads, trims, flushes, policy switches, restarts and
 * concurrent bursts against an in-memory byte[] per volume, on a cache small enough that eviction
 * and destage really happen. Replay a seed with {@code -Dpeerflash.seed=N}.
 */
class VolumeModelTest {
  private static final int SEEDS = 3;
  private static final int OPS = 500;
  private static final long CACHE = 4L << 20; // 1024 slots

  @TestFactory
  Stream<DynamicTest> randomOperationsMatchTheModel(@TempDir Path tmp) {
    String fixed = System.getProperty("peerflash.seed");
    List<Long> seeds = new ArrayList<>();
    if (fixed != null && !fixed.isBlank()) {
      seeds.add(Long.parseLong(fixed.trim()));
    } else {
      long base = System.nanoTime() ^ System.currentTimeMillis();
      for (int i = 0; i < SEEDS; i++) {
        seeds.add(base + i * 7919L);
      }
    }
    return seeds.stream()
        .map(
            seed ->
                DynamicTest.dynamicTest(
                    "seed " + seed,
                    () -> {
                      System.out.println(
                          "VolumeModelTest seed="
                              + seed
                              + " (replay: -Dpeerflash.seed="
                              + seed
                              + ")");
                      Path dir = Files.createDirectories(tmp.resolve("seed-" + seed));
                      Run run = new Run(seed, dir);
                      try {
                        run.execute();
                      } catch (Throwable t) {
                        throw new AssertionError(
                            "seed="
                                + seed
                                + " (replay with -Dpeerflash.seed="
                                + seed
                                + "), op #"
                                + run.opNo
                                + " ["
                                + run.lastOp
                                + "]: "
                                + t,
                            t);
                      } finally {
                        run.closeQuietly();
                      }
                    }));
  }

  private static final class Run {
    final long seed;
    final Random rnd;
    final Path sharedDir;
    final EngineConfig config;
    final Map<String, byte[]> model = new LinkedHashMap<>();
    FileBackingStore store;
    CacheEngine engine;
    int opNo;
    volatile String lastOp = "setup";
    long evicted;
    long destaged;
    long waits;

    Run(long seed, Path dir) {
      this.seed = seed;
      this.rnd = new Random(seed);
      this.sharedDir = dir.resolve("shared");
      this.config =
          EngineConfig.defaults(dir.resolve("data"), CACHE)
              .withDestage(0.2, 0.1, 200)
              // Not under test here: a generous wait so slot competition never fails a write.
              .withBackpressureTimeoutMs(30_000);
    }

    void open() throws Exception {
      store = new FileBackingStore(sharedDir);
      engine = CacheEngine.open(config, store, Time.SYSTEM);
      engine.start();
    }

    void closeQuietly() {
      if (engine != null) {
        engine.close();
        engine = null;
      }
    }

    void close() {
      NodeStatusView st = engine.status();
      evicted += st.evictedBlocks();
      destaged += st.destagedBytes();
      waits += st.backpressureWaits();
      engine.close();
      engine = null;
    }

    void execute() throws Exception {
      open();
      model.put("va", new byte[3 << 20]);
      model.put("vb", new byte[5 << 20]);
      model.put("vc", new byte[2 << 20]);
      for (Map.Entry<String, byte[]> e : model.entrySet()) {
        engine.createVolume(e.getKey(), e.getValue().length, CacheMode.WRITE_BACK, 0);
      }
      List<String> names = new ArrayList<>(model.keySet());
      for (opNo = 0; opNo < OPS; opNo++) {
        String name = names.get(rnd.nextInt(names.size()));
        byte[] m = model.get(name);
        int p = rnd.nextInt(100);
        if (p < 38) {
          long[] r = randomRange(rnd, m.length);
          write(engine, name, m, r[0], (int) r[1], rnd);
        } else if (p < 62) {
          long[] r = randomRange(rnd, m.length);
          read(engine, name, m, r[0], (int) r[1]);
        } else if (p < 70) {
          long[] r = randomRange(rnd, m.length);
          trim(engine, name, m, r[0], (int) r[1]);
        } else if (p < 76) {
          lastOp = "flush " + name;
          engine.flush(name);
          assertFileEquals(store.fileOf(name), m, "after flush of " + name);
        } else if (p < 82) {
          CacheMode mode = CacheMode.values()[rnd.nextInt(3)];
          lastOp = "setPolicy " + name + " " + mode;
          engine.setPolicy(name, mode, rnd.nextInt(3));
        } else if (p < 85) {
          lastOp = "restart";
          close();
          open();
          verifyAllReads();
        } else {
          concurrentBurst(names);
        }
      }
      for (String name : names) {
        lastOp = "final flush " + name;
        engine.flush(name);
        assertFileEquals(store.fileOf(name), model.get(name), "final flush of " + name);
      }
      lastOp = "final restart";
      close();
      open();
      verifyAllReads();
      for (String name : names) {
        assertFileEquals(store.fileOf(name), model.get(name), "after final restart: " + name);
      }
      System.out.printf(
          "seed=%d: %d blocks evicted, %d bytes destaged, %d backpressure waits%n",
          seed, evicted, destaged, waits);
      // The cache really was under pressure: clean blocks were evicted, dirty ones destaged.
      assertThat(evicted).as("evicted blocks").isPositive();
      assertThat(destaged).as("destaged bytes").isPositive();
    }

    void verifyAllReads() throws Exception {
      for (Map.Entry<String, byte[]> e : model.entrySet()) {
        byte[] m = e.getValue();
        for (long off = 0; off < m.length; off += CacheEngine.MAX_IO_BYTES) {
          int len = (int) Math.min(CacheEngine.MAX_IO_BYTES, m.length - off);
          read(engine, e.getKey(), m, off, len);
        }
      }
    }

    /** Two to four threads on disjoint regions (a quarter of a volume each). */
    void concurrentBurst(List<String> names) throws Exception {
      int threads = 2 + rnd.nextInt(3);
      lastOp = "concurrent burst of " + threads + " threads";
      ExecutorService pool = Executors.newFixedThreadPool(threads);
      try {
        List<Future<?>> futures = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
          String name = names.get(rnd.nextInt(names.size()));
          byte[] m = model.get(name);
          long region = m.length / 4 / BLOCK * BLOCK;
          long base = t * region;
          long threadSeed = rnd.nextLong();
          CacheEngine e = engine;
          futures.add(
              pool.submit(
                  () -> {
                    Random r = new Random(threadSeed);
                    int ops = 8 + r.nextInt(16);
                    for (int i = 0; i < ops; i++) {
                      long[] range = randomRange(r, region);
                      long off = base + range[0];
                      int len = (int) range[1];
                      int q = r.nextInt(10);
                      if (q < 5) {
                        write(e, name, m, off, len, r);
                      } else if (q < 8) {
                        read(e, name, m, off, len);
                      } else {
                        trim(e, name, m, off, len);
                      }
                    }
                    return null;
                  }));
        }
        for (Future<?> f : futures) {
          f.get(60, TimeUnit.SECONDS);
        }
      } finally {
        pool.shutdownNow();
      }
    }
  }

  /** {offset, length}: 512-aligned, sometimes 4 KiB-aligned, sometimes 1 MiB. */
  static long[] randomRange(Random rnd, long size) {
    int p = rnd.nextInt(100);
    int len;
    int align;
    if (p < 6) {
      len = CacheEngine.MAX_IO_BYTES;
      align = rnd.nextBoolean() ? BLOCK : CacheEngine.SECTOR;
    } else if (p < 45) {
      len = BLOCK * (1 + rnd.nextInt(16));
      align = BLOCK;
    } else {
      len = CacheEngine.SECTOR * (1 + rnd.nextInt(128));
      align = CacheEngine.SECTOR;
    }
    len = (int) Math.min(len, size);
    long slots = (size - len) / align;
    long off = (slots <= 0 ? 0 : (long) (rnd.nextDouble() * (slots + 1))) * align;
    off = Math.min(off, (size - len) / align * align);
    return new long[] {off, len};
  }

  static void write(CacheEngine engine, String name, byte[] m, long off, int len, Random rnd)
      throws Exception {
    byte[] data = new byte[len];
    rnd.nextBytes(data);
    engine.write(name, off, ByteBuffer.wrap(data));
    System.arraycopy(data, 0, m, (int) off, len);
  }

  static void trim(CacheEngine engine, String name, byte[] m, long off, int len) throws Exception {
    engine.trim(name, off, len);
    Arrays.fill(m, (int) off, (int) off + len, (byte) 0);
  }

  static void read(CacheEngine engine, String name, byte[] m, long off, int len) throws Exception {
    byte[] got = engine.read(name, off, len);
    byte[] want = Arrays.copyOfRange(m, (int) off, (int) off + len);
    int d = firstDiff(got, want);
    if (d >= 0) {
      fail(
          "read of %s [%d, +%d) differs from the model at volume offset %d (block %d): got %d,"
              + " want %d",
          name, off, len, off + d, (off + d) / BLOCK, got[d], want[d]);
    }
  }
}
