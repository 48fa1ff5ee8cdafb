package io.peerflash.node.engine;

import static io.peerflash.node.engine.EngineTestSupport.BLOCK;
import static io.peerflash.node.engine.EngineTestSupport.awaitTrue;
import static io.peerflash.node.engine.EngineTestSupport.awaitWaitingIn;
import static io.peerflash.node.engine.EngineTestSupport.pattern;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.peerflash.node.cache.CacheFile;
import io.peerflash.node.index.KeyValueStorage;
import io.peerflash.node.index.KeyValueStorage.Batch;
import io.peerflash.node.index.RocksKeyValueStorage;
import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.storage.BackingStore;
import io.peerflash.node.storage.FileBackingStore;
import io.peerflash.util.Time;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** Adversarial tests: each one targets one suspected bug and fails on the code that has it. */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class EngineRaceTest {
  @TempDir Path tmp;
  private CacheEngine engine;
  private final ExecutorService pool = Executors.newCachedThreadPool();

  @AfterEach
  void tearDown() {
    pool.shutdownNow();
    if (engine != null) {
      engine.close();
    }
  }

  private FaultyBackingStore openFaulty(EngineConfig config) throws Exception {
    FaultyBackingStore store = new FaultyBackingStore(new FileBackingStore(tmp.resolve("shared")));
    engine = CacheEngine.open(config, store, Time.SYSTEM);
    engine.start();
    return store;
  }

  static void assertBytes(byte[] actual, byte[] expected, String what) {
    int d = EngineTestSupport.firstDiff(actual, expected);
    if (d >= 0) {
      throw new AssertionError(
          what
              + ": differs at byte "
              + d
              + " (actual="
              + actual[d]
              + ", expected="
              + expected[d]
              + "); actual equals zeros="
              + Arrays.equals(actual, new byte[actual.length]));
    }
  }

  private static ByteBuffer buf(byte[] b) {
    return ByteBuffer.wrap(b);
  }

  private static void awaitState(Thread t, Thread.State state, String frame) throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
    while (System.nanoTime() < deadline) {
      if (t.getState() == state
          && Arrays.stream(t.getStackTrace()).anyMatch(f -> f.toString().contains(frame))) {
        return;
      }
      Thread.sleep(1);
    }
    throw new AssertionError(
        "thread never reached "
            + state
            + " in "
            + frame
            + ": "
            + t.getState()
            + " "
            + Arrays.toString(t.getStackTrace()));
  }

  // -----------------------------------------------------------------------------------------------
  // 1. A failed read-modify-write leaks the slots already used by the request.

  @Test
  void failedMergeReadDoesNotLeakSlots() throws Exception {
    FaultyBackingStore store = openFaulty(EngineConfig.defaults(tmp.resolve("data"), 1L << 20));
    engine.createVolume("v", 1L << 20, CacheMode.WRITE_BACK, 0);
    int total = engine.store.slots.totalSlots();
    store.failReads = true;
    for (int i = 0; i < 10; i++) {
      // Block 2i whole (takes a slot), block 2i+1 partial: its merge read fails.
      long off = 2L * i * BLOCK;
      byte[] payload = pattern(i, BLOCK + 512);
      assertThatThrownBy(() -> engine.write("v", off, buf(payload)))
          .isInstanceOf(CacheException.class);
    }
    store.heal();
    assertThat(engine.store.slots.freeSlots())
        .as("free slots after 10 failed writes that installed nothing")
        .isEqualTo(total);
    EngineConsistency.assertConsistent(engine);
  }

  // -----------------------------------------------------------------------------------------------
  // 2. Promotion installs data older than a write-through write that completed meanwhile: trims,
  //    partial writes of uncached blocks and writes without free space do not bump the stripe
  //    version, so promote() cannot tell that shared storage changed.

  @Test
  void promotionNeverInstallsDataOlderThanACompletedWriteThroughTrim() throws Exception {
    openFaulty(EngineConfig.defaults(tmp.resolve("data"), 1L << 20));
    engine.createVolume("v", 1L << 20, CacheMode.WRITE_AROUND, 0);
    byte[] a = pattern(1, BLOCK);
    engine.write("v", 0, buf(a)); // on shared storage only
    engine.setPolicy("v", CacheMode.WRITE_THROUGH, 0);
    assertThat(engine.store.volume("v").blocks.get(0L)).isNull();

    Thread reader;
    AtomicReference<Throwable> readerFailure = new AtomicReference<>();
    // Holding the allocator's monitor stops the reader in promote() -> reserveSlots(), after it
    // read A from shared storage and released its block locks.
    synchronized (engine.store.slots) {
      reader =
          new Thread(
              () -> {
                try {
                  engine.read("v", 0, BLOCK);
                } catch (Throwable t) {
                  readerFailure.set(t);
                }
              });
      reader.start();
      awaitState(reader, Thread.State.BLOCKED, "ReadPath.promote");
      // Acknowledged trim (write-through: zeros are on shared storage, synced).
      pool.submit(
              () -> {
                engine.trim("v", 0, BLOCK);
                return null;
              })
          .get(20, TimeUnit.SECONDS);
    }
    reader.join(20_000);
    assertThat(readerFailure.get()).isNull();
    byte[] got = engine.read("v", 0, BLOCK);
    assertThat(Arrays.equals(got, a)).as("read returned the pre-trim data A").isFalse();
    assertBytes(got, new byte[BLOCK], "read after an acknowledged trim (must be zeros)");
  }

  // -----------------------------------------------------------------------------------------------
  // 3. deleteVolume() unpublishes the name first and deletes the backing file last: a volume
  //    re-created under the same name meanwhile loses its backing file (and acknowledged writes).

  @Test
  void recreatingADeletedNameDuringDeleteKeepsTheNewVolumesData() throws Exception {
    openFaulty(EngineConfig.defaults(tmp.resolve("data"), 1L << 20));
    engine.createVolume("v", 1L << 20, CacheMode.WRITE_BACK, 0);
    engine.write("v", 0, buf(pattern(1, BLOCK)));
    CachedVolume old = engine.store.volume("v");

    Future<?> delete;
    Future<?> recreate;
    // Stall deleteVolume() in its per-block loop (after the name is gone and the catalog row is
    // deleted) by holding the read lock of block 0's stripe.
    try (BlockLocks.Held h = old.locks.lockRange(0, 1, false)) {
      AtomicReference<Thread> deleter = new AtomicReference<>();
      delete =
          pool.submit(
              () -> {
                deleter.set(Thread.currentThread());
                engine.deleteVolume("v");
                return null;
              });
      while (deleter.get() == null) {
        Thread.sleep(1);
      }
      awaitState(deleter.get(), Thread.State.WAITING, "BlockLocks.lock");
      // Re-creating the name waits for the delete to finish instead of racing it.
      AtomicReference<Thread> creator = new AtomicReference<>();
      recreate =
          pool.submit(
              () -> {
                creator.set(Thread.currentThread());
                engine.createVolume("v", 1L << 20, CacheMode.WRITE_AROUND, 0);
                engine.write("v", 8 * BLOCK, buf(pattern(2, BLOCK))); // acked: on shared storage
                return null;
              });
      awaitTrue(20_000, "the re-create started", () -> creator.get() != null);
      awaitWaitingIn(creator.get(), "VolumeAdmin.createVolume", recreate);
      assertThat(recreate.isDone()).as("create raced an unfinished delete").isFalse();
    }
    delete.get(20, TimeUnit.SECONDS);
    recreate.get(20, TimeUnit.SECONDS);
    assertBytes(
        engine.read("v", 8 * BLOCK, BLOCK),
        pattern(2, BLOCK),
        "acknowledged write-around data of the re-created volume");
  }

  // -----------------------------------------------------------------------------------------------
  // 4. One interrupted request thread closes the cache file's FileChannel for everybody
  //    (ClosedByInterruptException): every later write, read hit and destage fails until restart.

  @Test
  void anInterruptedRequestDoesNotBreakTheCacheForOthers() throws Exception {
    openFaulty(EngineConfig.defaults(tmp.resolve("data"), 1L << 20));
    engine.createVolume("v", 1L << 20, CacheMode.WRITE_BACK, 0);
    engine.write("v", 0, buf(pattern(1, BLOCK)));
    Future<?> interrupted =
        pool.submit(
            () -> {
              Thread.currentThread().interrupt();
              try {
                engine.write("v", BLOCK, buf(pattern(2, BLOCK)));
              } catch (CacheException expectedMaybe) {
                // this request may fail; others must not
              }
              Thread.interrupted();
              return null;
            });
    interrupted.get(20, TimeUnit.SECONDS);
    engine.write("v", 2 * BLOCK, buf(pattern(3, BLOCK)));
    assertBytes(engine.read("v", 0, BLOCK), pattern(1, BLOCK), "block 0");
    engine.flush("v");
  }

  // -----------------------------------------------------------------------------------------------
  // 4b. Flush is not bounded when the destager cannot read local flash: readBatch() failures return
  //     -1 without onFailure(), so the volume never counted as failing and Flush waits forever.
  // (Local
  //     flash failing here via the interrupt of 4, but any cache-file read IOException does it.)

  @Test
  void flushIsBoundedWhenDirtyDataCannotBeReadFromFlash() throws Exception {
    openFaulty(
        EngineConfig.defaults(tmp.resolve("data"), 1L << 20)
            .withRetryBackoff(10, 100)
            .withStorageTimeouts(500, 2000));
    engine.createVolume("v", 1L << 20, CacheMode.WRITE_BACK, 0);
    engine.write("v", 0, buf(pattern(1, BLOCK)));
    pool.submit(
            () -> {
              Thread.currentThread().interrupt();
              try {
                engine.read("v", 0, BLOCK); // a hit: reads the cache file while interrupted
              } catch (CacheException ignored) {
                // expected for this request
              }
              Thread.interrupted();
              return null;
            })
        .get(20, TimeUnit.SECONDS);
    Future<?> flush =
        pool.submit(
            () -> {
              engine.flush("v");
              return null;
            });
    try {
      flush.get(15, TimeUnit.SECONDS);
    } catch (java.util.concurrent.ExecutionException e) {
      return; // a bounded failure (UNAVAILABLE/DATA_LOSS) is fine
    } catch (java.util.concurrent.TimeoutException e) {
      flush.cancel(true);
      throw new AssertionError(
          "flush still waiting after 15 s (flush-storage-failure-timeout-ms is 2000): unbounded");
    }
  }

  // -----------------------------------------------------------------------------------------------
  // 5. With sync=true, a write-through write is acknowledged after shared storage synced it, but
  //    the cache's index change (new clean entry / dropped entry) is committed without sync. After
  //    a power cut the old clean entry comes back and reads serve the old data.

  @Test
  void writeThroughWriteSurvivesPowerLossWithSync() throws Exception {
    Path data = tmp.resolve("data");
    EngineConfig config = EngineConfig.defaults(data, 1L << 20).withSync(true);
    PowerLossKv kv = new PowerLossKv(new RocksKeyValueStorage(data.resolve("index")));
    BackingStore store = new FileBackingStore(tmp.resolve("shared"));
    CacheEngine e1 = construct(config, kv, store);
    CacheFile cacheFile = e1.store.cacheFile;
    e1.start();
    e1.createVolume("v", 1L << 20, CacheMode.WRITE_THROUGH, 0);
    e1.write("v", 0, buf(pattern(1, BLOCK))); // clean cached copy of A
    e1.store.kv.sync(); // some time later the WAL is on disk (any later synced write does this)
    e1.write("v", 0, buf(pattern(2, BLOCK))); // B: acknowledged, on shared storage, synced

    // Power cut: only index writes up to the last synced one survive; every cache-file write
    // reached the disk (the most favourable case for the engine).
    e1.destager.close();
    Path data2 = tmp.resolve("data-after-power-cut");
    kv.replayDurableInto(data2.resolve("index"));
    cacheFile.force();
    Files.copy(data.resolve("cache.slots"), data2.resolve("cache.slots"));
    kv.close();
    cacheFile.close();
    store.close();

    engine =
        CacheEngine.open(
            EngineConfig.defaults(data2, 1L << 20).withSync(true),
            new FileBackingStore(tmp.resolve("shared")),
            Time.SYSTEM);
    engine.start();
    byte[] got = engine.read("v", 0, BLOCK);
    assertThat(Arrays.equals(got, pattern(1, BLOCK)))
        .as("after the power cut the cache serves the OLD version A of an acknowledged write")
        .isFalse();
    assertBytes(got, pattern(2, BLOCK), "acknowledged write-through data after a power cut");
  }

  // -----------------------------------------------------------------------------------------------
  // 6. With sync=true, a destaged block is marked clean and evicted with unsynced index writes, and
  //    its slot is reused at once by a promotion (also unsynced). After a power cut the durable
  //    index still says "dirty, slot S", S holds the promoted block: the engine reports
  // acknowledged
  //    data as lost (DATA_LOSS, CORRUPT_DIRTY_DATA) although shared storage has it.

  @Test
  void destagedThenEvictedBlockIsReadableAfterPowerLossWithSync() throws Exception {
    Path data = tmp.resolve("data");
    EngineConfig config = EngineConfig.defaults(data, 1L << 20).withSync(true);
    PowerLossKv kv = new PowerLossKv(new RocksKeyValueStorage(data.resolve("index")));
    BackingStore store = new FileBackingStore(tmp.resolve("shared"));
    CacheEngine e1 = construct(config, kv, store);
    CacheFile cacheFile = e1.store.cacheFile;
    e1.start();
    e1.createVolume("v", 1L << 20, CacheMode.WRITE_BACK, 0);
    e1.write("v", 0, buf(pattern(1, BLOCK))); // dirty, synced (group commit)
    e1.flush("v"); // on shared storage, synced; marked clean (index write not synced)
    int slot = e1.store.volume("v").blocks.get(0L).slot();
    // The clock picks block 0 (what reserveSlots does when the cache is full).
    assertThat(e1.store.space.tryEvict(slot, e1.store.volume("v").id(), 0L)).isTrue();
    e1.read("v", 5 * BLOCK, BLOCK); // miss, promoted into the freed slot
    assertThat(e1.store.volume("v").blocks.get(5L).slot()).isEqualTo(slot);

    e1.destager.close();
    Path data2 = tmp.resolve("data-after-power-cut");
    kv.replayDurableInto(data2.resolve("index"));
    cacheFile.force();
    Files.copy(data.resolve("cache.slots"), data2.resolve("cache.slots"));
    kv.close();
    cacheFile.close();
    store.close();

    engine =
        CacheEngine.open(
            EngineConfig.defaults(data2, 1L << 20).withSync(true),
            new FileBackingStore(tmp.resolve("shared")),
            Time.SYSTEM);
    engine.start();
    assertThat(engine.volumeStatus("v").corruptBlocks())
        .as("blocks reported corrupt after the power cut")
        .isZero();
    assertBytes(engine.read("v", 0, BLOCK), pattern(1, BLOCK), "destaged block after power cut");
  }

  /** An engine on {@code kv} as its index (and the real cache file), recovered as at start. */
  static CacheEngine construct(EngineConfig config, KeyValueStorage kv, BackingStore store)
      throws IOException {
    return CacheEngine.open(
        config,
        store,
        Time.SYSTEM,
        new LocalStorageOpener() {
          @Override
          public java.nio.channels.FileChannel openCacheFile(Path path) throws IOException {
            return LocalStorageOpener.REAL.openCacheFile(path);
          }

          @Override
          public KeyValueStorage openIndex(Path dir) {
            return kv;
          }
        });
  }

  /**
   * Records every batch; a synced write (or sync()) makes every earlier batch durable, as the
   * RocksDB WAL does. {@link #replayDurableInto} builds the index a power cut would leave.
   */
  static final class PowerLossKv implements KeyValueStorage {
    private final KeyValueStorage delegate;
    private final List<Batch> log = new ArrayList<>();
    private int durable;

    PowerLossKv(KeyValueStorage delegate) {
      this.delegate = delegate;
    }

    @Override
    public byte[] get(Table table, byte[] key) throws IOException {
      return delegate.get(table, key);
    }

    @Override
    public synchronized void write(Batch batch, boolean sync) throws IOException {
      delegate.write(batch, sync);
      log.add(batch);
      if (sync) {
        durable = log.size();
      }
    }

    @Override
    public void scan(Table table, byte[] prefix, Visitor visitor) throws IOException {
      delegate.scan(table, prefix, visitor);
    }

    @Override
    public synchronized void sync() throws IOException {
      delegate.sync();
      durable = log.size();
    }

    @Override
    public Health health() {
      return delegate.health();
    }

    synchronized void replayDurableInto(Path dir) throws IOException {
      try (RocksKeyValueStorage fresh = new RocksKeyValueStorage(dir)) {
        for (int i = 0; i < durable; i++) {
          fresh.write(log.get(i), false);
        }
        fresh.sync();
      }
    }

    @Override
    public void close() {
      delegate.close();
    }
  }
}
