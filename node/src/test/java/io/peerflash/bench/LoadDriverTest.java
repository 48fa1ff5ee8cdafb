package io.peerflash.bench;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class LoadDriverTest {
  private final ScheduledExecutorService completer = Executors.newSingleThreadScheduledExecutor();

  @AfterEach
  void stop() {
    completer.shutdownNow();
  }

  private static LoadDriver.Settings settings(long warmupMs, long durationMs) {
    return LoadDriver.Settings.of(Duration.ofMillis(warmupMs), Duration.ofMillis(durationMs), 4096)
        .withInterval(Duration.ofMillis(100));
  }

  @Test
  void threadsMeasureBlockingOperationsAfterTheWarmup() throws Exception {
    AtomicLong calls = new AtomicLong();
    LoadDriver.Outcome o =
        new LoadDriver(settings(200, 500))
            .runThreads(
                i -> {
                  calls.incrementAndGet();
                  LockSupport.parkNanos(1_000_000);
                },
                2);
    assertThat(o.errors()).isZero();
    assertThat(o.ops()).isPositive().isLessThan(calls.get()); // the warm-up is not counted
    assertThat(o.seconds()).isBetween(0.45, 1.5);
    assertThat(o.latencyNanos().getValueAtPercentile(50)).isGreaterThanOrEqualTo(1_000_000);
    assertThat(o.timeline()).isNotEmpty();
    assertThat(o.phases()).isEmpty();
  }

  @Test
  void pairedRunsAlternateSlicesAndRecordEachOperationApart() throws Exception {
    AtomicLong opCalls = new AtomicLong();
    AtomicLong refCalls = new AtomicLong();
    AtomicInteger switches = new AtomicInteger();
    AtomicInteger lastKind = new AtomicInteger(-1);
    LoadDriver.Paired p =
        new LoadDriver(settings(100, 1000))
            .runPaired(
                i -> {
                  opCalls.incrementAndGet();
                  if (lastKind.getAndSet(0) == 1) {
                    switches.incrementAndGet();
                  }
                  LockSupport.parkNanos(2_000_000);
                },
                i -> {
                  refCalls.incrementAndGet();
                  if (lastKind.getAndSet(1) == 0) {
                    switches.incrementAndGet();
                  }
                  LockSupport.parkNanos(500_000);
                  if (i % 10 == 9) {
                    throw new IllegalStateException("reference failure " + i);
                  }
                },
                Duration.ofMillis(50));
    // About 22 slices of 50 ms: the two kinds alternated all along, not one after the other.
    assertThat(switches.get()).isGreaterThanOrEqualTo(10);
    LoadDriver.Outcome run = p.run();
    LoadDriver.Outcome ref = p.reference();
    assertThat(run.latencyNanos().getValueAtPercentile(50)).isGreaterThanOrEqualTo(2_000_000);
    assertThat(ref.latencyNanos().getValueAtPercentile(50)).isBetween(500_000L, 1_900_000L);
    // Failures are counted for the kind that failed; the run saw none.
    assertThat(run.errors()).isZero();
    assertThat(ref.errors()).isPositive();
    assertThat(ref.firstError()).contains("reference failure");
    // Each kind's rate is over its own share of the time: the two shares add up to the run.
    assertThat(run.seconds() + ref.seconds()).isBetween(0.9, 1.6);
    assertThat(run.seconds()).isBetween(0.3, 0.8);
    double refIops = (ref.ops() + ref.errors()) / ref.seconds();
    assertThat(run.ops() / run.seconds()).isLessThan(refIops);
    assertThat(run.timeline()).isNotEmpty();
  }

  @Test
  void pipelineKeepsTheQueueDepthAndRecordsEachCompletion() throws Exception {
    AtomicInteger outstanding = new AtomicInteger();
    AtomicInteger most = new AtomicInteger();
    ConcurrentHashMap<Long, Boolean> seen = new ConcurrentHashMap<>();
    LoadDriver.Outcome o =
        new LoadDriver(settings(0, 400))
            .runPipelined(
                (i, done) -> {
                  assertThat(seen.putIfAbsent(i, true)).isNull();
                  most.accumulateAndGet(outstanding.incrementAndGet(), Math::max);
                  completer.schedule(
                      () -> {
                        outstanding.decrementAndGet();
                        done.accept(null);
                      },
                      2,
                      TimeUnit.MILLISECONDS);
                },
                8);
    assertThat(most.get()).isEqualTo(8);
    assertThat(outstanding.get()).isZero(); // drained before returning
    assertThat(o.ops()).isPositive();
    // The histogram keeps 3 significant digits: a 2 ms completion may be stored as the lowest
    // value of its bucket (1 999 872 ns), which is still "at least 2 ms" at that precision.
    assertThat(o.latencyNanos().getMinValue())
        .isGreaterThanOrEqualTo(o.latencyNanos().lowestEquivalentValue(2_000_000));
  }

  @Test
  void synchronousCompletionsAndFailuresDoNotRecurse() throws Exception {
    // Completing inside start() would recurse without the trampoline; 400 ms of it would overflow.
    LoadDriver.Outcome o =
        new LoadDriver(settings(0, 300))
            .runPipelined(
                (i, done) -> {
                  if (i % 10 == 0) {
                    throw new IllegalStateException("boom " + i);
                  }
                  done.accept(i % 10 == 5 ? new RuntimeException("failed") : null);
                },
                4);
    assertThat(o.ops()).isGreaterThan(1000);
    assertThat(o.errors()).isPositive();
    assertThat(o.firstError()).isNotNull();
  }

  @Test
  void tooManyErrorsStopTheRunEarly() throws Exception {
    long start = System.nanoTime();
    LoadDriver.Outcome o =
        new LoadDriver(settings(0, 10_000))
            .runThreads(
                i -> {
                  throw new IllegalStateException("down");
                },
                1);
    assertThat(TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - start)).isLessThan(5);
    assertThat(o.errors()).isGreaterThanOrEqualTo(1000);
    assertThat(o.firstError()).contains("down");
  }

  @Test
  void phaseSplitSeparatesTheRunOnceTheBytesExceedIt() throws Exception {
    AtomicLong dirty = new AtomicLong();
    LoadDriver.Settings s =
        settings(0, 800)
            .withPhaseSplit(4096L * 200)
            .withWatcher(
                () -> new LoadDriver.NodeSample(1 << 20, dirty.addAndGet(1000), dirty.get() / 2));
    LoadDriver.Outcome o =
        new LoadDriver(s)
            .runThreads(
                i -> LockSupport.parkNanos(1_000_000), // about 1000 writes a second
                1);
    List<BenchResult.Phase> phases = o.phases();
    assertThat(phases)
        .extracting(BenchResult.Phase::name)
        .containsExactly("burst", "destage-bound");
    assertThat(phases.get(0).ops()).isPositive();
    assertThat(phases.get(1).ops()).isPositive();
    assertThat(phases.get(0).ops() + phases.get(1).ops()).isEqualTo(o.ops());
    assertThat(o.cacheBytes()).isEqualTo(1 << 20);
    assertThat(o.timeline()).allSatisfy(t -> assertThat(t.dirtyFraction()).isNotNaN());
  }
}
