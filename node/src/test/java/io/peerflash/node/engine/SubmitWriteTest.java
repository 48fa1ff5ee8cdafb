package io.peerflash.node.engine;

import static io.peerflash.node.engine.EngineTestSupport.awaitDestagerStep;
import static io.peerflash.node.engine.EngineTestSupport.awaitTrue;
import static io.peerflash.node.engine.EngineTestSupport.awaitWaitingIn;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.index.VolumeInfo;
import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.storage.FileBackingStore;
import io.peerflash.replication.data.BlockCopy;
import io.peerflash.util.NamedThreadFactory;
import io.peerflash.util.Time;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.Deque;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executor;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Writes and reads started without waiting ({@link CacheEngine#submitWrite}, {@link
 * CacheEngine#submitRead}): what runs on the calling thread, what is handed to the executor, and
 * that a write whose copies are still on their way is visible but neither acknowledged nor
 * destaged.
 */
class SubmitWriteTest {
  private static final int BLOCK = CacheEngine.BLOCK;

  @TempDir Path dir;
  private FileBackingStore backing;
  private CacheEngine engine;
  private final BlockingQueue<CompletableFuture<Void>> copies = new LinkedBlockingQueue<>();
  private final List<String> events = new java.util.concurrent.CopyOnWriteArrayList<>();
  private final AtomicInteger handOffs = new AtomicInteger();
  private final ExecutorService pool =
      Executors.newSingleThreadExecutor(new NamedThreadFactory("test-waits", true));
  private final Executor waits =
      r -> {
        handOffs.incrementAndGet();
        pool.execute(r);
      };

  /** Copies wait until the test completes them; releases are recorded. */
  private final ReplicationPort port =
      new ReplicationPort() {
        @Override
        public Placement place(VolumeInfo volume) {
          return Placement.serving(this::replicate);
        }

        private CompletableFuture<Void> replicate(VolumeInfo volume, List<BlockCopy> blocks) {
          if (volume.replicas() == 0) {
            return null;
          }
          CompletableFuture<Void> f = new CompletableFuture<>();
          events.add("copy " + blocks.get(0).seq());
          copies.add(f);
          return f;
        }

        @Override
        public void released(VolumeInfo volume, long[] blocks, long[] seqs) {
          events.add("release " + seqs[0]);
        }
      };

  @BeforeEach
  void open() throws IOException, CacheException {
    backing = new FileBackingStore(dir.resolve("shared"));
    engine =
        CacheEngine.open(EngineConfig.defaults(dir.resolve("data"), 8 << 20), backing, Time.SYSTEM);
    engine.setReplicationPort(port);
    engine.start();
    engine.createVolume("v", 1 << 20, CacheMode.WRITE_BACK, 1);
  }

  @AfterEach
  void close() {
    engine.close();
    pool.shutdownNow();
  }

  private static byte[] filled(int n, int fill) {
    byte[] b = new byte[n];
    Arrays.fill(b, (byte) fill);
    return b;
  }

  private byte[] onStorage(long offset, int length) throws IOException {
    byte[] all = Files.readAllBytes(backing.fileOf("v"));
    return Arrays.copyOfRange(all, (int) offset, (int) offset + length);
  }

  /** Whether shared storage holds {@code data} at {@code offset}, for waits. */
  private boolean storageHolds(long offset, byte[] data) {
    try {
      return Arrays.equals(onStorage(offset, data.length), data);
    } catch (IOException e) {
      throw new IllegalStateException(e);
    }
  }

  @Test
  void aWriteThatNeedsNoWaitRunsOnTheCallerAndIsAckedByTheReplicasAck() throws Exception {
    byte[] data = filled(2 * BLOCK, 7);
    CompletableFuture<WriteAck> acked =
        engine.submitWrite("v", BLOCK, ByteBuffer.wrap(data), waits);

    assertThat(handOffs).as("hand-offs").hasValue(0);
    assertThat(acked).as("acked before the replica's ack").isNotDone();
    // Stored and visible already: a reader may see a write in flight.
    assertThat(engine.read("v", BLOCK, data.length)).isEqualTo(data);
    // But not destaged, not even when asked to: its release could otherwise overtake the copy on
    // its way.
    engine.destageSoon("v");
    awaitDestagerStep(engine);
    assertThat(onStorage(BLOCK, data.length)).isEqualTo(new byte[data.length]);
    assertThatThrownBy(() -> engine.flush("v", System.currentTimeMillis()))
        .isInstanceOfSatisfying(
            CacheException.class, e -> assertThat(e.reason()).isEqualTo(Reason.DEADLINE_EXCEEDED));

    copies.take().complete(null);
    acked.get(5, TimeUnit.SECONDS);
    assertThat(handOffs).as("hand-offs").hasValue(0);
    engine.flush("v");
    assertThat(onStorage(BLOCK, data.length)).isEqualTo(data);
    // The destager may release the write's two blocks (seqs 1 and 2) in one batch or two.
    assertThat(events).as("the copy comes first").first().isEqualTo("copy 1");
    assertThat(events.subList(1, events.size()))
        .as("then only releases of the write's blocks")
        .isNotEmpty()
        .allMatch(e -> e.equals("release 1") || e.equals("release 2"));
  }

  @Test
  void otherBlocksAreDestagedWhileAWritesCopiesAreOnTheirWay() throws Exception {
    // A replica short of space waits for releases: blocks without copies in flight must still be
    // destaged (and released) meanwhile.
    CompletableFuture<WriteAck> first =
        engine.submitWrite("v", 0, ByteBuffer.wrap(filled(BLOCK, 1)), waits);
    CompletableFuture<Void> copyOfFirst = copies.take();
    CompletableFuture<WriteAck> second =
        engine.submitWrite("v", 5 * BLOCK, ByteBuffer.wrap(filled(BLOCK, 2)), waits);
    copies.take().complete(null);
    second.get(5, TimeUnit.SECONDS);

    engine.destageSoon("v");
    awaitTrue(
        5000, "the newer write on shared storage", () -> storageHolds(5 * BLOCK, filled(BLOCK, 2)));
    awaitDestagerStep(engine);
    assertThat(onStorage(5 * BLOCK, BLOCK))
        .as("the newer write, acked")
        .isEqualTo(filled(BLOCK, 2));
    assertThat(onStorage(0, BLOCK))
        .as("the older one, copies in flight")
        .isEqualTo(new byte[BLOCK]);
    assertThat(events).containsExactly("copy 1", "copy 2", "release 2");

    copyOfFirst.complete(null);
    first.get(5, TimeUnit.SECONDS);
    engine.flush("v");
    assertThat(onStorage(0, BLOCK)).isEqualTo(filled(BLOCK, 1));
  }

  @Test
  void aDirtyNeighbourWhoseCopyIsOnItsWayIsNotTakenWithTheBlockBesideIt() throws Exception {
    // Blocks 0, 1 and 2 are dirty and adjacent; the destager takes the oldest with its dirty
    // neighbours. Block 1's copy is still on its way, so its release must not go out yet: the run
    // from block 0 stops before it, and block 2 goes in a run of its own.
    CompletableFuture<WriteAck> first =
        engine.submitWrite("v", 0, ByteBuffer.wrap(filled(BLOCK, 1)), waits);
    copies.take().complete(null);
    first.get(5, TimeUnit.SECONDS);
    CompletableFuture<WriteAck> second =
        engine.submitWrite("v", BLOCK, ByteBuffer.wrap(filled(BLOCK, 2)), waits);
    CompletableFuture<Void> copyOfSecond = copies.take();
    CompletableFuture<WriteAck> third =
        engine.submitWrite("v", 2 * BLOCK, ByteBuffer.wrap(filled(BLOCK, 3)), waits);
    copies.take().complete(null);
    third.get(5, TimeUnit.SECONDS);

    engine.destageSoon("v");
    awaitTrue(
        5000,
        "blocks 0 and 2 on shared storage",
        () -> storageHolds(0, filled(BLOCK, 1)) && storageHolds(2 * BLOCK, filled(BLOCK, 3)));
    awaitDestagerStep(engine);
    assertThat(onStorage(BLOCK, BLOCK)).as("block 1, copy in flight").isEqualTo(new byte[BLOCK]);
    assertThat(events).as("no release of block 1 (seq 2)").doesNotContain("release 2");

    copyOfSecond.complete(null);
    second.get(5, TimeUnit.SECONDS);
    engine.flush("v");
    assertThat(onStorage(BLOCK, BLOCK)).isEqualTo(filled(BLOCK, 2));
    assertThat(events.indexOf("release 2")).isGreaterThan(events.indexOf("copy 2"));
  }

  @Test
  void aWriteWhoseCopiesFailIsDestagedOnTheExecutorBeforeItsAck() throws Exception {
    byte[] data = filled(BLOCK, 9);
    CompletableFuture<WriteAck> acked = engine.submitWrite("v", 0, ByteBuffer.wrap(data), waits);
    copies.take().completeExceptionally(new IOException("replica lost"));

    acked.get(10, TimeUnit.SECONDS);
    assertThat(handOffs).as("the destage before the ack waits on the executor").hasValue(1);
    assertThat(onStorage(0, BLOCK)).isEqualTo(data);
  }

  @Test
  void aWriteRefusedForItsEpochFailsWithoutAnAck() throws Exception {
    CompletableFuture<WriteAck> acked =
        engine.submitWrite("v", 0, ByteBuffer.wrap(filled(BLOCK, 3)), waits);
    copies.take().completeExceptionally(new ReplicationPort.FencedException("epoch 7 is newer"));

    assertThat(acked)
        .failsWithin(Duration.ofSeconds(5))
        .withThrowableOfType(ExecutionException.class)
        .havingCause()
        .isInstanceOfSatisfying(
            CacheException.class,
            e -> {
              assertThat(e.reason()).isEqualTo(Reason.FAILED_PRECONDITION);
              assertThat(e.getMessage()).contains("no longer its owner");
            });
  }

  @Test
  void withTheCallersLoopTheOwnStoreWaitsForTheCopiesToGoOutAndTheAckForTheOwnStore()
      throws Exception {
    Deque<Runnable> loop = new ArrayDeque<>(); // the calling thread's later tasks
    byte[] data = filled(BLOCK, 7);
    CompletableFuture<WriteAck> acked =
        engine.submitWrite("v", 0, ByteBuffer.wrap(data), waits, loop::add);

    CompletableFuture<Void> copy = copies.poll();
    assertThat(copy).as("the copy is sent at once").isNotNull();
    assertThat(loop).as("the own store, queued behind the copy's flush").hasSize(1);
    assertThat(engine.read("v", 0, BLOCK)).as("not stored yet").isEqualTo(new byte[BLOCK]);
    copy.complete(null);
    assertThat(acked).as("the replica's ack alone").isNotDone();

    // Until the own store ran, the write holds its block and the volume's gate, also against this
    // thread (BlockLocks counts a stripe the thread holds as busy).
    Thread waitsThread = pool.submit(Thread::currentThread).get(5, TimeUnit.SECONDS);
    CompletableFuture<WriteAck> next =
        engine.submitWrite("v", 0, ByteBuffer.wrap(filled(BLOCK, 8)), waits, loop::add);
    AtomicReference<Thread> policyThread = new AtomicReference<>();
    CompletableFuture<Void> policy =
        CompletableFuture.runAsync(
            () -> {
              policyThread.set(Thread.currentThread());
              try {
                engine.setPolicy("v", CacheMode.WRITE_BACK, 1);
              } catch (CacheException e) {
                throw new IllegalStateException(e);
              }
            });
    awaitWaitingIn(waitsThread, "io.peerflash.node.engine.", next);
    awaitTrue(5000, "the policy change started", () -> policyThread.get() != null);
    awaitWaitingIn(policyThread.get(), "CacheEngine.setPolicy", policy);
    assertThat(next).as("the next write of the block").isNotDone();
    assertThat(policy).as("a policy change").isNotDone();

    runAll(loop); // the own store, then the commit of the turn it joined
    acked.get(5, TimeUnit.SECONDS);
    policy.get(5, TimeUnit.SECONDS);
    copies.poll(5, TimeUnit.SECONDS).complete(null);
    next.get(5, TimeUnit.SECONDS);
    assertThat(handOffs).as("only the next write, which had to wait").hasValue(1);
    assertThat(engine.read("v", 0, BLOCK)).isEqualTo(filled(BLOCK, 8));
  }

  @Test
  void aCopyFailingBeforeTheOwnStoreRanIsDestagedOnlyAfterIt() throws Exception {
    Deque<Runnable> loop = new ArrayDeque<>();
    byte[] data = filled(BLOCK, 9);
    CompletableFuture<WriteAck> acked =
        engine.submitWrite("v", 0, ByteBuffer.wrap(data), waits, loop::add);
    // The engine reacts to the failure on the thread completing the copy (this one): whatever it
    // hands off or acknowledges, it has done when this call returns.
    copies.take().completeExceptionally(new IOException("replica lost"));
    assertThat(acked).isNotDone();
    assertThat(handOffs).as("no destage before the own store").hasValue(0);

    runAll(loop);
    acked.get(10, TimeUnit.SECONDS);
    assertThat(onStorage(0, BLOCK)).isEqualTo(data);
  }

  /** Runs a test loop's tasks, those they queue included, until none is left. */
  private static void runAll(Deque<Runnable> loop) {
    for (Runnable task = loop.poll(); task != null; task = loop.poll()) {
      task.run();
    }
  }

  @Test
  void theWritesStoredInOneTurnOfTheLoopCommitTheirIndexEntriesAsOneBatch() throws Exception {
    engine.createVolume("solo", 1 << 20, CacheMode.WRITE_BACK, 0);
    Deque<Runnable> loop = new ArrayDeque<>();
    long groups0 = engine.status().commitGroups();
    List<CompletableFuture<WriteAck>> acked = new java.util.ArrayList<>();
    for (int i = 0; i < 32; i++) {
      acked.add(
          engine.submitWriteOnLoop(
              "solo", (long) i * BLOCK, ByteBuffer.wrap(filled(BLOCK, i + 1)), waits, loop::add));
    }
    assertThat(loop).as("one commit queued behind the turn's writes").hasSize(1);
    assertThat(acked)
        .as("acked before their index entries are committed")
        .noneMatch(f -> f.isDone());
    assertThat(engine.read("solo", 0, BLOCK))
        .as("not visible before the commit")
        .isEqualTo(new byte[BLOCK]);
    runAll(loop);
    for (int i = 0; i < 32; i++) {
      assertThat(acked.get(i)).isCompletedWithValue(WriteAck.COPIES);
      assertThat(engine.read("solo", (long) i * BLOCK, BLOCK)).isEqualTo(filled(BLOCK, i + 1));
    }
    assertThat(engine.status().commitGroups() - groups0).as("index writes").isEqualTo(1);
    assertThat(handOffs).as("hand-offs").hasValue(0);

    // A write stored after the commit ran (here: by a task of the next turn) opens a turn of its
    // own; it is not lost in the one already committed.
    CompletableFuture<WriteAck> later =
        engine.submitWriteOnLoop(
            "solo", 40L * BLOCK, ByteBuffer.wrap(filled(BLOCK, 99)), waits, loop::add);
    assertThat(loop).hasSize(1);
    runAll(loop);
    assertThat(later).isCompletedWithValue(WriteAck.COPIES);
    assertThat(engine.status().commitGroups() - groups0).isEqualTo(2);
    // After a restart every acknowledged write is there: the batches reached the index.
    engine.close();
    engine =
        CacheEngine.open(EngineConfig.defaults(dir.resolve("data"), 8 << 20), backing, Time.SYSTEM);
    engine.setReplicationPort(port);
    engine.start();
    for (int i = 0; i < 32; i++) {
      assertThat(engine.read("solo", (long) i * BLOCK, BLOCK)).isEqualTo(filled(BLOCK, i + 1));
    }
    assertThat(engine.read("solo", 40L * BLOCK, BLOCK)).isEqualTo(filled(BLOCK, 99));
  }

  @Test
  void aFailedTurnCommitFailsEveryWriteOfTheTurnAndAcknowledgesNone() throws Exception {
    engine.createVolume("solo", 1 << 20, CacheMode.WRITE_BACK, 0);
    Deque<Runnable> loop = new ArrayDeque<>();
    List<CompletableFuture<WriteAck>> acked = new java.util.ArrayList<>();
    for (int i = 0; i < 4; i++) {
      acked.add(
          engine.submitWriteOnLoop(
              "solo", (long) i * BLOCK, ByteBuffer.wrap(filled(BLOCK, 5)), waits, loop::add));
    }
    // The node loses track of what is on its disk (a failed fsync) before the turn commits.
    io.peerflash.replication.fault.FaultPoints faults =
        new io.peerflash.replication.fault.FaultPoints();
    engine.setFaultPoints(faults);
    faults.arm(
        io.peerflash.replication.fault.FaultPoints.LOCAL_FSYNC,
        "cache.slots",
        io.peerflash.replication.fault.FaultPoints.Action.DROP,
        0,
        1);
    assertThatThrownBy(() -> engine.syncLocal()).isInstanceOf(CacheException.class);
    runAll(loop);
    for (CompletableFuture<WriteAck> f : acked) {
      assertThat(f).isCompletedExceptionally();
      assertThatThrownBy(f::join).hasMessageContaining("local flash failed");
    }
  }

  @Test
  void aLoopThatRefusesTheTaskGetsTheOwnStoreInline() throws Exception {
    byte[] data = filled(BLOCK, 4);
    CompletableFuture<WriteAck> acked =
        engine.submitWrite(
            "v",
            0,
            ByteBuffer.wrap(data),
            waits,
            task -> {
              throw new RejectedExecutionException("shutting down");
            });
    assertThat(engine.read("v", 0, BLOCK)).isEqualTo(data);
    copies.take().complete(null);
    acked.get(5, TimeUnit.SECONDS);
  }

  @Test
  void aWriteThatMustWaitRunsOnTheExecutor() throws Exception {
    // A partial block needs its old content (possibly from shared storage): not on the caller.
    byte[] data = filled(512, 5);
    CompletableFuture<WriteAck> acked = engine.submitWrite("v", 512, ByteBuffer.wrap(data), waits);
    copies.poll(5, TimeUnit.SECONDS).complete(null);
    acked.get(5, TimeUnit.SECONDS);
    assertThat(handOffs).hasValue(1);
    assertThat(engine.read("v", 512, 512)).isEqualTo(data);

    // So does a large write: it would hold the network thread for milliseconds.
    int large = WritePath.MAX_WRITE_NOW_BYTES + BLOCK;
    acked = engine.submitWrite("v", 16 * BLOCK, ByteBuffer.wrap(filled(large, 8)), waits);
    copies.poll(5, TimeUnit.SECONDS).complete(null);
    acked.get(5, TimeUnit.SECONDS);
    assertThat(handOffs).hasValue(2);

    // So does every write of a write-through volume.
    engine.setPolicy("v", CacheMode.WRITE_THROUGH, 0);
    engine.submitWrite("v", 0, ByteBuffer.wrap(filled(BLOCK, 6)), waits).get(5, TimeUnit.SECONDS);
    assertThat(handOffs).hasValue(3);
    assertThat(onStorage(0, BLOCK)).isEqualTo(filled(BLOCK, 6));
  }

  @Test
  void badInputFailsTheFutureWithoutAHandOff() {
    assertThat(engine.submitWrite("nope", 0, ByteBuffer.wrap(filled(BLOCK, 1)), waits))
        .failsWithin(Duration.ofSeconds(1))
        .withThrowableOfType(ExecutionException.class)
        .havingCause()
        .isInstanceOfSatisfying(
            CacheException.class, e -> assertThat(e.reason()).isEqualTo(Reason.NOT_FOUND));
    assertThat(engine.submitWrite("v", 1 << 20, ByteBuffer.wrap(filled(BLOCK, 1)), waits))
        .failsWithin(Duration.ofSeconds(1))
        .withThrowableOfType(ExecutionException.class)
        .havingCause()
        .isInstanceOfSatisfying(
            CacheException.class, e -> assertThat(e.reason()).isEqualTo(Reason.INVALID_ARGUMENT));
    assertThat(handOffs).hasValue(0);
  }

  @Test
  void aCacheHitIsReadOnTheCallerAndAMissOnTheExecutor() throws Exception {
    engine.setPolicy("v", CacheMode.WRITE_BACK, 0);
    byte[] data = filled(BLOCK, 4);
    engine.write("v", 0, ByteBuffer.wrap(data));

    assertThat(engine.submitRead("v", 0, BLOCK, waits).get(5, TimeUnit.SECONDS)).isEqualTo(data);
    assertThat(handOffs).as("a hit").hasValue(0);

    assertThat(engine.submitRead("v", 8 * BLOCK, BLOCK, waits).get(5, TimeUnit.SECONDS))
        .isEqualTo(new byte[BLOCK]);
    assertThat(handOffs).as("a miss").hasValue(1);
    // The miss was promoted: the same read is a hit now.
    engine.submitRead("v", 8 * BLOCK, BLOCK, waits).get(5, TimeUnit.SECONDS);
    assertThat(handOffs).hasValue(1);
  }
}
