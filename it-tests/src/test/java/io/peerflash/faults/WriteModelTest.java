package io.peerflash.faults;

import static io.peerflash.faults.BlockCodec.BLOCK;
import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.faults.WriteModel.ReadCheck;
import io.peerflash.faults.WriteModel.Verdict;
import io.peerflash.faults.WriteModel.Write;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

/**
 * The checker's own rules, on histories written by hand: each rule must flag what it is there to
 * find, and let every legitimate history through. Time is a counter: each step is one nanosecond
 * after the one before.
 */
class WriteModelTest {
  private final BlockCodec codec = new BlockCodec("vm");
  private final WriteModel model = new WriteModel(codec, 32, 0);
  private long now;

  private long tick() {
    return ++now;
  }

  private Write write(long first, int count) {
    return model.begin(first, count, 0, tick());
  }

  private Write acked(long first, int count) {
    Write w = write(first, count);
    model.acknowledged(w, tick());
    return w;
  }

  private Write failed(long first, int count) {
    Write w = write(first, count);
    model.failed(w, tick());
    return w;
  }

  /**
   * What a read of {@code count} blocks from {@code first} returns: a write id per block, 0 zeros.
   */
  private byte[] image(long first, long... ids) {
    byte[] b = new byte[ids.length * BLOCK];
    for (int i = 0; i < ids.length; i++) {
      if (ids[i] != 0) {
        codec.encode(first + i, ids[i], 0, b, i * BLOCK);
      }
    }
    return b;
  }

  /** A read that begins now, returns {@code ids} and ends at once. */
  private ReadCheck read(long first, long... ids) {
    WriteModel.ReadStart r = model.startRead(first, ids.length, tick());
    return model.check(r, image(first, ids), tick());
  }

  private static Verdict[] all(int n, Verdict v) {
    Verdict[] a = new Verdict[n];
    Arrays.fill(a, v);
    return a;
  }

  // ---------------------------------------------------------------------------------------------
  // The block format

  @Test
  void blocksDecodeToTheWriteThatMadeThem() {
    byte[] b = new byte[BLOCK];
    codec.encode(3, 42, 1, b, 0);
    assertThat(codec.decode(3, b, 0)).isEqualTo(new BlockCodec.Written(42, 1));
    assertThat(codec.decode(3, new byte[BLOCK], 0)).isInstanceOf(BlockCodec.Zero.class);
  }

  @Test
  void corruptMisplacedOrForeignBlocksAreGarbage() {
    byte[] flipped = image(3, 42);
    flipped[100] ^= 1;
    assertThat(codec.decode(3, flipped, 0)).isInstanceOf(BlockCodec.Garbage.class);
    assertThat(codec.decode(4, image(3, 42), 0)).isInstanceOf(BlockCodec.Garbage.class);
    byte[] other = new byte[BLOCK];
    new BlockCodec("other").encode(3, 42, 0, other, 0);
    assertThat(codec.decode(3, other, 0)).isInstanceOf(BlockCodec.Garbage.class);
  }

  // ---------------------------------------------------------------------------------------------
  // Legitimate histories pass

  @Test
  void theLastAcknowledgedWriteOrALaterOneIsCorrect() {
    Write first = acked(2, 2);
    Write inFlight = write(2, 1);
    assertThat(read(2, first.id(), first.id()).verdicts()).containsOnly(Verdict.OK);
    assertThat(read(2, inFlight.id(), first.id()).verdicts()).containsOnly(Verdict.OK);
    assertThat(read(9, 0).verdicts()).containsOnly(Verdict.OK);
  }

  @Test
  void aWriteInFlightMayBeSeenBySomeReadsAndNotByConcurrentOnes() {
    Write old = acked(0, 4);
    Write w = write(0, 4);
    // Two reads overlap in time: one sees the write in flight, the other (begun before the first
    // ended) does not. Neither goes back in time behind the other.
    WriteModel.ReadStart early = model.startRead(0, 4, tick());
    WriteModel.ReadStart seeing = model.startRead(0, 4, tick());
    ReadCheck sees = model.check(seeing, image(0, w.id(), w.id(), w.id(), w.id()), tick());
    ReadCheck missesIt =
        model.check(early, image(0, old.id(), old.id(), old.id(), old.id()), tick());
    assertThat(sees.verdicts()).containsOnly(Verdict.OK);
    assertThat(missesIt.verdicts()).containsOnly(Verdict.OK);
    // A read that does not cover all of it sees it on what it covers.
    assertThat(read(2, w.id(), w.id()).verdicts()).containsOnly(Verdict.OK);
    assertThat(model.tornWrites()).isEmpty();
  }

  @Test
  void maybeAppliedWritesMayBeAbsentOrWhole() {
    Write base = acked(0, 8);
    Write absent = failed(0, 4);
    Write whole = failed(4, 4);
    // The final read: the first failed write never landed, the second landed whole.
    ReadCheck fin =
        read(
            0,
            base.id(),
            base.id(),
            base.id(),
            base.id(),
            whole.id(),
            whole.id(),
            whole.id(),
            whole.id());
    assertThat(fin.verdicts()).containsOnly(Verdict.OK);
    assertThat(fin.tornWrites()).isEmpty();
    assertThat(absent.outcome()).isEqualTo(WriteModel.Outcome.FAILED);
  }

  @Test
  void aWriteOverwrittenInPartByALaterOneIsNotTorn() {
    Write big = acked(0, 4);
    Write later = acked(2, 1);
    assertThat(read(0, big.id(), big.id(), later.id(), big.id()).verdicts())
        .containsOnly(Verdict.OK);
    assertThat(model.tornWrites()).isEmpty();
  }

  @Test
  void aRetryWithNewContentMayFollowItsFailedWrite() {
    Write lost = failed(5, 3);
    Write retry = acked(5, 3);
    assertThat(read(5, retry.id(), retry.id(), retry.id()).verdicts()).containsOnly(Verdict.OK);
    assertThat(lost.id()).isLessThan(retry.id());
  }

  // ---------------------------------------------------------------------------------------------
  // Faults are caught

  @Test
  void aMultiBlockWriteSeenInPartByOneReadIsTorn() {
    Write old = acked(0, 4);
    Write w = write(0, 4); // in flight: a read may see all of it or none of it, not half
    ReadCheck r = read(0, w.id(), w.id(), old.id(), old.id());
    assertThat(r.verdicts()).containsExactly(Verdict.OK, Verdict.OK, Verdict.TORN, Verdict.TORN);
    assertThat(r.tornWrites()).containsExactly(w.id());
    assertThat(model.tornWrites()).containsExactly(w.id());
  }

  @Test
  void aMaybeAppliedWriteFoundInPartAtTheEndIsTorn() {
    Write w = failed(8, 4);
    ReadCheck fin = read(8, w.id(), w.id(), w.id(), 0);
    assertThat(fin.verdicts()).containsExactly(Verdict.OK, Verdict.OK, Verdict.OK, Verdict.TORN);
    assertThat(fin.tornWrites()).containsExactly(w.id());
  }

  @Test
  void anAcknowledgedWriteMissingIsStale() {
    Write older = acked(5, 1);
    Write newer = acked(5, 1);
    assertThat(read(5, older.id()).verdicts()).containsExactly(Verdict.STALE);
    assertThat(read(5, 0).verdicts()).containsExactly(Verdict.STALE);
    assertThat(read(5, newer.id()).verdicts()).containsExactly(Verdict.OK);
  }

  @Test
  void aFailedWriteSurfacingOverALaterAcknowledgedOneIsStale() {
    Write lost = failed(5, 2);
    Write retry = acked(5, 2);
    assertThat(read(5, lost.id(), lost.id()).verdicts()).containsOnly(Verdict.STALE);
    assertThat(read(5, retry.id(), retry.id()).verdicts()).containsOnly(Verdict.OK);
  }

  @Test
  void aReadBehindWhatAnEarlierReadReturnedGoesBackInTime() {
    Write old = acked(3, 1);
    Write w = write(3, 1); // in flight, never acknowledged
    assertThat(read(3, w.id()).verdicts()).containsExactly(Verdict.OK);
    // Begun after that read ended: must not return the older version any more.
    assertThat(read(3, old.id()).verdicts()).containsExactly(Verdict.TIME_TRAVEL);
    model.failed(w, tick());
    assertThat(read(3, old.id()).verdicts()).containsExactly(Verdict.TIME_TRAVEL);
  }

  @Test
  void seeingOneBlockOfAWriteBindsLaterReadsOfItsOtherBlocks() {
    Write old = acked(0, 4);
    Write w = write(0, 4);
    assertThat(read(0, w.id()).verdicts()).containsExactly(Verdict.OK);
    assertThat(read(3, old.id()).verdicts()).containsExactly(Verdict.TIME_TRAVEL);
  }

  @Test
  void aReadStillRunningWhenTheOtherEndedMayMissWhatItSaw() {
    Write old = acked(3, 1);
    Write w = write(3, 1);
    WriteModel.ReadStart slow = model.startRead(3, 1, tick());
    assertThat(read(3, w.id()).verdicts()).containsExactly(Verdict.OK);
    assertThat(model.check(slow, image(3, old.id()), tick()).verdicts())
        .containsExactly(Verdict.OK);
  }

  @Test
  void writesNeverSentSentElsewhereOrNotYetSentAreNeverWritten() {
    Write w = acked(1, 1);
    assertThat(read(1, w.id() + 7).verdicts()).containsExactly(Verdict.NEVER_WRITTEN);
    // A well-formed block 6 of a write that only touched block 1.
    assertThat(read(6, w.id()).verdicts()).containsExactly(Verdict.NEVER_WRITTEN);
    // A write recorded only after the read had ended.
    WriteModel.ReadStart r = model.startRead(10, 1, tick());
    long readEnd = tick();
    Write future = write(10, 1);
    assertThat(model.check(r, image(10, future.id()), readEnd).verdicts())
        .containsExactly(Verdict.NEVER_WRITTEN);
    assertThat(read(12, 0, 0).verdicts()).isEqualTo(all(2, Verdict.OK));
  }

  @Test
  void sharedStorageComparisonCountsDifferingBlocks() {
    byte[] a = new byte[4 * BLOCK];
    codec.encode(0, 1, 0, a, 0);
    codec.encode(2, 2, 0, a, 2 * BLOCK);
    byte[] b = a.clone();
    assertThat(ConsistencyChecker.differingBlocks(a, b, 4)).isZero();
    b[2 * BLOCK + 77] ^= 1;
    assertThat(ConsistencyChecker.differingBlocks(a, b, 4)).isEqualTo(1);
    assertThat(ConsistencyChecker.differingBlocks(a, new byte[3 * BLOCK], 4)).isEqualTo(3);
  }
}
