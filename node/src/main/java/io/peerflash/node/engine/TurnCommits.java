package io.peerflash.node.engine;

import io.peerflash.node.index.KeyValueStorage.Batch;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The index entries of the writes an event loop stores in one turn, committed as one batch by a
 * task queued on that loop behind them. A network thread that reads 32 NBD requests, or runs the
 * stores of the writes it received, otherwise makes 32 index writes, each with its own write-ahead
 * log append and the index's fixed cost per write (about 3 us here against 1 us per entry in a
 * batch of 32). The writes wait for the batch before they are visible and acknowledged, which costs
 * a lone write one task on its own loop and nothing else.
 *
 * <p>A turn is the calling thread's ({@link #add} is called on the loop's thread): entries added
 * before its commit task runs join it; the task seals it, so an entry added later (by any thread)
 * opens the next turn. Without --sync only: a synced commit already groups concurrent writers
 * ({@link GroupCommitter}).
 */
final class TurnCommits {
  private static final Logger log = LoggerFactory.getLogger(TurnCommits.class);

  /** Told once the turn's batch is committed, with null or why it failed. */
  @FunctionalInterface
  interface Committed {
    void then(CacheException failure);
  }

  private static final class Turn {
    final Batch batch = new Batch();
    final List<Committed> waiting = new ArrayList<>();
    boolean sealed;
  }

  private final BlockStore store;
  private final ThreadLocal<Turn> open = new ThreadLocal<>();

  TurnCommits(BlockStore store) {
    this.store = store;
  }

  /**
   * Adds {@code entries} to the calling thread's turn on {@code loop} (opening one, and queueing
   * its commit on {@code loop}, if none is open); {@code then} runs after the commit, on the thread
   * that made it.
   */
  void add(Executor loop, Batch entries, Committed then) {
    Turn t = open.get();
    if (t != null) {
      synchronized (t) {
        if (!t.sealed) {
          t.batch.append(entries);
          t.waiting.add(then);
          return;
        }
      }
    }
    Turn fresh = new Turn();
    fresh.batch.append(entries);
    fresh.waiting.add(then);
    open.set(fresh);
    try {
      loop.execute(() -> commit(fresh));
    } catch (RejectedExecutionException e) { // the loop is shutting down: commit here and now
      commit(fresh);
    }
  }

  private void commit(Turn t) {
    synchronized (t) {
      t.sealed = true;
    }
    if (open.get() == t) {
      open.remove();
    }
    CacheException failure = null;
    Error fatal = null;
    try {
      store.commit(t.batch);
    } catch (CacheException e) {
      failure = e;
    } catch (RuntimeException | Error e) {
      failure =
          new CacheException(
              CacheException.Reason.UNAVAILABLE, "local index commit failed: " + e, e);
      fatal = e instanceof Error error ? error : null;
    }
    // Every write of the turn hears how it went, whatever happens to one of them: a write left
    // waiting would hold its block locks and the volume's gate for good.
    for (Committed c : t.waiting) {
      try {
        c.then(failure);
      } catch (RuntimeException | Error e) {
        log.error("a write's completion after its index commit failed", e);
        if (e instanceof Error error && fatal == null) {
          fatal = error;
        }
      }
    }
    if (fatal != null) {
      throw fatal;
    }
  }
}
