package io.peerflash.bench;

import io.peerflash.bench.BenchResult.Phase;
import io.peerflash.bench.BenchResult.TimelinePoint;
import io.peerflash.util.NamedThreadFactory;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;
import org.HdrHistogram.Histogram;
import org.HdrHistogram.Recorder;

/**
 * Runs operations closed-loop at a fixed queue depth for a duration after a warm-up, and records
 * every latency (HdrHistogram, nanoseconds) in total, per interval (the timeline) and per phase.
 *
 * <p>Two ways to keep {@code qd} operations outstanding:
 *
 * <ul>
 *   <li>{@link #runPipelined}: one caller starts {@code qd} asynchronous operations; each
 *       completion records its latency and starts the next operation on the thread that completed
 *       it (the transport's, with a direct executor), so no thread hand-off is added on the client
 *       side.
 *   <li>{@link #runThreads}: {@code qd} threads, each running blocking operations back to back (at
 *       QD1 this is one thread making blocking calls, the lowest-latency client there is).
 *   <li>{@link #runPaired}: one thread that alternates, slice by slice, between the operation and a
 *       reference (the floor), recorded apart: a ratio of the two is then measured on the same
 *       machine at the same moments. On a shared machine the floor alone drifts by more than the
 *       margins measured against it (a QD1 echo ran at 69, 94 and 129 us p50 in three runs minutes
 *       apart).
 * </ul>
 */
public final class LoadDriver {
  /** A blocking operation; {@code i} counts operations from 0. */
  @FunctionalInterface
  public interface SyncOp {
    void run(long i) throws Exception;
  }

  /**
   * An operation that reports its end through {@code done} (null: success), exactly once. It must
   * not block: it may be started from a transport thread.
   */
  @FunctionalInterface
  public interface AsyncOp {
    void start(long i, Consumer<Throwable> done);
  }

  /** What a node said at one instant, to follow the destager during a run. */
  public record NodeSample(long cacheBytes, long dirtyBytes, long destagedBytes) {}

  /** Polled once per interval while the run lasts; may return null when a poll fails. */
  @FunctionalInterface
  public interface NodeWatcher {
    NodeSample sample();
  }

  /** Told about each interval, e.g. to draw a progress bar. */
  @FunctionalInterface
  public interface ProgressListener {
    void interval(
        double fractionDone, boolean warmingUp, double iops, double p99Micros, long errors);
  }

  /** How a run is measured. */
  public record Settings(
      Duration warmup,
      Duration duration,
      Duration interval,
      int blockBytes,
      long phaseSplitBytes,
      long maxErrors,
      NodeWatcher watcher,
      ProgressListener progress) {
    public Settings {
      if (duration.isNegative() || duration.isZero()) {
        throw new IllegalArgumentException("duration must be positive");
      }
      if (interval.isNegative() || interval.isZero()) {
        throw new IllegalArgumentException("interval must be positive");
      }
    }

    public static Settings of(Duration warmup, Duration duration, int blockBytes) {
      return new Settings(warmup, duration, Duration.ofSeconds(1), blockBytes, 0, 1000, null, null);
    }

    public Settings withPhaseSplit(long bytes) {
      return new Settings(
          warmup, duration, interval, blockBytes, bytes, maxErrors, watcher, progress);
    }

    public Settings withWatcher(NodeWatcher w) {
      return new Settings(
          warmup, duration, interval, blockBytes, phaseSplitBytes, maxErrors, w, progress);
    }

    public Settings withProgress(ProgressListener p) {
      return new Settings(
          warmup, duration, interval, blockBytes, phaseSplitBytes, maxErrors, watcher, p);
    }

    public Settings withInterval(Duration i) {
      return new Settings(
          warmup, duration, i, blockBytes, phaseSplitBytes, maxErrors, watcher, progress);
    }
  }

  /** What a run measured. */
  public record Outcome(
      Histogram latencyNanos,
      long ops,
      long errors,
      double seconds,
      List<TimelinePoint> timeline,
      List<Phase> phases,
      long cacheBytes,
      String firstError) {}

  /** What a {@link #runPaired} run measured: the operation's outcome and the reference's. */
  public record Paired(Outcome run, Outcome reference) {}

  /** The phase names of a run with a phase split. */
  public static final String PHASE_BURST = "burst";

  public static final String PHASE_DESTAGE_BOUND = "destage-bound";

  private final Settings settings;
  private final Counts counts = new Counts();
  private final AtomicLong started = new AtomicLong();
  // The reference of a paired run; null otherwise.
  private Counts reference;
  private Outcome referenceOutcome;
  private volatile boolean stop;

  /** What one kind of operation did: latencies, successes, failures, time spent in calls. */
  private static final class Counts {
    final Recorder recorder = new Recorder(3);
    final AtomicLong completed = new AtomicLong();
    final AtomicLong errors = new AtomicLong();
    final AtomicLong busyNanos = new AtomicLong();
    final AtomicReference<String> firstError = new AtomicReference<>();
  }

  public LoadDriver(Settings settings) {
    this.settings = settings;
  }

  /**
   * One thread runs {@code op} and {@code reference} back to back, switching between them every
   * {@code slice}. Each outcome's rate is over the time its own calls took.
   */
  public Paired runPaired(SyncOp op, SyncOp reference, Duration slice) throws InterruptedException {
    long sliceNanos = slice.toNanos();
    if (sliceNanos <= 0) {
      throw new IllegalArgumentException("slice must be positive");
    }
    Counts ref = new Counts();
    this.reference = ref;
    CountDownLatch finished = new CountDownLatch(1);
    new NamedThreadFactory("peerflash-bench-load", true)
        .newThread(
            () -> {
              long refStarted = 0;
              long t0 = System.nanoTime();
              try {
                while (!stop) {
                  boolean onRef = ((System.nanoTime() - t0) / sliceNanos) % 2 == 1;
                  Counts c = onRef ? ref : counts;
                  long i = onRef ? refStarted++ : started.getAndIncrement();
                  long begin = System.nanoTime();
                  try {
                    (onRef ? reference : op).run(i);
                    long nanos = System.nanoTime() - begin;
                    c.recorder.recordValue(nanos);
                    c.busyNanos.addAndGet(nanos);
                    c.completed.incrementAndGet();
                  } catch (Exception | Error e) {
                    failed(c, e);
                  }
                }
              } finally {
                finished.countDown();
              }
            })
        .start();
    Outcome run = measure(finished);
    return new Paired(run, referenceOutcome);
  }

  /** {@code threads} threads each run {@code op} back to back. */
  public Outcome runThreads(SyncOp op, int threads) throws InterruptedException {
    if (threads < 1) {
      throw new IllegalArgumentException("threads must be at least 1");
    }
    CountDownLatch finished = new CountDownLatch(threads);
    NamedThreadFactory factory = new NamedThreadFactory("peerflash-bench-load", true);
    for (int t = 0; t < threads; t++) {
      factory
          .newThread(
              () -> {
                try {
                  while (!stop) {
                    long i = started.getAndIncrement();
                    long t0 = System.nanoTime();
                    try {
                      op.run(i);
                      counts.recorder.recordValue(System.nanoTime() - t0);
                      counts.completed.incrementAndGet();
                    } catch (Exception | Error e) {
                      failed(counts, e);
                    }
                  }
                } finally {
                  finished.countDown();
                }
              })
          .start();
    }
    return measure(finished);
  }

  /** Keeps {@code qd} asynchronous operations outstanding. */
  public Outcome runPipelined(AsyncOp op, int qd) throws InterruptedException {
    if (qd < 1) {
      throw new IllegalArgumentException("queue depth must be at least 1");
    }
    CountDownLatch finished = new CountDownLatch(1);
    AtomicInteger inFlight = new AtomicInteger(qd);
    Pipeline pipeline = new Pipeline(op, inFlight, finished);
    for (int k = 0; k < qd; k++) {
      pipeline.schedule(() -> pipeline.launch(started.getAndIncrement()));
    }
    return measure(finished);
  }

  private final class Pipeline {
    private final AsyncOp op;
    private final AtomicInteger inFlight;
    private final CountDownLatch finished;
    // Completions that arrive on the thread that is starting an operation (a synchronous failure,
    // an in-process transport) queue here instead of recursing.
    private final ThreadLocal<ArrayDeque<Runnable>> trampoline = new ThreadLocal<>();

    Pipeline(AsyncOp op, AtomicInteger inFlight, CountDownLatch finished) {
      this.op = op;
      this.inFlight = inFlight;
      this.finished = finished;
    }

    void schedule(Runnable r) {
      ArrayDeque<Runnable> q = trampoline.get();
      if (q != null) {
        q.add(r);
        return;
      }
      q = new ArrayDeque<>();
      trampoline.set(q);
      try {
        for (Runnable next = r; next != null; next = q.poll()) {
          next.run();
        }
      } finally {
        trampoline.remove();
      }
    }

    void launch(long i) {
      long t0 = System.nanoTime();
      AtomicInteger once = new AtomicInteger();
      Consumer<Throwable> done =
          e -> {
            if (once.getAndIncrement() == 0) {
              long nanos = System.nanoTime() - t0;
              schedule(() -> complete(nanos, e));
            }
          };
      try {
        op.start(i, done);
      } catch (RuntimeException | Error e) {
        done.accept(e);
      }
    }

    void complete(long nanos, Throwable e) {
      if (e == null) {
        counts.recorder.recordValue(nanos);
        counts.completed.incrementAndGet();
      } else {
        failed(counts, e);
      }
      if (!stop) {
        launch(started.getAndIncrement());
      } else if (inFlight.decrementAndGet() == 0) {
        finished.countDown();
      }
    }
  }

  private void failed(Counts c, Throwable e) {
    c.firstError.compareAndSet(null, e.toString());
    if (c.errors.incrementAndGet() >= settings.maxErrors()) {
      stop = true;
    }
  }

  /** Samples every interval until the end, then stops the load and waits for it to drain. */
  private Outcome measure(CountDownLatch finished) throws InterruptedException {
    long startNanos = System.nanoTime();
    long warmupEnd = startNanos + settings.warmup().toNanos();
    long end = warmupEnd + settings.duration().toNanos();
    long intervalNanos = settings.interval().toNanos();
    Histogram total = new Histogram(3);
    Histogram burst = new Histogram(3);
    Histogram destageBound = new Histogram(3);
    double burstSeconds = 0;
    double boundSeconds = 0;
    Histogram interval = null;
    Histogram referenceTotal = new Histogram(3);
    Histogram referenceInterval = null;
    long busyAtWarmupEnd = 0;
    long referenceBusyAtWarmupEnd = 0;
    long referenceErrorsAtWarmupEnd = 0;
    long busyBefore = 0;
    long referenceBusyBefore = 0;
    List<TimelinePoint> timeline = new ArrayList<>();
    NodeSample previous = sample();
    long cacheBytes = previous == null ? 0 : previous.cacheBytes();
    long last = startNanos;
    long measuredFrom = -1;
    long errorsAtWarmupEnd = 0;
    boolean warm = settings.warmup().isZero();
    if (warm) {
      measuredFrom = startNanos;
    }
    long lastEnd = startNanos;
    while (true) {
      long now = System.nanoTime();
      long next = Math.min(last + intervalNanos, warm ? end : warmupEnd);
      boolean drained = false;
      if (next > now) {
        drained = finished.await(next - now, TimeUnit.NANOSECONDS);
      }
      now = System.nanoTime();
      boolean over = now >= end || stop || drained;
      if (over) {
        stop = true;
        // Outstanding operations finish (bounded): they are part of the measured run.
        finished.await(60, TimeUnit.SECONDS);
        now = System.nanoTime();
      }
      interval = counts.recorder.getIntervalHistogram(interval);
      if (reference != null) {
        referenceInterval = reference.recorder.getIntervalHistogram(referenceInterval);
      }
      NodeSample s = sample();
      if (!warm) {
        if (now >= warmupEnd || over) {
          // The warm-up's latencies are dropped.
          warm = true;
          measuredFrom = now;
          errorsAtWarmupEnd = counts.errors.get();
          if (reference != null) {
            busyAtWarmupEnd = busyBefore = counts.busyNanos.get();
            referenceBusyAtWarmupEnd = referenceBusyBefore = reference.busyNanos.get();
            referenceErrorsAtWarmupEnd = reference.errors.get();
          }
          previous = s != null ? s : previous;
          last = now;
          if (over) {
            break;
          }
          continue;
        }
        progress(now, startNanos, end, true, interval, now - last);
        previous = s != null ? s : previous;
        last = now;
        continue;
      }
      double dt = (now - last) / 1e9;
      total.add(interval);
      // The time the operation had: all of the interval, or its share beside the reference.
      double opSeconds = dt;
      if (reference != null) {
        referenceTotal.add(referenceInterval);
        long busy = counts.busyNanos.get();
        long referenceBusy = reference.busyNanos.get();
        opSeconds = dt * share(busy - busyBefore, referenceBusy - referenceBusyBefore);
        busyBefore = busy;
        referenceBusyBefore = referenceBusy;
      }
      // Bytes written since the start, warm-up included: that is what fills the cache.
      long written = counts.completed.get() * settings.blockBytes();
      boolean split = settings.phaseSplitBytes() > 0;
      if (split
          && written - interval.getTotalCount() * settings.blockBytes()
              >= settings.phaseSplitBytes()) {
        destageBound.add(interval);
        boundSeconds += dt;
      } else if (split) {
        burst.add(interval);
        burstSeconds += dt;
      }
      double dirty = Double.NaN;
      double destage = Double.NaN;
      if (s != null) {
        cacheBytes = s.cacheBytes();
        dirty = s.cacheBytes() > 0 ? (double) s.dirtyBytes() / s.cacheBytes() : Double.NaN;
        if (previous != null && dt > 0) {
          destage = (s.destagedBytes() - previous.destagedBytes()) / dt / (1024.0 * 1024.0);
        }
        previous = s;
      }
      if (interval.getTotalCount() > 0 || dt > 0) {
        timeline.add(
            new TimelinePoint(
                (now - measuredFrom) / 1e9,
                opSeconds > 0 ? interval.getTotalCount() / opSeconds : 0,
                interval.getTotalCount() > 0 ? interval.getValueAtPercentile(50) / 1e3 : 0,
                interval.getTotalCount() > 0 ? interval.getValueAtPercentile(99) / 1e3 : 0,
                interval.getMaxValue() / 1e3,
                dirty,
                destage));
      }
      progress(now, startNanos, end, false, interval, now - last);
      last = now;
      lastEnd = now;
      if (over) {
        break;
      }
    }
    double wallSeconds = Math.max(1e-9, (lastEnd - measuredFrom) / 1e9);
    double seconds = wallSeconds;
    if (reference != null) {
      long busy = counts.busyNanos.get() - busyAtWarmupEnd;
      long referenceBusy = reference.busyNanos.get() - referenceBusyAtWarmupEnd;
      seconds = Math.max(1e-9, wallSeconds * share(busy, referenceBusy));
      referenceOutcome =
          new Outcome(
              referenceTotal,
              referenceTotal.getTotalCount(),
              reference.errors.get() - referenceErrorsAtWarmupEnd,
              Math.max(1e-9, wallSeconds * share(referenceBusy, busy)),
              List.of(),
              List.of(),
              0,
              reference.firstError.get());
    }
    List<Phase> phases = new ArrayList<>();
    if (settings.phaseSplitBytes() > 0) {
      phases.add(
          new Phase(PHASE_BURST, burst.getTotalCount(), burstSeconds, Latency.ofNanos(burst)));
      phases.add(
          new Phase(
              PHASE_DESTAGE_BOUND,
              destageBound.getTotalCount(),
              boundSeconds,
              Latency.ofNanos(destageBound)));
    }
    return new Outcome(
        total,
        total.getTotalCount(),
        counts.errors.get() - errorsAtWarmupEnd,
        seconds,
        timeline,
        phases,
        cacheBytes,
        counts.firstError.get());
  }

  /** The part of the time {@code mine} took of {@code mine + other} (all of it when both are 0). */
  private static double share(long mine, long other) {
    return mine + other <= 0 ? 1 : (double) mine / (mine + other);
  }

  private NodeSample sample() {
    if (settings.watcher() == null) {
      return null;
    }
    try {
      return settings.watcher().sample();
    } catch (RuntimeException e) {
      return null;
    }
  }

  private void progress(
      long now, long startNanos, long end, boolean warmingUp, Histogram interval, long dtNanos) {
    if (settings.progress() == null) {
      return;
    }
    double fraction = Math.min(1, (now - startNanos) / (double) Math.max(1, end - startNanos));
    double iops = dtNanos > 0 ? interval.getTotalCount() * 1e9 / dtNanos : 0;
    double p99 = interval.getTotalCount() > 0 ? interval.getValueAtPercentile(99) / 1e3 : 0;
    settings.progress().interval(fraction, warmingUp, iops, p99, counts.errors.get());
  }
}
