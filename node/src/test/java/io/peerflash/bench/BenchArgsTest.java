package io.peerflash.bench;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;

class BenchArgsTest {
  @Test
  void queueDepths() {
    assertThat(BenchArgs.queueDepths("1,32")).containsExactly(1, 32);
    assertThat(BenchArgs.queueDepths(" 32 , 1,32,")).containsExactly(32, 1);
    assertThatThrownBy(() -> BenchArgs.queueDepths("0")).hasMessageContaining("between 1 and");
    assertThatThrownBy(() -> BenchArgs.queueDepths("2000")).hasMessageContaining("2000");
    assertThatThrownBy(() -> BenchArgs.queueDepths("x")).hasMessageContaining("'x'");
    assertThatThrownBy(() -> BenchArgs.queueDepths(" , ")).hasMessageContaining("no queue depth");
  }

  @Test
  void durations() {
    assertThat(BenchArgs.duration("10s")).isEqualTo(Duration.ofSeconds(10));
    assertThat(BenchArgs.duration("500ms")).isEqualTo(Duration.ofMillis(500));
    assertThat(BenchArgs.duration("3m")).isEqualTo(Duration.ofMinutes(3));
    assertThat(BenchArgs.duration("1h")).isEqualTo(Duration.ofHours(1));
    assertThat(BenchArgs.duration("2.5")).isEqualTo(Duration.ofMillis(2500));
    assertThat(BenchArgs.duration("0s")).isZero();
    assertThatThrownBy(() -> BenchArgs.duration("ten s")).hasMessageContaining("500ms, 10s");
    assertThatThrownBy(() -> BenchArgs.duration("-1s")).hasMessageContaining("negative");
  }

  @Test
  void workloads() {
    assertThat(BenchArgs.workloads("write, READ_HIT,read-hit,seq-write"))
        .containsExactly(Workload.WRITE, Workload.READ_HIT, Workload.SEQ_WRITE);
    assertThatThrownBy(() -> BenchArgs.workloads("write,scan"))
        .hasMessageContaining("unknown workload 'scan'")
        .hasMessageContaining("read-miss");
    assertThat(Workload.SEQ_WRITE.blockBytes()).isEqualTo(1 << 20);
    assertThat(Workload.MIX.needsWorkingSet()).isTrue();
    assertThat(Workload.READ_MISS.writes()).isFalse();
  }

  @Test
  void offsetsStayAlignedAndInRange() {
    for (long i = 0; i < 1000; i++) {
      long off = Offsets.random(7, i, 4096 * 10, 4096 * 100, 4096);
      assertThat(off % 4096).isZero();
      assertThat(off).isBetween(4096L * 10, 4096L * 109);
    }
    assertThat(Offsets.sequential(5, 0, 4 << 20, 1 << 20)).isEqualTo(1L << 20);
    assertThatThrownBy(() -> Offsets.random(1, 0, 0, 100, 4096)).hasMessageContaining("no block");
  }

  @Test
  void uniqueOffsetsVisitEveryBlockOncePerPass() {
    for (long blocks : new long[] {1, 2, 1000, 4096, 12345}) {
      Set<Long> seen = new HashSet<>();
      for (long i = 0; i < blocks; i++) {
        long off = Offsets.unique(3, i, 8192, blocks * 4096, 4096);
        assertThat(off).isBetween(8192L, 8192 + (blocks - 1) * 4096);
        seen.add(off);
      }
      assertThat(seen).hasSize((int) blocks);
      // The next pass starts over.
      assertThat(Offsets.unique(3, blocks, 8192, blocks * 4096, 4096))
          .isEqualTo(Offsets.unique(3, 0, 8192, blocks * 4096, 4096));
    }
    // Volumes past 2^31 blocks take the wide multiplication.
    long huge = 1L << 33;
    long off = Offsets.unique(1, 123456789, 0, huge * 4096, 4096);
    assertThat(off % 4096).isZero();
    assertThat(off / 4096).isBetween(0L, huge - 1);
  }
}
