package io.peerflash.node.cluster;

import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.util.ManualTime;
import java.util.Set;
import org.junit.jupiter.api.Test;

class RequestPacerTest {
  private final ManualTime time = new ManualTime();
  private final RequestPacer pacer = new RequestPacer(time, 2_000);

  @Test
  void theSameRequestForTheSameSituationWaitsOutThePause() {
    assertThat(pacer.due("vm1", "add replicas", "epoch 3")).isTrue();
    time.advanceMs(1_999);
    assertThat(pacer.due("vm1", "add replicas", "epoch 3")).isFalse();
    assertThat(pacer.msUntilDue("vm1")).isEqualTo(1);
    time.advanceMs(1);
    assertThat(pacer.due("vm1", "add replicas", "epoch 3")).isTrue();
    assertThat(pacer.msUntilDue("vm1")).isEqualTo(2_000);
  }

  @Test
  void aNewSituationOrAnotherRequestIsDueAtOnce() {
    assertThat(pacer.due("vm1", "clear replicas", "write-through, epoch 3")).isTrue();
    assertThat(pacer.due("vm1", "add replicas", "write-back, epoch 3")).isTrue();
    assertThat(pacer.due("vm1", "add replicas", "write-back, epoch 4")).isTrue();
    assertThat(pacer.due("vm1", "add replicas", "write-back, epoch 4")).isFalse();
  }

  @Test
  void aSituationThatChangedAndChangedBackIsANewOne() {
    assertThat(pacer.due("vm1", "add replicas", "replicas 1, epoch 3")).isTrue();
    pacer.seen("vm1", "replicas 1, epoch 3"); // looked again, nothing changed: still paced
    assertThat(pacer.due("vm1", "add replicas", "replicas 1, epoch 3")).isFalse();
    pacer.seen("vm1", "replicas 0, epoch 3"); // lowered...
    pacer.seen("vm1", "replicas 1, epoch 3"); // ...and raised again: ask at once
    assertThat(pacer.due("vm1", "add replicas", "replicas 1, epoch 3")).isTrue();
    assertThat(pacer.due("vm1", "add replicas", "replicas 1, epoch 3")).isFalse();
  }

  @Test
  void volumesArePacedApartAndAForgottenOneStartsAfresh() {
    assertThat(pacer.due("vm1", "add replicas", "epoch 3")).isTrue();
    assertThat(pacer.due("vm2", "add replicas", "epoch 3")).isTrue();
    assertThat(pacer.due("vm1", "add replicas", "epoch 3")).isFalse();
    pacer.retainOnly(Set.of("vm2"));
    assertThat(pacer.msUntilDue("vm1")).isZero();
    assertThat(pacer.due("vm1", "add replicas", "epoch 3")).isTrue();
  }
}
