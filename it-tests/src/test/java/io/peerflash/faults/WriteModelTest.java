package io.peerflash.faults;

import static io.peerflash.faults.BlockCodec.BLOCK;
import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.faults.WriteModel.Verdict;
import org.junit.jupiter.api.Test;

/** The checker's own rules: it must flag what it is there to find. */
class WriteModelTest {
  private final BlockCodec codec = new BlockCodec("vm");
  private final WriteModel model = new WriteModel(codec, 16);

  private byte[] image(long block, long seq) {
    byte[] b = new byte[BLOCK];
    codec.encode(block, seq, 0, b, 0);
    return b;
  }

  @Test
  void blocksDecodeToTheWriteThatMadeThem() {
    assertThat(codec.decode(3, image(3, 42), 0)).isEqualTo(new BlockCodec.Written(42, 0));
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

  @Test
  void theLastAcknowledgedWriteOrALaterAttemptIsCorrect() {
    long first = model.attempt(2, 2);
    model.acknowledged(first);
    long uncertain = model.attempt(2, 1); // its acknowledgement never came
    assertThat(model.judge(2, model.lastAcked(2), image(2, first), 0)).isEqualTo(Verdict.OK);
    assertThat(model.judge(2, model.lastAcked(2), image(2, uncertain), 0)).isEqualTo(Verdict.OK);
    assertThat(model.judge(3, model.lastAcked(3), image(3, first), 0)).isEqualTo(Verdict.OK);
    assertThat(model.judge(9, model.lastAcked(9), new byte[BLOCK], 0)).isEqualTo(Verdict.OK);
  }

  @Test
  void olderWritesAndZerosAfterAnAcknowledgementAreStale() {
    long older = model.attempt(5, 1);
    model.acknowledged(older);
    long newer = model.attempt(5, 1);
    model.acknowledged(newer);
    assertThat(model.judge(5, model.lastAcked(5), image(5, older), 0)).isEqualTo(Verdict.STALE);
    assertThat(model.judge(5, model.lastAcked(5), new byte[BLOCK], 0)).isEqualTo(Verdict.STALE);
  }

  @Test
  void writesNeverSentOrSentElsewhereAreNeverWritten() {
    long seq = model.attempt(1, 1);
    assertThat(model.judge(1, 0, image(1, seq + 7), 0)).isEqualTo(Verdict.NEVER_WRITTEN);
    byte[] elsewhere = image(6, seq); // a well-formed block 6 of a write that only touched block 1
    assertThat(model.judge(6, 0, elsewhere, 0)).isEqualTo(Verdict.NEVER_WRITTEN);
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
