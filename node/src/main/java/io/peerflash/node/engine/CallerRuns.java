package io.peerflash.node.engine;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.LinkedBlockingQueue;

/**
 * An executor whose tasks the thread waiting for {@code done} runs ({@link #runUntilDone}): a
 * blocking write waits on the same path as a non-blocking one, and the destage before its ack runs
 * on the write's own thread, as if it had called it directly.
 */
final class CallerRuns implements Executor {
  private static final Runnable WAKE = () -> {};
  private final LinkedBlockingQueue<Runnable> tasks = new LinkedBlockingQueue<>();
  private final CompletableFuture<?> done;

  CallerRuns(CompletableFuture<?> done) {
    this.done = done;
    done.whenComplete((r, e) -> tasks.add(WAKE));
  }

  @Override
  public void execute(Runnable task) {
    tasks.add(task);
  }

  /**
   * Runs handed tasks until {@code done} completes. The wait itself is not interrupted (the
   * caller's write is stored, and the wait for its copies is bounded by the backstop); the
   * interrupt is kept for the caller, and a task that honours it (a destage before the ack) fails
   * the write as it would on the caller's own thread.
   */
  void runUntilDone() {
    boolean interrupted = false;
    while (!done.isDone()) {
      try {
        tasks.take().run();
      } catch (InterruptedException e) {
        interrupted = true;
      }
    }
    if (interrupted) {
      Thread.currentThread().interrupt();
    }
  }
}
