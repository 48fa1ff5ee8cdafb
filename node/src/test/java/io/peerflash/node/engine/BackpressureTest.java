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
import java.util.concurrent.atomic.AtomicLong;
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

  /** What one overload run saw. */
  private record Outcome(
      Map<Integer, ChunkState> state, int acks, int rejections, long slowestAckMs, Path file) {}

  /**
   * Two writers write 64 KiB chunks at random for up to 15 s, into a 4 MiB cache in front of shared
   * storage that takes 30 ms per data write and per sync (a 1 MiB destage batch of 16 runs, one
   * request at a time, takes about 0.5 s). Stops early after enough rejections when {@code
   * stopOnRejections}.
   */
  private Outcome overload(double throttleReserve, boolean stopOnRejections) throws Exception {
    FileBackingStore files = new FileBackingStore(tmp.resolve("shared"));
    LatencyInjectingBackingStore slow = new LatencyInjectingBackingStore(files, 30_000);
    EngineConfig config =
        EngineConfig.defaults(tmp.resolve("data"), 4L << 20)
            .withBackpressureTimeoutMs(TIMEOUT_MS)
            .withDestage(0.5, 0.25, 200)
            .withThrottleReserve(throttleReserve)
            // One request at a time, so a batch takes longer than a write may wait.
            .withDestageIoDepth(1);
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
    AtomicLong slowestAckNanos = new AtomicLong();
    long stopAt = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    List<Future<?>> futures = new ArrayList<>();
    for (int t = 0; t < threads; t++) {
      int me = t;
      futures.add(
          pool.submit(
              () -> {
                Random rnd = new Random(42 + me);
                while (System.nanoTime() < stopAt
                    && (!stopOnRejections || rejections.get() < 4 || acks.get() < 100)) {
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
                    slowestAckNanos.accumulateAndGet(System.nanoTime() - t0, Math::max);
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
    return new Outcome(
        state, acks.get(), rejections.get(), slowestAckNanos.get() / 1_000_000, files.fileOf(VOL));
  }

  /** After Flush, every chunk reads (from cache and from the backing file) as its last ack. */
  private void assertNothingAcknowledgedIsLost(Outcome o) throws Exception {
    long t0 = System.nanoTime();
    engine.flush(VOL);
    System.out.printf("flush took %d ms%n", (System.nanoTime() - t0) / 1_000_000);
    assertThat(engine.volumeStatus(VOL).dirtyBytes()).isZero();
    int checked = 0;
    for (Map.Entry<Integer, ChunkState> e : o.state().entrySet()) {
      ChunkState s = e.getValue();
      if (s.acked == null && s.maybe.isEmpty()) {
        continue;
      }
      long off = (long) e.getKey() * CHUNK;
      byte[] read = engine.read(VOL, off, CHUNK);
      byte[] onFile = readFile(o.file(), off, CHUNK);
      List<byte[]> allowed = new ArrayList<>(s.maybe);
      allowed.add(s.acked == null ? new byte[CHUNK] : s.acked);
      assertThat(allowed).as("chunk %d read", e.getKey()).contains(read);
      assertThat(onFile).as("chunk %d on the backing file", e.getKey()).isEqualTo(read);
      checked++;
    }
    assertThat(checked).isGreaterThan(50);
  }

  @Test
  void withoutTheThrottleWritesWaitThenFailWithResourceExhaustedAndNothingAcknowledgedIsLost()
      throws Exception {
    Outcome o = overload(0, true);
    NodeStatusView st = engine.status();
    System.out.printf(
        "acks=%d rejections=%d waits=%d statusRejections=%d slowest ack=%d ms%n",
        o.acks(),
        o.rejections(),
        st.backpressureWaits(),
        st.backpressureRejections(),
        o.slowestAckMs());
    assertThat(st.backpressureWaits()).isPositive();
    assertThat(o.rejections()).isPositive();
    assertThat(st.backpressureRejections()).isEqualTo(o.rejections());
    assertThat(o.acks()).isPositive();
    assertNothingAcknowledgedIsLost(o);
  }

  @Test
  void theThrottleSlowsWritersToTheDestageRateSoNoneWaitsOutADestageBatch() throws Exception {
    // The same overload: a destage batch takes about 0.5 s, longer than the 300 ms a write may
    // wait. Unthrottled, writers run until the cache is full and then wait out whole batches (the
    // test above). Throttled, they are admitted at the rate space comes back, with space to spare.
    Outcome o = overload(0.05, false);
    NodeStatusView st = engine.status();
    System.out.printf(
        "acks=%d rejections=%d throttled=%d slowest ack=%d ms%n",
        o.acks(), o.rejections(), st.backpressureWaits(), o.slowestAckMs());
    assertThat(st.backpressureWaits()).as("writes were held back").isPositive();
    assertThat(o.rejections()).as("no write had to wait out the backpressure timeout").isZero();
    assertThat(o.slowestAckMs()).isLessThan(TIMEOUT_MS);
    assertThat(o.acks()).isGreaterThan(100);
    assertNothingAcknowledgedIsLost(o);
  }
}
