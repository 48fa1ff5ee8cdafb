package io.peerflash.node.engine;

import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentSkipListMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.LongPredicate;
import java.util.function.LongUnaryOperator;

/**
 * A volume's dirty blocks in write-sequence order: the destager takes the oldest first, and Flush
 * waits until no dirty block older than its target remains. Updated under the block's write lock.
 */
final class DirtyBlockIndex {
  private final ConcurrentSkipListMap<Long, Long> blockBySeq = new ConcurrentSkipListMap<>();
  private final AtomicInteger count = new AtomicInteger();

  void add(long seq, long block) {
    if (blockBySeq.put(seq, block) == null) {
      count.incrementAndGet();
    }
  }

  void remove(long seq) {
    if (blockBySeq.remove(seq) != null) {
      count.decrementAndGet();
    }
  }

  int size() {
    return count.get();
  }

  /** The oldest dirty sequence number, or {@code Long.MAX_VALUE} when none. */
  long firstSeq() {
    Map.Entry<Long, Long> e = blockBySeq.firstEntry();
    return e == null ? Long.MAX_VALUE : e.getKey();
  }

  /**
   * The oldest dirty sequence whose block the predicate does not exclude, or {@code Long.MAX_VALUE}
   * when none is at most {@code limitSeq}.
   */
  long firstSeqExcluding(LongPredicate excludeBlock, long limitSeq) {
    for (Map.Entry<Long, Long> e : blockBySeq.headMap(limitSeq, true).entrySet()) {
      if (!excludeBlock.test(e.getValue())) {
        return e.getKey();
      }
    }
    return Long.MAX_VALUE;
  }

  /** Every dirty block now, as {sequences, blocks}: a moment's view for re-protection. */
  long[][] snapshot() {
    int n = Math.max(count.get(), 0);
    long[] seqs = new long[n];
    long[] blocks = new long[n];
    int i = 0;
    for (Map.Entry<Long, Long> e : blockBySeq.entrySet()) {
      if (i == n) {
        seqs = java.util.Arrays.copyOf(seqs, n * 2 + 1);
        blocks = java.util.Arrays.copyOf(blocks, n * 2 + 1);
        n = seqs.length;
      }
      seqs[i] = e.getKey();
      blocks[i++] = e.getValue();
    }
    return new long[][] {java.util.Arrays.copyOf(seqs, i), java.util.Arrays.copyOf(blocks, i)};
  }

  /** The oldest (sequence, block), or null. */
  Map.Entry<Long, Long> first() {
    return blockBySeq.firstEntry();
  }

  /**
   * Fills {@code seqs}/{@code blocks} with up to their length of dirty blocks: the oldest first,
   * each followed by the dirty blocks adjacent to it (those after it, then those before it), so
   * that a batch leaves as few long writes instead of many single blocks wherever the dirty data is
   * dense. The oldest block is always taken first, so the age bound and Flush's progress are those
   * of taking the oldest alone; which younger blocks go along only changes how much one batch
   * destages. A neighbour's sequence comes from {@code dirtySeqOf} (negative: not dirty), read
   * without its lock; the destager checks it again under the lock, as it does every block's.
   *
   * @return how many were taken
   */
  int oldestWithNeighbours(
      long[] seqs, long[] blocks, LongPredicate skipBlock, LongUnaryOperator dirtySeqOf) {
    int limit = seqs.length;
    Set<Long> taken = new HashSet<>();
    int n = 0;
    for (Map.Entry<Long, Long> e : blockBySeq.entrySet()) {
      if (n == limit) {
        break;
      }
      long seed = e.getValue();
      if (taken.contains(seed) || skipBlock.test(seed)) {
        continue;
      }
      seqs[n] = e.getKey();
      blocks[n++] = seed;
      taken.add(seed);
      for (int dir : new int[] {1, -1}) {
        for (long b = seed + dir; n < limit && b >= 0 && !taken.contains(b); b += dir) {
          long seq = dirtySeqOf.applyAsLong(b);
          if (seq < 0 || skipBlock.test(b)) {
            break;
          }
          seqs[n] = seq;
          blocks[n++] = b;
          taken.add(b);
        }
      }
    }
    return n;
  }
}
