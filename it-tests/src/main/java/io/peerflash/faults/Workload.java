package io.peerflash.faults;

import static io.peerflash.faults.BlockCodec.BLOCK;

import io.peerflash.client.PeerFlashClient;
import io.peerflash.client.PeerFlashException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.LongAccumulator;
import java.util.concurrent.atomic.LongAdder;

/**
 * The workload driver: writer threads write self-describing blocks ({@link BlockCodec}) through the
 * Java client and record which writes were acknowledged; a reader thread reads random ranges while
 * the faults happen and checks every block it gets against what was acknowledged before the read
 * began.
 *
 * <p>The model: each writer owns a disjoint range of blocks and has one write in flight, so the
 * writes to a block are totally ordered by their sequence numbers. Before a write is sent, its
 * sequence and blocks are recorded as attempted; once it is acknowledged, it becomes the block's
 * last acknowledged write. A write that fails is sent again with the same bytes until it is
 * acknowledged (a block device write is idempotent), or left uncertain when the workload stops. A
 * read of a block is then correct only if it returns the block's last acknowledged write (as of the
 * read's start) or a later attempted one; an older write is a <b>stale read</b> (an acknowledged
 * write is missing), anything else is data <b>never written</b>.
 */
public final class Workload implements AutoCloseable {
  /** Shape of the load. */
  public record Options(
      int writers, int maxBlocksPerWrite, long writePauseMs, boolean reader, long readPauseMs) {
    public static Options defaults() {
      return new Options(3, 4, 5, true, 20);
    }

    public Options withWritePause(long ms) {
      return new Options(writers, maxBlocksPerWrite, ms, reader, readPauseMs);
    }
  }

  private final PeerFlashClient writeClient;
  private final PeerFlashClient readClient;
  private final String volume;
  private final long blocks;
  private final Options options;
  private final BlockCodec codec;
  private final WriteModel model;
  private final AtomicBoolean stop = new AtomicBoolean();
  private final List<Thread> threads = new ArrayList<>();
  private final ConcurrentLinkedQueue<Long> ackTimes = new ConcurrentLinkedQueue<>();
  private final LongAdder acked = new LongAdder();
  private final LongAdder failedAttempts = new LongAdder();
  private final LongAdder uncertain = new LongAdder();
  private final Map<String, LongAdder> errors = new ConcurrentHashMap<>();
  private final LongAccumulator longestWriteCallNanos = new LongAccumulator(Math::max, 0);
  private final LongAdder reads = new LongAdder();
  private final LongAdder failedReads = new LongAdder();
  private final LongAdder staleReads = new LongAdder();
  private final LongAdder neverWrittenReads = new LongAdder();
  private final List<String> problems = Collections.synchronizedList(new ArrayList<>());
  private final List<String> errorSamples = Collections.synchronizedList(new ArrayList<>());
  private final List<Throwable> crashes = Collections.synchronizedList(new ArrayList<>());

  public Workload(DockerCluster cluster, String volume, long volumeBytes, Options options) {
    this.volume = volume;
    this.blocks = volumeBytes / BLOCK;
    this.options = options;
    this.codec = new BlockCodec(volume);
    this.model = new WriteModel(codec, blocks);
    // Each call may take a 5 s attempt per node plus the client's retry budget.
    this.writeClient = cluster.newClient(Duration.ofSeconds(20));
    this.readClient = cluster.newClient(Duration.ofSeconds(20));
    if (blocks / options.writers() < options.maxBlocksPerWrite()) {
      throw new IllegalArgumentException("volume too small for " + options.writers() + " writers");
    }
  }

  public BlockCodec codec() {
    return codec;
  }

  public String volume() {
    return volume;
  }

  public long blocks() {
    return blocks;
  }

  /** Starts the writers (and the reader). */
  public Workload start() {
    long perWriter = blocks / options.writers();
    for (int w = 0; w < options.writers(); w++) {
      final int writer = w;
      Thread t =
          new Thread(
              () -> guarded(() -> writeLoop(writer, writer * perWriter, perWriter)),
              "workload-writer-" + w);
      threads.add(t);
    }
    if (options.reader()) {
      threads.add(new Thread(() -> guarded(this::readLoop), "workload-reader"));
    }
    threads.forEach(Thread::start);
    return this;
  }

  private void guarded(Runnable r) {
    try {
      r.run();
    } catch (Throwable t) {
      crashes.add(t);
    }
  }

  private void writeLoop(int writer, long firstBlock, long range) {
    SplittableRandom rnd = new SplittableRandom(1000 + writer);
    while (!stop.get()) {
      int n = 1 + rnd.nextInt(options.maxBlocksPerWrite());
      long first = firstBlock + rnd.nextLong(range - n + 1);
      long seq = model.attempt(first, n);
      byte[] data = new byte[n * BLOCK];
      for (int i = 0; i < n; i++) {
        codec.encode(first + i, seq, writer, data, i * BLOCK);
      }
      boolean done = false;
      while (!done) {
        long t0 = System.nanoTime();
        try {
          writeClient.write(volume, first * BLOCK, data);
          done = true;
        } catch (PeerFlashException e) {
          failedAttempts.increment();
          error(e.code().name(), e);
        } catch (RuntimeException e) {
          failedAttempts.increment();
          error(e.getClass().getSimpleName(), e);
        }
        long now = System.nanoTime();
        longestWriteCallNanos.accumulate(now - t0);
        if (done) {
          model.acknowledged(seq);
          acked.increment();
          ackTimes.add(now);
        } else if (stop.get()) {
          uncertain.increment();
          return;
        } else {
          DockerCluster.sleep(100);
        }
      }
      if (options.writePauseMs() > 0) {
        DockerCluster.sleep(options.writePauseMs());
      }
    }
  }

  private void readLoop() {
    SplittableRandom rnd = new SplittableRandom(7);
    while (!stop.get()) {
      int n = 1 + rnd.nextInt(8);
      long first = rnd.nextLong(blocks - n + 1);
      long[] before = new long[n];
      for (int i = 0; i < n; i++) {
        before[i] = model.lastAcked(first + i);
      }
      byte[] got;
      try {
        got = readClient.read(volume, first * BLOCK, n * BLOCK);
      } catch (RuntimeException e) {
        failedReads.increment();
        DockerCluster.sleep(100);
        continue;
      }
      reads.increment();
      for (int i = 0; i < n; i++) {
        switch (model.judge(first + i, before[i], got, i * BLOCK)) {
          case STALE -> {
            staleReads.increment();
            problem("stale read during the workload", first + i, before[i], got, i * BLOCK);
          }
          case NEVER_WRITTEN -> {
            neverWrittenReads.increment();
            problem("read of data never written", first + i, before[i], got, i * BLOCK);
          }
          case OK -> {}
        }
      }
      if (options.readPauseMs() > 0) {
        DockerCluster.sleep(options.readPauseMs());
      }
    }
  }

  void problem(String what, long block, long acked, byte[] data, int at) {
    if (problems.size() < 20) {
      problems.add(
          what
              + ": block "
              + block
              + ", last acknowledged write "
              + acked
              + ", got "
              + codec.decode(block, data, at));
    }
  }

  /** Stops the writers and the reader and waits for them. */
  public void stop() {
    stop.set(true);
    for (Thread t : threads) {
      try {
        t.join(TimeUnit.SECONDS.toMillis(90));
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return;
      }
      if (t.isAlive()) {
        crashes.add(new IllegalStateException(t.getName() + " still running 90 s after stop"));
      }
    }
  }

  @Override
  public void close() {
    stop();
    writeClient.close();
    readClient.close();
  }

  public WriteModel model() {
    return model;
  }

  private void error(String code, Exception e) {
    errors.computeIfAbsent(code, k -> new LongAdder()).increment();
    if (errorSamples.size() < 6) {
      errorSamples.add(code + ": " + e.getMessage());
    }
  }

  /** The first few write errors, with their messages. */
  public List<String> errorSamples() {
    synchronized (errorSamples) {
      return List.copyOf(errorSamples);
    }
  }

  public long acknowledged() {
    return acked.sum();
  }

  /** Acknowledged writes after {@code nanoTime}. */
  public long acknowledgedSince(long nanoTime) {
    return ackTimes.stream().filter(t -> t > nanoTime).count();
  }

  public long failedAttempts() {
    return failedAttempts.sum();
  }

  public long uncertain() {
    return uncertain.sum();
  }

  public long reads() {
    return reads.sum();
  }

  public long failedReads() {
    return failedReads.sum();
  }

  public long staleReads() {
    return staleReads.sum();
  }

  public long neverWrittenReads() {
    return neverWrittenReads.sum();
  }

  public long longestWriteCallMs() {
    return TimeUnit.NANOSECONDS.toMillis(longestWriteCallNanos.get());
  }

  /** Failed write attempts by status code. */
  public Map<String, Long> errors() {
    Map<String, Long> m = new TreeMap<>();
    errors.forEach((k, v) -> m.put(k, v.sum()));
    return m;
  }

  public List<String> problems() {
    synchronized (problems) {
      return List.copyOf(problems);
    }
  }

  /** Exceptions that ended a workload thread (must be none). */
  public List<Throwable> crashes() {
    synchronized (crashes) {
      return List.copyOf(crashes);
    }
  }

  /**
   * The longest time without any acknowledged write, counted from {@code fromNanos} (the fault)
   * until the last acknowledgement; -1 if no write was acknowledged after it.
   */
  public long longestStallMsSince(long fromNanos) {
    List<Long> times = new ArrayList<>(ackTimes);
    Collections.sort(times);
    long prev = fromNanos;
    long longest = -1;
    for (long t : times) {
      if (t <= fromNanos) {
        continue;
      }
      longest = Math.max(longest, t - prev);
      prev = t;
    }
    return longest < 0 ? -1 : TimeUnit.NANOSECONDS.toMillis(longest);
  }
}
