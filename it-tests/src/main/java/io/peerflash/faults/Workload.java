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
 * The workload driver: on each of several volumes at once, writer threads write self-describing
 * blocks ({@link BlockCodec}) through the Java client, and reader threads, each with a client of
 * its own, read random ranges while the faults happen; every read is judged by the volume's {@link
 * WriteModel}.
 *
 * <p>Each writer owns a disjoint range of its volume's blocks and has one write in flight, so the
 * writes of a block are ordered in real time and by id. Half of the writes are of one block, half
 * of 2 to {@code maxBlocksPerWrite} adjacent blocks, every block carrying the write's id. A write
 * is recorded before it is sent and, once its call returns, as acknowledged or failed. A failed
 * write is never resent with the same bytes: it stays in the model as maybe applied, and the
 * writer's next write (after a failure: the same blocks or fresh ones, at random) has a new id; so
 * if the failed write was applied in part, nothing identical covers up the part that is missing,
 * and if it surfaces after a later write of the same blocks was acknowledged, the read is stale.
 */
public final class Workload implements AutoCloseable {
  /** Shape of the load, per volume. */
  public record Options(
      int writers,
      int maxBlocksPerWrite,
      long writePauseMs,
      int readers,
      int maxBlocksPerRead,
      long readPauseMs) {
    public static Options defaults() {
      return new Options(2, 16, 5, 2, 24, 40);
    }

    public Options withWritePause(long ms) {
      return new Options(writers, maxBlocksPerWrite, ms, readers, maxBlocksPerRead, readPauseMs);
    }
  }

  /** One volume under load: its model and what its threads saw. */
  public final class VolumeLoad {
    private final String name;
    private final long blocks;
    private final BlockCodec codec;
    private final WriteModel model;
    private final PeerFlashClient writeClient;
    private final PeerFlashClient failFastWriteClient;
    private final ConcurrentLinkedQueue<Long> ackTimes = new ConcurrentLinkedQueue<>();
    private final LongAdder acked = new LongAdder();
    private final LongAdder ackedMultiBlock = new LongAdder();
    private final LongAdder failed = new LongAdder();
    private final LongAdder reads = new LongAdder();
    private final LongAdder failedReads = new LongAdder();
    private final LongAdder staleReads = new LongAdder();
    private final LongAdder timeTravelReads = new LongAdder();
    private final LongAdder neverWrittenReads = new LongAdder();

    private VolumeLoad(String name, long bytes, long originNanos) {
      this.name = name;
      this.blocks = bytes / BLOCK;
      this.codec = new BlockCodec(name);
      this.model = new WriteModel(codec, blocks, originNanos);
      // Each call may take a 5 s attempt per node plus the client's retry budget.
      this.writeClient = cluster.newClient(Duration.ofSeconds(20));
      // Tries each node once, then fails: its writes end maybe applied during a failover instead
      // of riding it out, so the model holds failed writes that the cluster may or may not have.
      this.failFastWriteClient =
          cluster
              .clientBuilder()
              .target(cluster.targets())
              .deadline(Duration.ofSeconds(20))
              .retryBudget(Duration.ZERO)
              .build();
      if (blocks / options.writers() < options.maxBlocksPerWrite()) {
        throw new IllegalArgumentException(
            "volume " + name + " too small for " + options.writers() + " writers");
      }
    }

    public String name() {
      return name;
    }

    public long blocks() {
      return blocks;
    }

    public BlockCodec codec() {
      return codec;
    }

    public WriteModel model() {
      return model;
    }

    public long acknowledged() {
      return acked.sum();
    }

    /** Acknowledged writes of more than one block. */
    public long acknowledgedMultiBlock() {
      return ackedMultiBlock.sum();
    }

    /** Writes whose call failed: maybe applied. */
    public long maybeApplied() {
      return failed.sum();
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

    public long timeTravelReads() {
      return timeTravelReads.sum();
    }

    public long neverWrittenReads() {
      return neverWrittenReads.sum();
    }

    /** Acknowledged writes after {@code nanoTime}. */
    public long acknowledgedSince(long nanoTime) {
      return ackTimes.stream().filter(t -> t > nanoTime).count();
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

    private void writeLoop(int writer, long firstBlock, long range) {
      PeerFlashClient client = writer % 2 == 0 ? writeClient : failFastWriteClient;
      SplittableRandom rnd = new SplittableRandom(1000 + 31L * name.hashCode() + writer);
      long retryFirst = -1;
      int retryCount = 0;
      while (!stop.get()) {
        long first;
        int n;
        if (retryFirst >= 0 && rnd.nextBoolean()) {
          first = retryFirst; // the failed write's blocks again, with new content
          n = retryCount;
        } else {
          n = rnd.nextBoolean() ? 1 : 2 + rnd.nextInt(options.maxBlocksPerWrite() - 1);
          first = firstBlock + rnd.nextLong(range - n + 1);
        }
        retryFirst = -1;
        WriteModel.Write w = model.begin(first, n, writer, System.nanoTime());
        byte[] data = new byte[n * BLOCK];
        for (int i = 0; i < n; i++) {
          codec.encode(first + i, w.id(), writer, data, i * BLOCK);
        }
        long t0 = System.nanoTime();
        boolean done = false;
        try {
          client.write(name, first * BLOCK, data);
          done = true;
        } catch (PeerFlashException e) {
          error(e.code().name(), e);
        } catch (RuntimeException e) {
          error(e.getClass().getSimpleName(), e);
        }
        long now = System.nanoTime();
        longestWriteCallNanos.accumulate(now - t0);
        if (done) {
          model.acknowledged(w, now);
          acked.increment();
          if (n > 1) {
            ackedMultiBlock.increment();
          }
          ackTimes.add(now);
          allAckTimes.add(now);
          if (options.writePauseMs() > 0) {
            DockerCluster.sleep(options.writePauseMs());
          }
        } else {
          model.failed(w, now);
          failed.increment();
          retryFirst = first;
          retryCount = n;
          DockerCluster.sleep(100);
        }
      }
    }

    private void readLoop(int reader, PeerFlashClient client) {
      SplittableRandom rnd = new SplittableRandom(7 + 31L * name.hashCode() + reader);
      while (!stop.get()) {
        int n = 1 + rnd.nextInt(options.maxBlocksPerRead());
        long first = rnd.nextLong(blocks - n + 1);
        WriteModel.ReadStart start = model.startRead(first, n, System.nanoTime());
        byte[] got;
        try {
          got = client.read(name, first * BLOCK, n * BLOCK);
        } catch (RuntimeException e) {
          failedReads.increment();
          DockerCluster.sleep(100);
          continue;
        }
        reads.increment();
        WriteModel.ReadCheck c = model.check(start, got, System.nanoTime());
        staleReads.add(c.count(WriteModel.Verdict.STALE));
        timeTravelReads.add(c.count(WriteModel.Verdict.TIME_TRAVEL));
        neverWrittenReads.add(c.count(WriteModel.Verdict.NEVER_WRITTEN));
        for (WriteModel.Finding f : c.findings()) {
          problem("read by reader " + reader + " during the workload", f);
        }
        if (options.readPauseMs() > 0) {
          DockerCluster.sleep(options.readPauseMs());
        }
      }
    }

    void problem(String what, WriteModel.Finding f) {
      if (problems.size() < 40) {
        problems.add(f.verdict() + " (" + what + ") on volume " + name + ", " + f.description());
      }
    }
  }

  private final DockerCluster cluster;
  private final Options options;
  private final List<VolumeLoad> volumes = new ArrayList<>();
  private final List<PeerFlashClient> readClients = new ArrayList<>();
  private final AtomicBoolean stop = new AtomicBoolean();
  private final List<Thread> threads = new ArrayList<>();
  private final ConcurrentLinkedQueue<Long> allAckTimes = new ConcurrentLinkedQueue<>();
  private final Map<String, LongAdder> errors = new ConcurrentHashMap<>();
  private final LongAccumulator longestWriteCallNanos = new LongAccumulator(Math::max, 0);
  private final List<String> problems = Collections.synchronizedList(new ArrayList<>());
  private final List<String> errorSamples = Collections.synchronizedList(new ArrayList<>());
  private final List<Throwable> crashes = Collections.synchronizedList(new ArrayList<>());

  /**
   * A load on the volumes named, with their sizes in bytes (the first is the one faults target).
   */
  public Workload(DockerCluster cluster, Map<String, Long> volumeBytes, Options options) {
    this.cluster = cluster;
    this.options = options;
    long origin = System.nanoTime();
    volumeBytes.forEach((name, bytes) -> volumes.add(new VolumeLoad(name, bytes, origin)));
  }

  public List<VolumeLoad> volumes() {
    return List.copyOf(volumes);
  }

  /** The first volume: the one the scenario's faults aim at. */
  public VolumeLoad primary() {
    return volumes.get(0);
  }

  /** Starts the writers and readers of every volume. */
  public Workload start() {
    for (VolumeLoad v : volumes) {
      long perWriter = v.blocks / options.writers();
      for (int w = 0; w < options.writers(); w++) {
        final int writer = w;
        threads.add(
            new Thread(
                () -> guarded(() -> v.writeLoop(writer, writer * perWriter, perWriter)),
                "workload-" + v.name + "-writer-" + w));
      }
      for (int r = 0; r < options.readers(); r++) {
        final int reader = r;
        // A client per reader: the time-travel rule spans clients, whose routing can differ.
        PeerFlashClient c = cluster.newClient(Duration.ofSeconds(20));
        readClients.add(c);
        threads.add(
            new Thread(
                () -> guarded(() -> v.readLoop(reader, c)), "workload-" + v.name + "-reader-" + r));
      }
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

  /** Stops the writers and the readers and waits for them. */
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
    for (VolumeLoad v : volumes) {
      v.writeClient.close();
      v.failFastWriteClient.close();
    }
    readClients.forEach(PeerFlashClient::close);
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

  /** Acknowledged writes on every volume after {@code nanoTime}. */
  public long acknowledgedSince(long nanoTime) {
    return allAckTimes.stream().filter(t -> t > nanoTime).count();
  }

  public long longestWriteCallMs() {
    return TimeUnit.NANOSECONDS.toMillis(longestWriteCallNanos.get());
  }

  /** Failed write calls by status code, over every volume. */
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
}
