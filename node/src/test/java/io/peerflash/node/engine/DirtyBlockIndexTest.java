package io.peerflash.node.engine;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;
import java.util.function.LongPredicate;
import org.junit.jupiter.api.Test;

/** The destager's choice of blocks: the oldest first, each with its dirty neighbours. */
class DirtyBlockIndexTest {
  private final DirtyBlockIndex index = new DirtyBlockIndex();
  private final Map<Long, Long> seqOfBlock = new HashMap<>();
  private long nextSeq = 1;

  private void write(long... blocks) {
    for (long b : blocks) {
      Long old = seqOfBlock.get(b);
      if (old != null) {
        index.remove(old); // only the newest version of a block is dirty
      }
      long seq = nextSeq++;
      index.add(seq, b);
      seqOfBlock.put(b, seq);
    }
  }

  private long[][] pick(int limit, LongPredicate skip) {
    long[] seqs = new long[limit];
    long[] blocks = new long[limit];
    int n = index.oldestWithNeighbours(seqs, blocks, skip, b -> seqOfBlock.getOrDefault(b, -1L));
    return new long[][] {Arrays.copyOf(seqs, n), Arrays.copyOf(blocks, n)};
  }

  @Test
  void theOldestComesFirstWithTheDirtyBlocksAfterItThenBeforeIt() {
    // Two interleaved streams: taken by age alone, a batch of 4 would be blocks 10, 100, 11, 101
    // (two writes of two blocks); with neighbours it is one run of four.
    write(10, 100, 11, 101, 12, 102, 9, 103);
    long[][] p = pick(4, b -> false);
    assertThat(p[1]).containsExactly(10, 11, 12, 9);
    assertThat(p[0]).containsExactly(1, 3, 5, 7);
  }

  @Test
  void theNextSeedIsTheOldestNotTakenAndNoBlockIsTakenTwice() {
    write(10, 100, 11, 101, 12, 102, 9, 103);
    long[][] p = pick(8, b -> false);
    assertThat(p[1]).containsExactly(10, 11, 12, 9, 100, 101, 102, 103);
    assertThat(Set.copyOf(Arrays.stream(p[1]).boxed().toList())).hasSize(8);
  }

  @Test
  void aNeighbourTheDestagerMustLeaveAloneEndsTheRun() {
    // Block 12's copy is still on its way to a replica (or it is corrupt, or backing off): the run
    // stops before it, and it is not taken later in the batch either.
    write(10, 11, 12, 13, 50);
    long[][] p = pick(8, b -> b == 12);
    assertThat(p[1]).containsExactly(10, 11, 13, 50);
  }

  @Test
  void aCleanGapEndsTheRunAndBlockZeroIsTheLowerEdge() {
    write(1, 0, 3, 4);
    long[][] p = pick(8, b -> false);
    assertThat(p[1]).containsExactly(1, 0, 3, 4);
    assertThat(p[0]).containsExactly(1, 2, 3, 4);
  }

  @Test
  void withRoomForOneBlockOnlyTheOldestIsTaken() {
    write(7, 8, 6);
    assertThat(pick(1, b -> false)[1]).containsExactly(7);
  }
}
