package io.peerflash.node.engine;

import static io.peerflash.node.engine.EngineTestSupport.BLOCK;
import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.storage.FileBackingStore;
import io.peerflash.util.Time;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Concurrent stress on a tiny cache: writers with private block regions (so each keeps an exact
 * model), unaligned writes and trims, reads checked against the model, policy flips, flushes, and a
 * churn thread creating/writing/deleting scratch volumes (eviction across volumes, delete races).
 * Ends with flush, a byte-for-byte check of shared storage, {@link EngineConsistency}, a restart
 * and the same checks again.
 */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class EngineStressTest {
  private static final int THREADS = 4;
  private static final int REGION_BLOCKS = 48;
  private static final long RUN_MS = 6000;

  @TempDir Path tmp;

  @Test
  void concurrentMixedWorkloadKeepsDataAndIndexConsistent() throws Exception {
    long seed = Long.getLong("peerflash.seed", System.nanoTime());
    System.out.println("EngineStressTest seed=" + seed);
    Path data = tmp.resolve("data");
    EngineConfig config =
        EngineConfig.defaults(data, 512L << 10) // 128 slots
            .withDestage(0.5, 0.2, 50)
            .withBackpressureTimeoutMs(2000);
    FileBackingStore store = new FileBackingStore(tmp.resolve("shared"));
    CacheEngine engine = CacheEngine.open(config, store, Time.SYSTEM);
    engine.start();
    long volBytes = (long) THREADS * REGION_BLOCKS * BLOCK;
    engine.createVolume("m", volBytes, CacheMode.WRITE_BACK, 0);
    byte[] model = new byte[(int) volBytes];
    AtomicBoolean stop = new AtomicBoolean();
    ExecutorService pool = Executors.newCachedThreadPool();
    List<Future<?>> futures = new ArrayList<>();
    try {
      for (int t = 0; t < THREADS; t++) {
        int tid = t;
        futures.add(
            pool.submit(
                () -> {
                  worker(engine, model, tid, new Random(seed + tid), stop);
                  return null;
                }));
      }
      futures.add(
          pool.submit(
              () -> {
                Random r = new Random(seed ^ 0x5555);
                CacheMode[] modes = CacheMode.values();
                while (!stop.get()) {
                  Thread.sleep(150 + r.nextInt(200));
                  engine.setPolicy("m", modes[r.nextInt(modes.length)], 0);
                }
                return null;
              }));
      futures.add(pool.submit(() -> churn(engine, new Random(seed ^ 0x7777), stop)));
      long deadline = System.currentTimeMillis() + RUN_MS;
      while (System.currentTimeMillis() < deadline) {
        for (Future<?> f : futures) {
          if (f.isDone()) {
            f.get(); // surface failures early
          }
        }
        Thread.sleep(50);
      }
      stop.set(true);
      for (Future<?> f : futures) {
        f.get(60, TimeUnit.SECONDS);
      }
    } finally {
      stop.set(true);
      pool.shutdownNow();
    }
    engine.setPolicy("m", CacheMode.WRITE_BACK, 0);
    engine.flush("m");
    EngineTestSupport.assertFileEquals(store.fileOf("m"), model, "after flush");
    EngineConsistency.assertConsistent(engine);
    checkReads(engine, model);
    engine.close();

    CacheEngine again =
        CacheEngine.open(config, new FileBackingStore(tmp.resolve("shared")), Time.SYSTEM);
    try {
      EngineConsistency.assertConsistent(again);
      checkReads(again, model);
      EngineConsistency.assertConsistent(again);
    } finally {
      again.close();
    }
  }

  private static void checkReads(CacheEngine engine, byte[] model) throws Exception {
    byte[] all = new byte[model.length];
    for (int off = 0; off < model.length; off += 64 * BLOCK) {
      int len = Math.min(64 * BLOCK, model.length - off);
      System.arraycopy(engine.read("m", off, len), 0, all, off, len);
    }
    int d = EngineTestSupport.firstDiff(all, model);
    assertThat(d).as("first byte where reads differ from the model").isEqualTo(-1);
  }

  private static void worker(
      CacheEngine engine, byte[] model, int tid, Random r, AtomicBoolean stop) throws Exception {
    int base = tid * REGION_BLOCKS * BLOCK;
    int regionBytes = REGION_BLOCKS * BLOCK;
    int sectors = regionBytes / 512;
    while (!stop.get()) {
      int op = r.nextInt(10);
      int lenSectors = 1 + r.nextInt(r.nextBoolean() ? 8 : 40);
      int startSector = r.nextInt(sectors - lenSectors + 1);
      int off = base + startSector * 512;
      int len = lenSectors * 512;
      try {
        if (op < 5) {
          byte[] b = new byte[len];
          r.nextBytes(b);
          engine.write("m", off, ByteBuffer.wrap(b));
          System.arraycopy(b, 0, model, off, len);
        } else if (op < 6) {
          engine.trim("m", off, len);
          Arrays.fill(model, off, off + len, (byte) 0);
        } else if (op < 9) {
          byte[] got = engine.read("m", off, len);
          int d = EngineTestSupport.firstDiff(got, Arrays.copyOfRange(model, off, off + len));
          if (d >= 0) {
            throw new AssertionError(
                "thread "
                    + tid
                    + ": read at "
                    + off
                    + "+"
                    + len
                    + " differs at volume byte "
                    + (off + d)
                    + " (block "
                    + (off + d) / BLOCK
                    + ")");
          }
        } else {
          engine.flush("m");
        }
      } catch (CacheException e) {
        if (e.reason() != Reason.RESOURCE_EXHAUSTED) {
          throw new AssertionError("thread " + tid + " op " + op + ": " + e, e);
        }
      }
    }
  }

  private static Void churn(CacheEngine engine, Random r, AtomicBoolean stop) throws Exception {
    int k = 0;
    while (!stop.get()) {
      String name = "scratch-" + (k++ % 3);
      try {
        engine.createVolume(name, 64L * BLOCK, CacheMode.WRITE_BACK, 0);
        for (int i = 0; i < 20; i++) {
          byte[] b = new byte[BLOCK];
          r.nextBytes(b);
          int blk = r.nextInt(64);
          engine.write(name, (long) blk * BLOCK, ByteBuffer.wrap(b));
          byte[] got = engine.read(name, (long) blk * BLOCK, BLOCK);
          if (!Arrays.equals(got, b)) {
            throw new AssertionError(
                "scratch volume " + name + " block " + blk + " read back wrong");
          }
        }
        engine.deleteVolume(name);
      } catch (CacheException e) {
        if (e.reason() != Reason.RESOURCE_EXHAUSTED) {
          throw new AssertionError("churn: " + e, e);
        }
        try {
          engine.deleteVolume(name);
        } catch (CacheException ignored) {
          // best effort
        }
      }
    }
    return null;
  }
}
