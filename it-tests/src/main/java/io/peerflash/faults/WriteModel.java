package io.peerflash.faults;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * What a volume may hold, from the writes made to it: every write attempted (its sequence and
 * blocks) and, per block, the last acknowledged write. Writes to one block must come from one
 * thread, one at a time, so they are ordered by their sequence numbers (the workload gives each
 * writer its own blocks).
 *
 * <p>A block read back is then judged against the last write acknowledged before the read began:
 * that write or any later attempted one is correct (a write whose acknowledgement was lost may or
 * may not have been applied); an older write, or zeros, means an acknowledged write is missing
 * ({@link Verdict#STALE}); anything else was never written ({@link Verdict#NEVER_WRITTEN}).
 */
public final class WriteModel {
  /** A write's blocks: {@code count} blocks from {@code first}. */
  record Attempt(long first, int count) {
    boolean covers(long block) {
      return block >= first && block < first + count;
    }
  }

  /** How a block read back compares with the model. */
  public enum Verdict {
    OK,
    STALE,
    NEVER_WRITTEN
  }

  private final BlockCodec codec;
  private final AtomicLongArray lastAcked;
  private final Map<Long, Attempt> attempts = new ConcurrentHashMap<>();
  private final AtomicLong sequence = new AtomicLong();

  public WriteModel(BlockCodec codec, long blocks) {
    this.codec = codec;
    this.lastAcked = new AtomicLongArray(Math.toIntExact(blocks));
  }

  public BlockCodec codec() {
    return codec;
  }

  public long blocks() {
    return lastAcked.length();
  }

  /** Records a write about to be sent and returns its sequence number (from 1). */
  public long attempt(long first, int count) {
    long seq = sequence.incrementAndGet();
    attempts.put(seq, new Attempt(first, count));
    return seq;
  }

  /** Records that write {@code seq} was acknowledged. */
  public void acknowledged(long seq) {
    Attempt a = attempts.get(seq);
    for (int i = 0; i < a.count(); i++) {
      lastAcked.set(Math.toIntExact(a.first() + i), seq);
    }
  }

  /** The sequence of the last acknowledged write of {@code block}, 0 if none. */
  public long lastAcked(long block) {
    return lastAcked.get(Math.toIntExact(block));
  }

  /** Judges the 4 KiB at {@code at}, read from {@code block}. */
  public Verdict judge(long block, long ackedBefore, byte[] data, int at) {
    BlockCodec.Content c = codec.decode(block, data, at);
    if (c instanceof BlockCodec.Zero) {
      return ackedBefore == 0 ? Verdict.OK : Verdict.STALE;
    }
    if (c instanceof BlockCodec.Written w) {
      Attempt a = attempts.get(w.seq());
      if (a == null || !a.covers(block)) {
        return Verdict.NEVER_WRITTEN;
      }
      return w.seq() >= ackedBefore ? Verdict.OK : Verdict.STALE;
    }
    return Verdict.NEVER_WRITTEN;
  }
}
