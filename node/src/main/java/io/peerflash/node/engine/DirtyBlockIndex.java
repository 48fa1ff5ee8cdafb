package io.peerflash.node.engine;

import java.util.Map;
import java.util.concurrent.ConcurrentSkipListMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.LongPredicate;

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
   * Fills {@code seqs}/{@code blocks} with up to their length of the oldest dirty blocks, skipping
   * blocks the predicate rejects.
   *
   * @return how many were taken
   */
  int oldest(long[] seqs, long[] blocks, LongPredicate skipBlock) {
    int n = 0;
    for (Map.Entry<Long, Long> e : blockBySeq.entrySet()) {
      if (n == seqs.length) {
        break;
      }
      if (skipBlock.test(e.getValue())) {
        continue;
      }
      seqs[n] = e.getKey();
      blocks[n] = e.getValue();
      n++;
    }
    return n;
  }
}
