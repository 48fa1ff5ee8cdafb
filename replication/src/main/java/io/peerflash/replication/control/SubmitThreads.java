package io.peerflash.replication.control;

import io.peerflash.util.NamedThreadFactory;
import java.io.IOException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

/**
 * The threads that make a control plane's blocking Raft calls (commands and linearizable reads), so
 * that no caller's thread waits on the leader. A call still queued when they close fails with an
 * IOException instead of leaving its future open.
 */
final class SubmitThreads {
  /** A blocking call to Raft. */
  @FunctionalInterface
  interface IoCall<T> {
    T call() throws IOException;
  }

  private static final class Task<T> implements Runnable {
    final CompletableFuture<T> future = new CompletableFuture<>();
    final IoCall<T> call;

    Task(IoCall<T> call) {
      this.call = call;
    }

    @Override
    public void run() {
      try {
        future.complete(call.call());
      } catch (Throwable t) {
        future.completeExceptionally(t);
      }
    }
  }

  private final ThreadPoolExecutor executor;

  SubmitThreads(String prefix, int threads) {
    this.executor =
        new ThreadPoolExecutor(
            threads,
            threads,
            0,
            TimeUnit.MILLISECONDS,
            new LinkedBlockingQueue<>(),
            new NamedThreadFactory(prefix + "-submit", true));
  }

  /** Runs {@code call} on one of these threads; the future has its result or its exception. */
  <T> CompletableFuture<T> run(IoCall<T> call) {
    Task<T> task = new Task<>(call);
    try {
      executor.execute(task);
    } catch (RejectedExecutionException e) {
      task.future.completeExceptionally(new IOException("control plane is closed", e));
    }
    return task.future;
  }

  /** Interrupts running calls and fails the queued ones. */
  void shutdownNow() {
    for (Runnable r : executor.shutdownNow()) {
      if (r instanceof Task<?> t) {
        t.future.completeExceptionally(new IOException("control plane closed"));
      }
    }
  }

  boolean awaitTermination(long timeout, TimeUnit unit) throws InterruptedException {
    return executor.awaitTermination(timeout, unit);
  }
}
