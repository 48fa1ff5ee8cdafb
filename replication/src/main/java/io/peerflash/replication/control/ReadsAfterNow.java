package io.peerflash.replication.control;

import java.util.concurrent.CompletableFuture;
import java.util.function.Supplier;

/**
 * Shares one read among concurrent callers without handing anyone a read that began before they
 * asked. {@link #next()} answers with the read waiting to start if there is one, starts a read if
 * none runs, and otherwise queues one read behind the running one (which may predate the caller's
 * question: a map change the caller knows was committed could be missing from it). So at most one
 * read runs and one waits, however many callers ask: a flood of lookups of names this node does not
 * know costs the Raft leader one read at a time.
 */
final class ReadsAfterNow<T> {
  private final Supplier<CompletableFuture<T>> read;
  private boolean running;
  private CompletableFuture<T> waiting;

  ReadsAfterNow(Supplier<CompletableFuture<T>> read) {
    this.read = read;
  }

  /** A read that starts at or after this call, shared with the other callers it can serve. */
  CompletableFuture<T> next() {
    CompletableFuture<T> started = new CompletableFuture<>();
    synchronized (this) {
      if (waiting != null) {
        return waiting;
      }
      if (running) {
        waiting = started;
        return started;
      }
      running = true;
    }
    start(started);
    return started;
  }

  private void start(CompletableFuture<T> into) {
    CompletableFuture<T> f;
    try {
      f = read.get();
    } catch (RuntimeException | Error e) { // the reader must not stay "running" for good
      f = CompletableFuture.failedFuture(e);
    }
    f.whenComplete(
        (value, failure) -> {
          CompletableFuture<T> queued;
          synchronized (this) {
            queued = waiting;
            waiting = null;
            running = queued != null;
          }
          if (failure != null) {
            into.completeExceptionally(failure);
          } else {
            into.complete(value);
          }
          if (queued != null) {
            start(queued);
          }
        });
  }
}
