package io.peerflash.node.cache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** {@link ClockEvictor}: which slots the clock offers its target, and when it stops. */
class ClockEvictorTest {
  private static final long VOLUME = 7;

  /**
   * Records every offer; accepts the slots in {@link #accepting} (all when null) and frees them in
   * the clock, as the engine's target does.
   */
  private static final class Target implements ClockEvictor.EvictionTarget {
    final ClockEvictor clock;
    final List<Integer> offered = new ArrayList<>();
    final List<Integer> evicted = new ArrayList<>();
    Set<Integer> accepting;

    Target(ClockEvictor clock) {
      this.clock = clock;
    }

    @Override
    public boolean tryEvict(int slot, long volumeId, long block) {
      offered.add(slot);
      assertThat(volumeId).isEqualTo(VOLUME);
      assertThat(block).as("the block the slot holds").isEqualTo(1000L + slot);
      if (accepting == null || accepting.contains(slot)) {
        evicted.add(slot);
        clock.release(slot);
        return true;
      }
      return false;
    }
  }

  private static Target refusingAll(ClockEvictor clock) {
    Target t = new Target(clock);
    t.accepting = Set.of();
    return t;
  }

  private static ClockEvictor occupied(int slots, boolean dirty) {
    ClockEvictor clock = new ClockEvictor(slots);
    for (int s = 0; s < slots; s++) {
      clock.occupy(s, VOLUME, 1000L + s, dirty);
    }
    return clock;
  }

  @Test
  void dirtySlotsAreNeverOffered() {
    ClockEvictor clock = new ClockEvictor(8);
    for (int s = 0; s < 8; s++) {
      clock.occupy(s, VOLUME, 1000L + s, s % 2 == 0); // even slots dirty
    }
    Target target = new Target(clock);
    assertThat(clock.evict(8, target)).isEqualTo(4);
    assertThat(target.offered).containsExactlyInAnyOrder(1, 3, 5, 7);

    ClockEvictor allDirty = occupied(8, true);
    Target none = new Target(allDirty);
    assertThat(allDirty.evict(3, none)).isZero();
    assertThat(none.offered).isEmpty();
  }

  @Test
  void aTouchedSlotGetsASecondChance() {
    ClockEvictor clock = occupied(4, false);
    // A new block is referenced: a first evict that takes nothing clears every mark.
    assertThat(clock.evict(4, refusingAll(clock))).isZero();

    clock.touch(0);
    clock.touch(1);
    Target first = new Target(clock);
    assertThat(clock.evict(2, first)).isEqualTo(2);
    assertThat(first.evicted).as("the untouched slots go first").containsExactlyInAnyOrder(2, 3);

    // The pass cleared their marks: now they go.
    Target second = new Target(clock);
    assertThat(clock.evict(2, second)).isEqualTo(2);
    assertThat(second.evicted).containsExactlyInAnyOrder(0, 1);
  }

  @Test
  void evictTakesNoMoreThanWanted() {
    ClockEvictor clock = occupied(64, false);
    Target target = new Target(clock);
    assertThat(clock.evict(3, target)).isEqualTo(3);
    assertThat(target.offered).as("no offer past the third eviction").hasSize(3);
    assertThat(new HashSet<>(target.evicted)).hasSize(3);
  }

  @Test
  void releasedSlotsAreNotOfferedAndMarkCleanMakesADirtySlotACandidate() {
    ClockEvictor clock = occupied(6, true);
    assertThat(clock.countDirty()).isEqualTo(6);

    clock.markClean(2);
    clock.markClean(4);
    assertThat(clock.countDirty()).isEqualTo(4);
    clock.release(4);
    clock.release(5); // a dirty slot dropped (its block overwritten)
    assertThat(clock.countDirty()).isEqualTo(3);
    clock.markClean(5); // a free slot stays free
    assertThat(clock.countDirty()).isEqualTo(3);

    Target target = new Target(clock);
    assertThat(clock.evict(6, target)).isEqualTo(1);
    assertThat(target.offered).containsExactly(2);

    clock.occupy(4, VOLUME, 1004, true);
    assertThat(clock.countDirty()).as("occupied dirty again").isEqualTo(4);
    clock.occupy(0, VOLUME, 1000, false); // a dirty slot reused for a clean copy
    assertThat(clock.countDirty()).isEqualTo(3);
  }

  @Test
  void evictStopsWhenTheTargetRefusesEverything() {
    ClockEvictor clock = occupied(32, false);
    Target target = refusingAll(clock);
    int evicted = assertTimeoutPreemptively(Duration.ofSeconds(10), () -> clock.evict(5, target));
    assertThat(evicted).isZero();
    // Each slot looked at at most twice: the first look clears its mark, the second offers it.
    assertThat(target.offered).hasSize(32);
    assertThat(new HashSet<>(target.offered)).hasSize(32);

    Target some = new Target(clock);
    some.accepting = Set.of(3, 17);
    assertThat(assertTimeoutPreemptively(Duration.ofSeconds(10), () -> clock.evict(5, some)))
        .as("fewer than wanted: what the target took")
        .isEqualTo(2);
    assertThat(some.evicted).containsExactlyInAnyOrder(3, 17);
  }
}
