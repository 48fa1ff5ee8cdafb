package io.peerflash.node.engine;

import java.util.concurrent.ConcurrentHashMap;

/**
 * How one volume's destage fares: its failures in a row, the backoff of the volume and of single
 * blocks that failed on their own, and since when shared storage has been failing. Written by the
 * destager thread, except {@link #retryNow} (a Flush, on its caller's thread: the volatile retry
 * time and the concurrent map make that safe); read by status, the dirty-share rule and Flush.
 *
 * <p>A failed batch of several blocks isolates the next ones (one block per batch) so that one bad
 * block gets its own backoff and never holds back the rest; the volume is failing until every block
 * that failed has been destaged.
 */
final class DestageHealth {
  /**
   * Exponential backoff after failures in a row: {@code initialMs}, doubling, at most {@code
   * maxMs}.
   */
  record Backoff(long initialMs, long maxMs) {
    long afterFailures(int failures) {
      return Math.min(initialMs << Math.min(failures - 1, 20), maxMs);
    }
  }

  private volatile long failingSinceMs;
  private volatile long lastErrorMs;
  private volatile String lastError = "";
  private volatile long retryAtMs;
  private int failuresInARow;
  private int isolatedBatchesLeft;
  private final ConcurrentHashMap<Long, Long> blockRetryAtMs = new ConcurrentHashMap<>();
  private final ConcurrentHashMap<Long, Integer> blockFailures = new ConcurrentHashMap<>();

  /** Whether a failure is outstanding and has lasted at least {@code failingAfterMs}. */
  boolean failing(long nowMs, long failingAfterMs) {
    long since = failingSinceMs;
    return since != 0 && nowMs - since >= failingAfterMs;
  }

  /** Whether any failure is outstanding (no success since). */
  boolean failing() {
    return failingSinceMs != 0;
  }

  /** When the outstanding failure began, or 0. */
  long failingSinceMs() {
    return failingSinceMs;
  }

  /** When the last failure happened, or 0. */
  long lastErrorMs() {
    return lastErrorMs;
  }

  String lastError() {
    return lastError;
  }

  /** Whether the volume waits out a backoff at {@code nowMs}; its end is {@link #retryAtMs()}. */
  boolean backingOff(long nowMs) {
    return retryAtMs > nowMs;
  }

  long retryAtMs() {
    return retryAtMs;
  }

  /** Whether this one block waits out a backoff of its own. */
  boolean blockBackingOff(long block, long nowMs) {
    return !blockRetryAtMs.isEmpty() && blockRetryAtMs.getOrDefault(block, 0L) > nowMs;
  }

  /** Blocks per batch now: one while a failed batch's blocks are tried alone. */
  int batchLimit(int batchBlocks) {
    return isolatedBatchesLeft > 0 ? 1 : batchBlocks;
  }

  /** A Flush is a reason to try failing storage again now rather than after the backoff. */
  void retryNow() {
    retryAtMs = 0;
    blockRetryAtMs.clear();
  }

  /** Nothing of the volume could be destaged now: look at other volumes first for a while. */
  void pause(long untilMs) {
    retryAtMs = untilMs;
  }

  /**
   * A failed destage attempt (shared storage, or local flash and the index): it counts toward
   * STORAGE_FAILING and a bounded Flush, and backs the volume off exponentially.
   */
  void failed(String error, long nowMs, Backoff backoff) {
    lastError = error;
    lastErrorMs = nowMs;
    if (failingSinceMs == 0) {
      failingSinceMs = nowMs;
    }
    failuresInARow++;
    retryAtMs = nowMs + backoff.afterFailures(failuresInARow);
  }

  /** A batch of {@code n > 1} blocks failed on shared storage: try the next {@code n} alone. */
  void isolateNext(int n) {
    isolatedBatchesLeft = n;
  }

  /**
   * A batch of one block failed on shared storage: the block backs off on its own, and the volume's
   * other blocks go on soon.
   *
   * @return the block's failures in a row
   */
  int blockFailed(long block, long nowMs, Backoff backoff) {
    int failures = blockFailures.merge(block, 1, Integer::sum);
    blockRetryAtMs.put(block, nowMs + backoff.afterFailures(failures));
    retryAtMs = nowMs + backoff.initialMs();
    return failures;
  }

  /** A batch reached shared storage; {@code blocks} (the first {@code n}) are clean now. */
  void succeeded(long[] blocks, boolean[] skipped, int n) {
    failuresInARow = 0;
    if (isolatedBatchesLeft > 0) {
      isolatedBatchesLeft--;
    }
    for (int i = 0; i < n; i++) {
      if (!skipped[i]) {
        blockFailures.remove(blocks[i]);
        blockRetryAtMs.remove(blocks[i]);
      }
    }
    if (blockFailures.isEmpty()) {
      failingSinceMs = 0;
    }
  }
}
