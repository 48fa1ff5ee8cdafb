package io.peerflash.faults;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * The history of one volume (every write with its blocks, real-time start and end, and outcome;
 * what reads have observed) and the rules a read is judged by.
 *
 * <p><b>Writes.</b> A write covers {@code count} adjacent blocks and has an id (from 1, increasing)
 * that every one of its blocks carries ({@link BlockCodec}). The blocks of a volume are split among
 * writers, each with one write in flight, so the writes of a block are totally ordered in real time
 * and by id: a block holding a higher id holds a newer version. A write ends {@link
 * Outcome#ACKNOWLEDGED} or {@link Outcome#FAILED}; a failed write is <i>maybe applied</i> (it may
 * or may not ever appear) and is never resent with the same bytes: a retry is a new write with a
 * new id, so a failed write that was applied in part cannot hide behind an identical copy of
 * itself.
 *
 * <p><b>Rules.</b> PeerFlash commits the blocks of one request atomically: a read may see a write
 * in flight, but once any read has seen it, or it was acknowledged, every later read sees all of
 * it. A read is judged against the model as it was when the read <i>began</i> ({@link #startRead});
 * for each block {@code b} of the read, let {@code acked(b)} be the highest id of a write of {@code
 * b} acknowledged before the read began and {@code seen(b)} the highest id of a write covering
 * {@code b} that an earlier read (one that had ended before this one began) returned on any of its
 * blocks. The version returned for {@code b} is then, in this order of checks:
 *
 * <ol>
 *   <li>{@link Verdict#NEVER_WRITTEN}: not zeros and not a well-formed block of a write that covers
 *       {@code b} and was sent before the read ended (garbage, another block's or volume's data, a
 *       write from the future);
 *   <li>{@link Verdict#STALE}: older than {@code acked(b)} (zeros count as id 0): an acknowledged
 *       write is missing;
 *   <li>{@link Verdict#TIME_TRAVEL}: older than {@code seen(b)}: the read went back in time behind
 *       what an earlier read returned (for the block itself, or for another block of the same
 *       write);
 *   <li>{@link Verdict#TORN}: older than a write {@code W} that covers {@code b} and that this same
 *       read returned on another block: {@code W} is seen in part;
 *   <li>{@link Verdict#OK} otherwise: {@code acked(b)}, {@code seen(b)}, or any later write of
 *       {@code b}, acknowledged, in flight or failed.
 * </ol>
 *
 * A write is <b>torn</b> when some read returned it on one block and something older on another of
 * its blocks ({@link ReadCheck#tornWrites}). After the workload has stopped nothing is in flight,
 * so the final read of the whole volume proves every write whole or absent: an acknowledged one
 * whole (or overwritten by later writes), a maybe-applied one either nowhere or whole.
 *
 * <p>The judgement is conservative about time: a read's view is taken before it is sent, and a
 * write counts as acknowledged or seen only once the workload recorded it, after the call returned;
 * so a rule can only be applied late, never early.
 */
public final class WriteModel {
  /** How a write ended. */
  public enum Outcome {
    IN_FLIGHT,
    ACKNOWLEDGED,
    /** The call failed: maybe applied. */
    FAILED
  }

  /** How a block read back compares with the model. */
  public enum Verdict {
    OK,
    STALE,
    TIME_TRAVEL,
    TORN,
    NEVER_WRITTEN
  }

  /** One write: its blocks, who sent it, when, and how it ended. */
  public static final class Write {
    final long id;
    final int writer;
    final long first;
    final int count;
    final long startNanos;
    volatile long endNanos;
    volatile Outcome outcome = Outcome.IN_FLIGHT;

    /** End of the first read that returned it (Long.MIN_VALUE: none yet). */
    volatile long firstSeenNanos = Long.MIN_VALUE;

    Write(long id, int writer, long first, int count, long startNanos) {
      this.id = id;
      this.writer = writer;
      this.first = first;
      this.count = count;
      this.startNanos = startNanos;
    }

    public long id() {
      return id;
    }

    public long first() {
      return first;
    }

    public int count() {
      return count;
    }

    public Outcome outcome() {
      return outcome;
    }

    boolean covers(long block) {
      return block >= first && block < first + count;
    }
  }

  /** A read's view of the model when it began: per block, {@code acked(b)} and {@code seen(b)}. */
  public static final class ReadStart {
    final long first;
    final int count;
    final long startNanos;
    final long[] acked;
    final long[] seen;

    private ReadStart(long first, int count, long startNanos) {
      this.first = first;
      this.count = count;
      this.startNanos = startNanos;
      this.acked = new long[count];
      this.seen = new long[count];
    }
  }

  /** A block that broke a rule, described with the versions involved. */
  public record Finding(long block, Verdict verdict, String description) {}

  /** The outcome of judging one read. */
  public record ReadCheck(
      Verdict[] verdicts, List<Finding> findings, Set<Long> tornWrites, int distinctWrites) {
    public long count(Verdict v) {
      long n = 0;
      for (Verdict x : verdicts) {
        if (x == v) {
          n++;
        }
      }
      return n;
    }
  }

  private final BlockCodec codec;
  private final AtomicLongArray acked;
  private final AtomicLongArray seen;
  private final Map<Long, Write> writes = new ConcurrentHashMap<>();
  private final Set<Long> tornWrites = ConcurrentHashMap.newKeySet();
  private final AtomicLong ids = new AtomicLong();
  private final long originNanos;

  public WriteModel(BlockCodec codec, long blocks, long originNanos) {
    this.codec = codec;
    this.acked = new AtomicLongArray(Math.toIntExact(blocks));
    this.seen = new AtomicLongArray(Math.toIntExact(blocks));
    this.originNanos = originNanos;
  }

  public BlockCodec codec() {
    return codec;
  }

  public long blocks() {
    return acked.length();
  }

  /** Records a write about to be sent; its id is the one its blocks must carry. */
  public Write begin(long first, int count, int writer, long nowNanos) {
    if (first < 0 || count < 1 || first + count > blocks()) {
      throw new IllegalArgumentException("write of " + count + " blocks at " + first);
    }
    Write w = new Write(ids.incrementAndGet(), writer, first, count, nowNanos);
    writes.put(w.id, w);
    return w;
  }

  /** Records that {@code w} was acknowledged: from now on every read must see all of it. */
  public void acknowledged(Write w, long nowNanos) {
    w.endNanos = nowNanos;
    w.outcome = Outcome.ACKNOWLEDGED;
    for (int i = 0; i < w.count; i++) {
      acked.accumulateAndGet(Math.toIntExact(w.first + i), w.id, Math::max);
    }
  }

  /** Records that {@code w} failed: it is maybe applied. */
  public void failed(Write w, long nowNanos) {
    w.endNanos = nowNanos;
    w.outcome = Outcome.FAILED;
  }

  /** The id of the last acknowledged write of {@code block}, 0 if none. */
  public long lastAcked(long block) {
    return acked.get(Math.toIntExact(block));
  }

  /** Every write recorded so far. */
  public long writes() {
    return ids.get();
  }

  /** Failed (maybe applied) writes that some read returned: they were applied after all. */
  public long failedButSeen() {
    return writes.values().stream()
        .filter(w -> w.outcome == Outcome.FAILED && w.firstSeenNanos != Long.MIN_VALUE)
        .count();
  }

  /** Writes seen torn by any read so far. */
  public Set<Long> tornWrites() {
    return Set.copyOf(tornWrites);
  }

  /** Takes a read's view of the model; call it before the read is sent. */
  public ReadStart startRead(long first, int count, long nowNanos) {
    ReadStart r = new ReadStart(first, count, nowNanos);
    for (int i = 0; i < count; i++) {
      int b = Math.toIntExact(first + i);
      r.acked[i] = acked.get(b);
      r.seen[i] = seen.get(b);
    }
    return r;
  }

  /**
   * Judges what a read returned ({@code data}: its {@code count} blocks from offset 0), then
   * records the writes it saw whole so that later reads must not go behind them.
   */
  public ReadCheck check(ReadStart r, byte[] data, long endNanos) {
    Verdict[] verdicts = new Verdict[r.count];
    long[] version = new long[r.count];
    BlockCodec.Content[] got = new BlockCodec.Content[r.count];
    Map<Long, Write> returned = new LinkedHashMap<>();
    for (int i = 0; i < r.count; i++) {
      long block = r.first + i;
      got[i] = codec.decode(block, data, i * BlockCodec.BLOCK);
      Write w = null;
      if (got[i] instanceof BlockCodec.Zero) {
        version[i] = 0;
      } else if (got[i] instanceof BlockCodec.Written c) {
        w = writes.get(c.seq());
        if (w == null || !w.covers(block) || w.writer != c.writer() || w.startNanos > endNanos) {
          verdicts[i] = Verdict.NEVER_WRITTEN;
          continue;
        }
        version[i] = w.id;
        returned.put(w.id, w);
      } else {
        verdicts[i] = Verdict.NEVER_WRITTEN;
        continue;
      }
      if (version[i] < r.acked[i]) {
        verdicts[i] = Verdict.STALE;
      } else if (version[i] < r.seen[i]) {
        verdicts[i] = Verdict.TIME_TRAVEL;
      } else {
        verdicts[i] = Verdict.OK;
      }
    }
    // A write returned on one block must be there (or overwritten) on each of its other blocks.
    Set<Long> torn = new LinkedHashSet<>();
    Map<Integer, Write> tornBy = new LinkedHashMap<>();
    for (Write w : returned.values()) {
      long from = Math.max(w.first, r.first);
      long to = Math.min(w.first + w.count, r.first + r.count);
      for (long b = from; b < to; b++) {
        int i = (int) (b - r.first);
        if (verdicts[i] != Verdict.NEVER_WRITTEN && version[i] < w.id) {
          torn.add(w.id);
          if (verdicts[i] == Verdict.OK) {
            verdicts[i] = Verdict.TORN;
            tornBy.put(i, w);
          }
        }
      }
    }
    tornWrites.addAll(torn);
    List<Finding> findings = new ArrayList<>();
    for (int i = 0; i < r.count; i++) {
      if (verdicts[i] != Verdict.OK) {
        findings.add(
            new Finding(r.first + i, verdicts[i], describe(r, i, got[i], tornBy.get(i), endNanos)));
      }
    }
    // What this read returned is now the floor for every later read, on all the write's blocks.
    for (Write w : returned.values()) {
      if (torn.contains(w.id)) {
        continue;
      }
      if (w.firstSeenNanos == Long.MIN_VALUE) {
        w.firstSeenNanos = endNanos;
      }
      for (int i = 0; i < w.count; i++) {
        seen.accumulateAndGet(Math.toIntExact(w.first + i), w.id, Math::max);
      }
    }
    return new ReadCheck(
        verdicts, Collections.unmodifiableList(findings), Set.copyOf(torn), returned.size());
  }

  private String describe(ReadStart r, int i, BlockCodec.Content got, Write tornBy, long endNanos) {
    StringBuilder s = new StringBuilder();
    s.append("block ").append(r.first + i).append(": got ");
    if (got instanceof BlockCodec.Written c) {
      Write w = writes.get(c.seq());
      s.append(w == null ? got.toString() : describe(w));
    } else {
      s.append(got);
    }
    s.append("; acknowledged before the read: ").append(describeId(r.acked[i]));
    s.append("; seen by an earlier read: ").append(describeId(r.seen[i]));
    if (tornBy != null) {
      s.append("; the same read returned ").append(describe(tornBy)).append(" on another block");
    }
    s.append("; read of ")
        .append(r.count)
        .append(" blocks from ")
        .append(r.first)
        .append(" at ")
        .append(at(r.startNanos))
        .append("-")
        .append(at(endNanos));
    return s.toString();
  }

  private String describeId(long id) {
    if (id == 0) {
      return "none";
    }
    Write w = writes.get(id);
    return w == null ? "write " + id : describe(w);
  }

  /** A write as evidence: id, writer, blocks, outcome and times (seconds since the model began). */
  public String describe(Write w) {
    return "write "
        + w.id
        + " (writer "
        + w.writer
        + ", blocks "
        + w.first
        + "-"
        + (w.first + w.count - 1)
        + ", "
        + w.outcome
        + ", sent "
        + at(w.startNanos)
        + (w.outcome == Outcome.IN_FLIGHT ? "" : ", ended " + at(w.endNanos))
        + (w.firstSeenNanos == Long.MIN_VALUE ? "" : ", first seen " + at(w.firstSeenNanos))
        + ")";
  }

  /** A write by id, or null. */
  public Write write(long id) {
    return writes.get(id);
  }

  private String at(long nanos) {
    return String.format("%.3fs", (nanos - originNanos) / (double) TimeUnit.SECONDS.toNanos(1));
  }
}
