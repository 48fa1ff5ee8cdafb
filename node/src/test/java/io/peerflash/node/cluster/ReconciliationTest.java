package io.peerflash.node.cluster;

import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.node.index.VolumeInfo.Role;
import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.OnPeerLoss;
import io.peerflash.replication.cluster.VolumeRecord;
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
}
