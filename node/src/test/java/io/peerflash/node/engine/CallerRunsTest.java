package io.peerflash.node.engine;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/** The executor a blocking write waits on: its tasks run on the waiting thread, in order. */
class CallerRunsTest {
  @Test
  void tasksHandedFromOtherThreadsRunOnTheWaiterUntilTheFutureCompletes() throws Exception {
    CompletableFuture<String> done = new CompletableFuture<>();
    CallerRuns caller = new CallerRuns(done);
    AtomicReference<Thread> ranOn = new AtomicReference<>();
    Thread other =
        new Thread(
            () ->
                caller.execute(
                    () -> {
                      ranOn.set(Thread.currentThread());
                      done.complete("acked");
                    }));
    other.start();
    caller.runUntilDone();
    other.join();
    assertThat(ranOn.get()).as("ran on the waiting thread").isSameAs(Thread.currentThread());
    assertThat(done.join()).isEqualTo("acked");
  }

  @Test
  void aFutureCompletedElsewhereEndsTheWaitAndAnInterruptIsKept() throws Exception {
    CompletableFuture<Void> done = new CompletableFuture<>();
    CallerRuns caller = new CallerRuns(done);
    Thread.currentThread().interrupt();
    Thread other = new Thread(() -> done.complete(null));
    other.start();
    caller.runUntilDone();
    assertThat(Thread.interrupted()).as("the interrupt is kept for the caller").isTrue();
    other.join();
  }
}
