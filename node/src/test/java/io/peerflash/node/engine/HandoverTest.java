package io.peerflash.node.engine;

import static io.peerflash.node.engine.EngineTestSupport.assertFileEquals;
import static io.peerflash.node.engine.EngineTestSupport.awaitTrue;
import static io.peerflash.node.engine.EngineTestSupport.awaitWaitingIn;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.storage.FileBackingStore;
import io.peerflash.util.Time;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Handing a volume over: I/O refused, writes in flight waited for, everything destaged. */
class HandoverTest {
  private static final String VOL = "vol";
  private static final int SIZE = 1 << 20;

  @TempDir Path tmp;
  private FileBackingStore files;
  private FaultyBackingStore store;
  private CacheEngine engine;
  private final byte[] model = new byte[SIZE];
  private final Random rnd = new Random(5);

  @BeforeEach
  void open() throws Exception {
    EngineConfig config =
        EngineConfig.defaults(tmp.resolve("data"), 4L << 20)
            .withStorageTimeouts(200, 800)
            .withRetryBackoff(20, 200);
    files = new FileBackingStore(tmp.resolve("shared"));
    store = new FaultyBackingStore(files);
    engine = CacheEngine.open(config, store, Time.SYSTEM);
    engine.start();
  }

  @AfterEach
  void close() {
    store.heal();
    store.holdWrites = false;
    engine.close();
  }

  private void write(int n) throws CacheException {
    for (int i = 0; i < n; i++) {
      int len = 512 * (1 + rnd.nextInt(16));
      int off = 512 * rnd.nextInt((SIZE - len) / 512);
      byte[] data = new byte[len];
      rnd.nextBytes(data);
      engine.write(VOL, off, ByteBuffer.wrap(data));
      System.arraycopy(data, 0, model, off, len);
    }
  }

  private long in(long ms) {
    return System.currentTimeMillis() + ms;
  }

  @Test
  void destagesEverythingThenRefusesIoUntilCancelled() throws Exception {
    engine.createVolume(VOL, SIZE, CacheMode.WRITE_BACK, 0);
    write(100);
    assertThat(engine.volumeStatus(VOL).dirtyBytes()).isPositive();

    long destaged = engine.prepareHandover(VOL, in(10_000));
    assertThat(destaged).isPositive();
    assertThat(engine.volumeStatus(VOL).dirtyBytes()).isZero();
    assertFileEquals(files.fileOf(VOL), model, "after the handover");
    assertThat(engine.handingOver(VOL)).isTrue();
    ByteBuffer one = ByteBuffer.allocate(512);
    assertThatThrownBy(() -> engine.write(VOL, 0, one))
        .isInstanceOf(CacheException.class)
        .hasMessageContaining("is moving to another node")
        .satisfies(e -> assertThat(((CacheException) e).reason()).isEqualTo(Reason.UNAVAILABLE));
    assertThatThrownBy(() -> engine.read(VOL, 0, 512)).hasMessageContaining("is moving");
    assertThatThrownBy(() -> engine.flush(VOL)).hasMessageContaining("is moving");

    engine.cancelHandover(VOL);
    assertThat(engine.handingOver(VOL)).isFalse();
    write(20);
    engine.flush(VOL);
    assertFileEquals(files.fileOf(VOL), model, "served again after the cancel");
  }

  @Test
  void aWriteInFlightFinishesBeforeTheHandoverAndABoundedWaitGivesUp() throws Exception {
    // Write-through: the write holds the volume while it writes to shared storage.
    engine.createVolume(VOL, SIZE, CacheMode.WRITE_THROUGH, 0);
    store.holdWrites = true;
    byte[] data = new byte[4096];
    rnd.nextBytes(data);
    CompletableFuture<Void> inFlight =
        CompletableFuture.runAsync(
            () -> {
              try {
                engine.write(VOL, 8192, ByteBuffer.wrap(data));
              } catch (CacheException e) {
                throw new IllegalStateException(e);
              }
            });
    awaitTrue(5_000, "the write to reach shared storage", () -> store.heldWrites.get() > 0);

    // Bounded: the write does not finish in time, so the handover gives up and serves again.
    assertThatThrownBy(() -> engine.prepareHandover(VOL, in(300)))
        .hasMessageContaining("writes in flight did not finish in time")
        .satisfies(
            e -> assertThat(((CacheException) e).reason()).isEqualTo(Reason.DEADLINE_EXCEEDED));
    assertThat(engine.handingOver(VOL)).isFalse();

    AtomicReference<Thread> handoverThread = new AtomicReference<>();
    CompletableFuture<Long> handover =
        CompletableFuture.supplyAsync(
            () -> {
              handoverThread.set(Thread.currentThread());
              try {
                return engine.prepareHandover(VOL, in(10_000));
              } catch (CacheException e) {
                throw new IllegalStateException(e);
              }
            });
    awaitTrue(5_000, "the handover started", () -> handoverThread.get() != null);
    awaitWaitingIn(handoverThread.get(), "Handover.barrier", handover);
    assertThat(handover).as("waits for the write in flight").isNotDone();
    assertThat(inFlight).isNotDone();
    store.holdWrites = false;
    inFlight.get(10, TimeUnit.SECONDS);
    handover.get(10, TimeUnit.SECONDS);
    System.arraycopy(data, 0, model, 8192, 4096);
    assertFileEquals(files.fileOf(VOL), model, "the acknowledged write is on shared storage");
    assertThat(engine.handingOver(VOL)).isTrue();
  }

  @Test
  void failingStorageCancelsTheHandover() throws Exception {
    engine.createVolume(VOL, SIZE, CacheMode.WRITE_BACK, 0);
    store.failWrites = true;
    write(50);
    assertThatThrownBy(() -> engine.prepareHandover(VOL, in(10_000)))
        .hasMessageContaining("shared storage has failed")
        .satisfies(e -> assertThat(((CacheException) e).reason()).isEqualTo(Reason.UNAVAILABLE));
    assertThat(engine.handingOver(VOL)).isFalse();
    write(10);
    store.heal();
    engine.flush(VOL);
    assertFileEquals(files.fileOf(VOL), model, "after healing");
  }
}
