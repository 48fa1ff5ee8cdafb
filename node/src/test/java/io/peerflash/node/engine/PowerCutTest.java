package io.peerflash.node.engine;

import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.storage.FileBackingStore;
import io.peerflash.util.Time;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * With {@code --sync}, an acknowledged write survives a power cut at any moment: writers, the
 * destager, evictions and write-through writes run on a {@link SimulatedDisk} whose power is cut at
 * a random instant; the node then recovers from what the disk kept, and every sector must hold its
 * last acknowledged write, or a write that was in flight at the cut (never older data, never a
 * checksum failure). The same workload on a disk whose fsync does nothing, or without the fsync of
 * the directory of the new cache file, must be caught losing data: the check can fail.
 */
class PowerCutTest {
  private static final int SECTOR = 512;
  private static final long VOLUME_BYTES = 2 << 20;
  private static final int SECTORS = (int) (VOLUME_BYTES / SECTOR);
  private static final int WRITERS = 4;
  // Each writer owns every WRITERS-th region, so the writes to a sector are sequential.
  private static final int REGION_SECTORS = 128;

  @TempDir Path tmp;

  /** What recovery found, against the model. */
  private record Outcome(long acked, long inFlightAtCut, int lostSectors, String firstProblem) {}

  @Test
  void syncedWritesSurviveAPowerCutAtAnyMoment() throws Exception {
    long acked = 0;
    for (long seed = 1; seed <= 4; seed++) {
      Outcome o = runAndCut(seed, false, false);
      assertThat(o.lostSectors())
          .as("seed %d: sectors without their last acknowledged write: %s", seed, o.firstProblem())
          .isZero();
      acked += o.acked();
    }
    assertThat(acked).as("writes acknowledged before the cuts").isGreaterThan(100);
  }

  @Test
  void theCheckSeesADiskWhoseFsyncDoesNothing() throws Exception {
    Outcome o = runAndCut(11, true, false);
    assertThat(o.acked()).isPositive();
    assertThat(o.lostSectors())
        .as("acknowledged sectors lost when fsync makes nothing durable")
        .isPositive();
  }

  @Test
  void theCheckSeesANewCacheFileWhoseDirectoryWasNotSynced() throws Exception {
    Outcome o = runAndCut(12, false, true);
    assertThat(o.acked()).isPositive();
    assertThat(o.lostSectors())
        .as("acknowledged sectors lost when the new cache file's name is not durable")
        .isPositive();
  }

  /** Versions of one volume's sectors: the last acknowledged, and any written after it. */
  private static final class Model {
    final long[] acked = new long[SECTORS]; // 0: never written (zeros)
    final List<Set<Long>> maybe = new ArrayList<>(SECTORS);

    Model() {
      for (int i = 0; i < SECTORS; i++) {
        maybe.add(ConcurrentHashMap.newKeySet());
      }
    }
  }

  private static final Set<Long> TRIMS = ConcurrentHashMap.newKeySet();

  /** The 512 bytes a version writes into a sector (zeros for a trim). */
  private static byte[] content(int volume, int sector, long version) {
    byte[] b = new byte[SECTOR];
    if (version == 0 || TRIMS.contains(version)) {
      return b;
    }
    long x = version * 0x9E3779B97F4A7C15L ^ (sector * 31L + volume);
    for (int i = 0; i < SECTOR; i += 8) {
      x ^= x << 13;
      x ^= x >>> 7;
      x ^= x << 17;
      ByteBuffer.wrap(b, i, 8).putLong(x);
    }
    return b;
  }

  private Outcome runAndCut(long seed, boolean lyingForce, boolean ignoreDirectorySync)
      throws Exception {
    Path data = tmp.resolve("data-" + seed);
    Path shared = tmp.resolve("shared-" + seed);
    // A small cache: destage, eviction and slot reuse all happen during the run.
    EngineConfig config = EngineConfig.defaults(data, 4L << 20).withSync(true);
    SimulatedDisk disk = new SimulatedDisk();
    disk.lyingForce = lyingForce;
    disk.ignoreDirectorySync = ignoreDirectorySync;
    CacheEngine engine = CacheEngine.open(config, new FileBackingStore(shared), Time.SYSTEM, disk);
    engine.start();
    String[] names = {"wb", "wt"};
    engine.createVolume("wb", VOLUME_BYTES, CacheMode.WRITE_BACK, 0);
    engine.createVolume("wt", VOLUME_BYTES, CacheMode.WRITE_THROUGH, 0);
    Model[] models = {new Model(), new Model()};
    AtomicLong versions = new AtomicLong();
    AtomicLong acked = new AtomicLong();
    AtomicInteger inFlight = new AtomicInteger();
    AtomicBoolean stop = new AtomicBoolean();
    List<Thread> writers = new ArrayList<>();
    for (int w = 0; w < WRITERS; w++) {
      int writer = w;
      Random rnd = new Random(seed * 1000 + w);
      Thread t =
          new Thread(
              () -> {
                while (!stop.get()) {
                  int vol = rnd.nextInt(10) < 8 ? 0 : 1;
                  int regions = SECTORS / REGION_SECTORS / WRITERS;
                  int region = (rnd.nextInt(regions) * WRITERS + writer) * REGION_SECTORS;
                  int first = region + rnd.nextInt(REGION_SECTORS);
                  int count = 1 + rnd.nextInt(Math.min(REGION_SECTORS - (first - region), 64));
                  if (rnd.nextInt(4) != 0) {
                    // Mostly whole blocks, as most clients write.
                    first = first / 8 * 8;
                    count = Math.max(8, count / 8 * 8);
                    count = Math.min(count, region + REGION_SECTORS - first);
                  }
                  long version = versions.incrementAndGet();
                  boolean trim = rnd.nextInt(10) == 0;
                  if (trim) {
                    TRIMS.add(version);
                  }
                  Model m = models[vol];
                  ByteBuffer buf = ByteBuffer.allocate(count * SECTOR);
                  for (int s = 0; s < count; s++) {
                    m.maybe.get(first + s).add(version);
                    buf.put(content(vol, first + s, version));
                  }
                  buf.flip();
                  inFlight.incrementAndGet();
                  try {
                    if (trim) {
                      engine.trim(names[vol], (long) first * SECTOR, (long) count * SECTOR);
                    } else {
                      engine.write(names[vol], (long) first * SECTOR, buf);
                    }
                    for (int s = 0; s < count; s++) {
                      m.acked[first + s] = version;
                      m.maybe.get(first + s).removeIf(x -> x <= version);
                    }
                    acked.incrementAndGet();
                  } catch (CacheException | RuntimeException e) {
                    // Not acknowledged: it may or may not be there after the cut.
                  } finally {
                    inFlight.decrementAndGet();
                  }
                }
              },
              "power-cut-writer-" + w);
      t.start();
      writers.add(t);
    }
    Random cutAt = new Random(seed);
    long until = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(400 + cutAt.nextInt(600));
    while (System.nanoTime() < until || acked.get() < 20) {
      Thread.sleep(5); // the workload runs; the cut comes at a random moment within it
    }
    long inFlightAtCut = inFlight.get();
    disk.powerCut();
    stop.set(true);
    for (Thread t : writers) {
      t.join(TimeUnit.SECONDS.toMillis(30));
      assertThat(t.isAlive()).as("writer stopped after the power cut").isFalse();
    }
    engine.close(); // everything it tries now fails: the power is off

    int lost = 0;
    String first = null;
    try (CacheEngine recovered =
        CacheEngine.open(config, new FileBackingStore(shared), Time.SYSTEM)) {
      recovered.start();
      for (int vol = 0; vol < 2; vol++) {
        Model m = models[vol];
        for (int off = 0; off < SECTORS; off += 256) {
          byte[] got;
          try {
            got = recovered.read(names[vol], (long) off * SECTOR, 256 * SECTOR);
          } catch (CacheException e) {
            lost += 256;
            first = first != null ? first : names[vol] + " at sector " + off + ": " + e;
            continue;
          }
          for (int s = off; s < off + 256; s++) {
            if (!holdsAllowed(vol, s, m, got, (s - off) * SECTOR)) {
              lost++;
              first =
                  first != null
                      ? first
                      : names[vol] + " sector " + s + " lost acknowledged version " + m.acked[s];
            }
          }
        }
      }
    }
    return new Outcome(acked.get(), inFlightAtCut, lost, first);
  }

  private static boolean holdsAllowed(int vol, int sector, Model m, byte[] got, int at) {
    byte[] actual = java.util.Arrays.copyOfRange(got, at, at + SECTOR);
    if (java.util.Arrays.equals(actual, content(vol, sector, m.acked[sector]))) {
      return true;
    }
    for (long v : m.maybe.get(sector)) {
      if (v > m.acked[sector] && java.util.Arrays.equals(actual, content(vol, sector, v))) {
        return true;
      }
    }
    return false;
  }
}
