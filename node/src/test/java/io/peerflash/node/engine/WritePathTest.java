package io.peerflash.node.engine;

import static io.peerflash.node.engine.EngineTestSupport.awaitDestagerStep;
import static io.peerflash.node.engine.EngineTestSupport.awaitWaitingIn;
import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.index.VolumeInfo;
import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.storage.FileBackingStore;
import io.peerflash.replication.data.BlockCopy;
import io.peerflash.util.ManualTime;
import io.peerflash.util.NamedThreadFactory;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The write path's acknowledgement decision ({@link WritePath}, steps 10-11): what the replicas'
 * outcome means for a write-back write, the same for a caller that blocks ({@link
 * CacheEngine#write}) and one that does not ({@link CacheEngine#submitWrite}). The replication port
 * is the test's: each write's copies wait until the test completes them. On a stopped clock and
 * below the watermarks the destager writes only what it is asked to, so what reaches shared storage
 * is what the acknowledgement decided.
 */
class WritePathTest {
  private static final int BLOCK = CacheEngine.BLOCK;

  /** How the write is started. */
  enum Caller {
    /** {@link CacheEngine#write} on a thread of its own, which returns at the ack. */
    BLOCKING,
    /** {@link CacheEngine#submitWrite}, whose future completes at the ack. */
    SUBMIT
  }

  @TempDir Path dir;
  private final ExecutorService pool =
      Executors.newCachedThreadPool(new NamedThreadFactory("write-path-test", true));
  private final BlockingQueue<CompletableFuture<Void>> copies = new LinkedBlockingQueue<>();
  private final BlockingQueue<List<BlockCopy>> sent = new LinkedBlockingQueue<>();
  private final ManualTime time = new ManualTime();
  private FileBackingStore backing;
  private CacheEngine engine;

  private final ReplicationPort port =
      new ReplicationPort() {
        @Override
        public Placement place(VolumeInfo volume) {
          return Placement.serving(this::replicate);
        }

        private CompletableFuture<Void> replicate(VolumeInfo volume, List<BlockCopy> blocks) {
          CompletableFuture<Void> copy = new CompletableFuture<>();
          sent.add(blocks);
          copies.add(copy);
          return copy;
        }

        @Override
        public void released(VolumeInfo volume, long[] blocks, long[] seqs) {}
      };

  @BeforeEach
  void open() throws Exception {
    backing = new FileBackingStore(dir.resolve("shared"));
    engine = CacheEngine.open(EngineConfig.defaults(dir.resolve("data"), 8 << 20), backing, time);
    engine.setReplicationPort(port);
    engine.start();
    engine.createVolume("v", 1 << 20, CacheMode.WRITE_BACK, 1);
  }

  @AfterEach
  void close() {
    pool.shutdownNow();
    engine.close();
  }

  private static byte[] filled(int fill) {
    byte[] b = new byte[BLOCK];
    Arrays.fill(b, (byte) fill);
    return b;
  }

  private byte[] onStorage(long offset) throws IOException {
    return EngineTestSupport.readFile(backing.fileOf("v"), offset, BLOCK);
  }

  private long dirtyBytes() throws CacheException {
    return engine.volumeStatus("v").dirtyBytes();
  }

  /**
   * Starts a write of one block and returns its ack, once the write is stored and its copies are
   * out: the ack then waits for nothing but the copies' outcome.
   */
  private CompletableFuture<WriteAck> startWrite(Caller caller, long offset, byte[] data)
      throws Exception {
    CompletableFuture<WriteAck> ack;
    if (caller == Caller.SUBMIT) {
      ack = engine.submitWrite("v", offset, ByteBuffer.wrap(data), pool);
    } else {
      AtomicReference<Thread> writer = new AtomicReference<>();
      ack =
          CompletableFuture.supplyAsync(
              () -> {
                writer.set(Thread.currentThread());
                try {
                  return engine.write("v", offset, ByteBuffer.wrap(data));
                } catch (CacheException e) {
                  throw new CompletionException(e);
                }
              },
              pool);
      EngineTestSupport.awaitTrue(10_000, "the writer started", () -> writer.get() != null);
      awaitWaitingIn(writer.get(), "WritePath.awaitAck", ack);
    }
    List<BlockCopy> images = sent.poll(10, TimeUnit.SECONDS);
    assertThat(images).as("the write's copies").isNotNull();
    assertThat(images).extracting(BlockCopy::block).containsExactly(offset / BLOCK);
    assertThat(ack).as("no ack before the replicas' outcome").isNotDone();
    assertThat(engine.read("v", offset, BLOCK)).as("stored and visible").isEqualTo(data);
    return ack;
  }

  private CacheException refusal(CompletableFuture<WriteAck> ack) throws Exception {
    try {
      ack.get(10, TimeUnit.SECONDS);
      throw new AssertionError("acknowledged");
    } catch (ExecutionException e) {
      Throwable cause = e.getCause();
      if (cause instanceof CompletionException && cause.getCause() != null) {
        cause = cause.getCause();
      }
      assertThat(cause).isInstanceOf(CacheException.class);
      return (CacheException) cause;
    }
  }

  @ParameterizedTest
  @EnumSource(Caller.class)
  void copiesAckedAcknowledgeTheWriteWithoutADestage(Caller caller) throws Exception {
    byte[] data = filled(1);
    CompletableFuture<WriteAck> ack = startWrite(caller, 2 * BLOCK, data);

    copies.take().complete(null);
    assertThat(ack.get(10, TimeUnit.SECONDS)).isEqualTo(WriteAck.COPIES);
    assertThat(onStorage(2 * BLOCK)).as("not destaged").isEqualTo(new byte[BLOCK]);
    assertThat(dirtyBytes()).isEqualTo(BLOCK);

    engine.flush("v");
    assertThat(onStorage(2 * BLOCK)).isEqualTo(data);
  }

  @ParameterizedTest
  @EnumSource(Caller.class)
  void copiesFailedDestageTheWriteBeforeItsAck(Caller caller) throws Exception {
    byte[] data = filled(2);
    CompletableFuture<WriteAck> ack = startWrite(caller, 3 * BLOCK, data);

    copies.take().completeExceptionally(new IOException("replica lost"));
    assertThat(ack.get(10, TimeUnit.SECONDS))
        .as("reported as gone through to shared storage")
        .isEqualTo(WriteAck.WENT_THROUGH);
    assertThat(onStorage(3 * BLOCK)).as("on shared storage at the ack").isEqualTo(data);
    assertThat(dirtyBytes()).isZero();
  }

  @ParameterizedTest
  @EnumSource(Caller.class)
  void aReplicaThatKnowsANewerEpochFailsTheWriteWithoutTouchingSharedStorage(Caller caller)
      throws Exception {
    CompletableFuture<WriteAck> ack = startWrite(caller, 4 * BLOCK, filled(3));

    copies.take().completeExceptionally(new ReplicationPort.FencedException("epoch 9 is newer"));
    CacheException refused = refusal(ack);
    assertThat(refused.reason()).isEqualTo(Reason.FAILED_PRECONDITION);
    assertThat(refused.getMessage()).contains("'v'", "no longer its owner", "epoch 9 is newer");
    awaitDestagerStep(engine);
    assertThat(onStorage(4 * BLOCK))
        .as("no write-through by a fenced owner")
        .isEqualTo(new byte[BLOCK]);
  }

  @ParameterizedTest
  @EnumSource(Caller.class)
  void aReplicaNeitherReachedNorRemovedFailsTheWriteAsRetryable(Caller caller) throws Exception {
    CompletableFuture<WriteAck> ack = startWrite(caller, 5 * BLOCK, filled(4));

    copies
        .take()
        .completeExceptionally(new ReplicationPort.StuckException("replica r2 unreachable"));
    CacheException refused = refusal(ack);
    assertThat(refused.reason()).isEqualTo(Reason.UNAVAILABLE);
    assertThat(refused.getMessage()).contains("'v'", "replica r2 unreachable", "retry");
    awaitDestagerStep(engine);
    assertThat(onStorage(5 * BLOCK))
        .as("not destaged: the replica could still take the volume over without it")
        .isEqualTo(new byte[BLOCK]);
  }

  @ParameterizedTest
  @EnumSource(Caller.class)
  void copiesWithoutAnOutcomeFailTheWriteAsRetryableAtTheBackstopByTheEnginesClock(Caller caller)
      throws Exception {
    CompletableFuture<WriteAck> ack = startWrite(caller, 6 * BLOCK, filled(5));
    CompletableFuture<Void> silent = copies.take(); // a replication port that never answers

    // Timers run on the thread that moves the stopped clock: nothing else can complete the ack.
    time.advanceMs(WritePath.REPLICATION_WAIT_BACKSTOP_MS - 1);
    assertThat(ack).as("no answer before the backstop").isNotDone();
    time.advanceMs(1);
    CacheException refused = refusal(ack);
    assertThat(refused.reason()).isEqualTo(Reason.UNAVAILABLE);
    assertThat(refused.getMessage())
        .contains("'v'", "no outcome from its replicas within 30000 ms", "retry");
    assertThat(silent).isNotDone();
  }
}
