package io.peerflash.node.engine;

import static io.peerflash.node.engine.EngineTestSupport.readFile;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;

import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.storage.FileBackingStore;
import io.peerflash.node.storage.LatencyInjectingBackingStore;
import io.peerflash.util.Time;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Writing far more dirty data than the cache holds, to slow shared storage. */
class BackpressureTest {
  private static final String VOL = "vol";
  private static final long TIMEOUT_MS = 300;
  private static final int CHUNK = 64 << 10;
  private static final long VOLUME = 64L << 20;

  @TempDir Path tmp;
  private CacheEngine engine;

  @AfterEach
  void tearDown() {
    if (engine != null) {
      engine.close();
    }
  }

  /** What a chunk may hold: the last acknowledged write, or a rejected write after it. */
  private static final class ChunkState {
    byte[] acked; // null: zeros
    final List<byte[]> maybe = new ArrayList<>();
  }

  @Test
  void writesWaitThenFailWithResourceExhaustedAndNothingAcknowledgedIsLost() throws Exception {
    FileBackingStore files = new FileBackingStore(tmp.resolve("shared"));
    // 30 ms per data write and per sync: a 1 MiB destage batch of 16 runs takes about 0.5 s.
    LatencyInjectingBackingStore slow = new LatencyInjectingBackingStore(files, 30_000);
    EngineConfig config =
        EngineConfig.defaults(tmp.resolve("data"), 4L << 20)
            .withBackpressureTimeoutMs(TIMEOUT_MS)
            .withDestage(0.5, 0.25, 200);
    engine = CacheEngine.open(config, slow, Time.SYSTEM);
    engine.start();
    engine.createVolume(VOL, VOLUME, CacheMode.WRITE_BACK, 0);

    int chunks = (int) (VOLUME / CHUNK);
    int threads = 2;
    Map<Integer, ChunkState> state = new HashMap<>();
    for (int c = 0; c < chunks; c++) {
      state.put(c, new ChunkState());
    }
    AtomicInteger rejections = new AtomicInteger();
    AtomicInteger acks = new AtomicInteger();
    long stopAt = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    List<Future<?>> futures = new ArrayList<>();
    for (int t = 0; t < threads; t++) {
      int me = t;
      futures.add(
          pool.submit(
              () -> {
                Random rnd = new Random(42 + me);
                // Stop after enough rejections (and enough acknowledged writes) or at the deadline.
                while (System.nanoTime() < stopAt && (rejections.get() < 4 || acks.get() < 100)) {
                  // Each thread owns the chunks c with c % threads == me.
                  int c = rnd.nextInt(chunks / threads) * threads + me;
                  byte[] data = new byte[CHUNK];
                  rnd.nextBytes(data);
                  ChunkState s;
                  synchronized (state) {
                    s = state.get(c);
                  }
                  long t0 = System.nanoTime();
                  try {
                    engine.write(VOL, (long) c * CHUNK, ByteBuffer.wrap(data));
                    synchronized (s) {
                      s.acked = data;
                      s.maybe.clear();
                    }
                    acks.incrementAndGet();
                  } catch (CacheException e) {
                    long ms = (System.nanoTime() - t0) / 1_000_000;
                    if (e.reason() != Reason.RESOURCE_EXHAUSTED) {
                      throw e;
                    }
                    assertThat(e.getMessage()).contains("write-backpressure-timeout-ms");
                    assertThat(ms)
                        .as("rejected after about the timeout")
                        .isBetween(TIMEOUT_MS - 20, TIMEOUT_MS + 2000);
                    synchronized (s) {
                      s.maybe.add(data);
                    }
                    rejections.incrementAndGet();
                  }
                  long ms = (System.nanoTime() - t0) / 1_000_000;
                  if (ms > TIMEOUT_MS + 2000) {
                    fail("a write took %d ms; the backpressure timeout is %d ms", ms, TIMEOUT_MS);
                  }
                }
                return null;
              }));
    }
    try {
      for (Future<?> f : futures) {
        f.get(60, TimeUnit.SECONDS);
      }
    } finally {
      pool.shutdownNow();
    }
    NodeStatusView st = engine.status();
    System.out.printf(
        "acks=%d rejections=%d waits=%d statusRejections=%d%n",
        acks.get(), rejections.get(), st.backpressureWaits(), st.backpressureRejections());
    assertThat(st.backpressureWaits()).isPositive();
    assertThat(rejections.get()).isPositive();
    assertThat(st.backpressureRejections()).isEqualTo(rejections.get());
    assertThat(acks.get()).isPositive();

    long t0 = System.nanoTime();
    engine.flush(VOL);
    System.out.printf("flush took %d ms%n", (System.nanoTime() - t0) / 1_000_000);
    assertThat(engine.volumeStatus(VOL).dirtyBytes()).isZero();

    Path file = files.fileOf(VOL);
    int checked = 0;
    for (Map.Entry<Integer, ChunkState> e : state.entrySet()) {
      ChunkState s = e.getValue();
      if (s.acked == null && s.maybe.isEmpty()) {
        continue;
      }
      long off = (long) e.getKey() * CHUNK;
      byte[] read = engine.read(VOL, off, CHUNK);
      byte[] onFile = readFile(file, off, CHUNK);
      List<byte[]> allowed = new ArrayList<>(s.maybe);
      allowed.add(s.acked == null ? new byte[CHUNK] : s.acked);
      assertThat(allowed).as("chunk %d read", e.getKey()).contains(read);
      assertThat(onFile).as("chunk %d on the backing file", e.getKey()).isEqualTo(read);
      checked++;
    }
    assertThat(checked).isGreaterThan(50);
  }
}
