package io.peerflash.node.cluster;

import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.node.index.VolumeInfo.Role;
import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.OnPeerLoss;
import io.peerflash.replication.control.VolumeRecord;
import java.util.List;
import org.junit.jupiter.api.Test;

class ReconciliationTest {
  static VolumeRecord volume(String owner, List<String> inSync, List<String> syncing) {
    return new VolumeRecord(
        1,
        "v",
        4096,
        CacheMode.WRITE_BACK,
        2,
        OnPeerLoss.ON_PEER_LOSS_WRITE_THROUGH,
        owner,
        5,
        inSync,
        syncing);
  }

  @Test
  void aFormerOwnerReAddedAsAPeerDropsItsOwnCopiesFirst() {
    // n1 owned v, lost it in a failover to n2, and n2's re-protection picked it as a peer: its
    // copies carry n1's sequences, which may be higher than n2's for blocks n2 rewrote since.
    assertThat(Reconciliation.step("n1", volume("n2", List.of("n3"), List.of("n1")), Role.OWNER))
        .isEqualTo(Reconciliation.Step.DROP_THEN_ADOPT_REPLICA);
    assertThat(Reconciliation.step("n1", volume("n2", List.of("n1"), List.of()), Role.OWNER))
        .isEqualTo(Reconciliation.Step.DROP_THEN_ADOPT_REPLICA);
  }

  @Test
  void aReplicaKeepsItsCopiesAndAnOwnerItsVolume() {
    assertThat(Reconciliation.step("n1", volume("n2", List.of("n1"), List.of()), Role.REPLICA))
        .isEqualTo(Reconciliation.Step.ADOPT_REPLICA);
    assertThat(Reconciliation.step("n1", volume("n2", List.of(), List.of("n1")), null))
        .isEqualTo(Reconciliation.Step.ADOPT_REPLICA);
    // A replica that takes over keeps its copies: they are the volume's data.
    assertThat(Reconciliation.step("n1", volume("n1", List.of("n3"), List.of()), Role.REPLICA))
        .isEqualTo(Reconciliation.Step.ADOPT_OWNER);
  }

  @Test
  void copiesOfAVolumeThisNodeNoLongerHasARoleInAreDropped() {
    assertThat(Reconciliation.step("n1", volume("n2", List.of("n3"), List.of()), Role.OWNER))
        .isEqualTo(Reconciliation.Step.DROP);
    assertThat(Reconciliation.step("n1", volume("n2", List.of("n3"), List.of()), Role.REPLICA))
        .isEqualTo(Reconciliation.Step.DROP);
    assertThat(Reconciliation.step("n1", volume("n2", List.of("n3"), List.of()), null))
        .isEqualTo(Reconciliation.Step.NONE);
  }

  @Test
  void aNewOwnersSequencesStartAboveEveryBandOfAnEarlierEpoch() {
    // A volume that never changed hands counts from 1.
    assertThat(Reconciliation.sequenceFloor(1)).isZero();
    assertThat(Reconciliation.sequenceFloor(0)).isZero();
    long band = 1L << Reconciliation.SEQUENCE_BAND_BITS;
    for (long epoch : new long[] {2, 3, 6, 1000, 1L << 20}) {
      long floor = Reconciliation.sequenceFloor(epoch);
      // An owner at an earlier epoch starts at that epoch's floor and takes fewer than a band of
      // sequences before the map moves on: all of them are below the later epoch's floor.
      long earlier = Reconciliation.sequenceFloor(epoch - 1);
      assertThat(earlier + band - 1).isLessThan(floor);
      assertThat(Reconciliation.sequenceFloor(epoch + 1)).isEqualTo(floor + band);
    }
    // Past the last band, later epochs share it (sequences keep a band of room before the top).
    long last = Reconciliation.sequenceFloor(Long.MAX_VALUE);
    assertThat(last).isPositive().isEqualTo(Reconciliation.sequenceFloor(1L << 40));
    assertThat(Long.MAX_VALUE - last).isEqualTo(band - 1);
  }
}
