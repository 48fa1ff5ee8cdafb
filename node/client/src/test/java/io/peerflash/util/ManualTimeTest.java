package io.peerflash.util;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** The test clock's timer: the schedule every time-based test of the project rests on. */
class ManualTimeTest {
  @Test
  void aStoppedClockRunsEachTaskAtItsDueTimeInOrderOnTheThreadThatMovesIt() {
    ManualTime time = new ManualTime();
    long start = time.nanoTime();
    List<Long> ranAtMs = new ArrayList<>();
    List<Thread> ranOn = new ArrayList<>();
    Runnable[] every10Ms = new Runnable[1];
    every10Ms[0] =
        () -> {
          ranAtMs.add(TimeUnit.NANOSECONDS.toMillis(time.nanoTime() - start));
          ranOn.add(Thread.currentThread());
          time.schedule(10, every10Ms[0]);
        };
    time.schedule(10, every10Ms[0]);
    Time.Timer cancelled = time.schedule(25, () -> ranAtMs.add(-1L));
    cancelled.cancel();

    time.advanceMs(9);
    assertThat(ranAtMs).as("nothing due yet").isEmpty();
    time.advanceMs(41);
    assertThat(ranAtMs).as("each run at its own due time").containsExactly(10L, 20L, 30L, 40L, 50L);
    assertThat(ranOn).containsOnly(Thread.currentThread());
    assertThat(TimeUnit.NANOSECONDS.toMillis(time.nanoTime() - start)).isEqualTo(50);
    assertThat(time.pendingTimers()).as("the next run, at 60 ms").isEqualTo(1);
  }

  @Test
  void aTaskThatThrowsDoesNotStopTheOthersAndItsFailureReachesTheMover() {
    ManualTime time = new ManualTime();
    List<String> ran = new ArrayList<>();
    time.schedule(1, () -> ran.add("first"));
    time.schedule(
        2,
        () -> {
          throw new IllegalStateException("broken task");
        });
    time.schedule(3, () -> ran.add("third"));
    assertThatThrownBy(() -> time.advanceMs(5)).hasMessageContaining("broken task");
    assertThat(ran).containsExactly("first", "third");
    assertThat(time.pendingTimers()).isZero();
  }

  @Test
  void aRunningClockRunsDueTasksOnItsTimerThreadAndNoneOnceFrozen() throws Exception {
    ManualTime time = ManualTime.followingSystem();
    CountDownLatch ran = new CountDownLatch(1);
    List<Thread> ranOn = new CopyOnWriteArrayList<>();
    time.schedule(
        5,
        () -> {
          ranOn.add(Thread.currentThread());
          ran.countDown();
        });
    assertThat(ran.await(10, TimeUnit.SECONDS)).isTrue();
    assertThat(ranOn.get(0).getName()).isEqualTo("manual-time-timer");

    time.freeze();
    List<String> afterFreeze = new CopyOnWriteArrayList<>();
    time.schedule(1, () -> afterFreeze.add(Thread.currentThread().getName()));
    // Stopped: the due time never comes unless the test moves the clock, whatever real time does.
    time.advanceMs(1);
    assertThat(afterFreeze).containsExactly(Thread.currentThread().getName());
  }
}
