package io.peerflash.node.health;

import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.node.health.VolumeHealth.Assessment;
import io.peerflash.node.health.VolumeHealth.OwnerReport;
import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.ClusterMember;
import io.peerflash.proto.v1.ClusterVolume;
import io.peerflash.proto.v1.MemberState;
import io.peerflash.proto.v1.OnPeerLoss;
import io.peerflash.proto.v1.VolumeProblem;
import io.peerflash.proto.v1.VolumeState;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class VolumeHealthTest {
  private static final OwnerReport FINE = new OwnerReport(VolumeState.HEALTHY, "", 8192, "");

  private static Map<String, ClusterMember> members(Object... idAndState) {
    Map<String, ClusterMember> m = new LinkedHashMap<>();
    for (int i = 0; i < idAndState.length; i += 2) {
      String id = (String) idAndState[i];
      m.put(
          id,
          ClusterMember.newBuilder().setId(id).setState((MemberState) idAndState[i + 1]).build());
    }
    return m;
  }

  private static final MemberState UP = MemberState.MEMBER_UP;
  private static final MemberState DOWN = MemberState.MEMBER_DOWN;

  private static ClusterVolume volume(int replicas, OnPeerLoss policy, String... replicaSet) {
    return ClusterVolume.newBuilder()
        .setName("vm1")
        .setMode(CacheMode.WRITE_BACK)
        .setRequestedReplicas(replicas)
        .setOnPeerLoss(policy)
        .setOwner("n1")
        .addAllReplicaSet(List.of(replicaSet))
        .build();
  }

  @Test
  void healthyWhenEveryWantedCopyIsInSync() {
    Assessment a =
        VolumeHealth.assess(
            volume(1, OnPeerLoss.ON_PEER_LOSS_WRITE_THROUGH, "n2"),
            members("n1", UP, "n2", UP, "n3", UP),
            FINE);

    assertThat(a.state()).isEqualTo(VolumeState.HEALTHY);
    assertThat(a.problems()).isEmpty();
  }

  @Test
  void degradedWhenFewerCopiesThanWantedAndWritesGoThrough() {
    Assessment a =
        VolumeHealth.assess(
            volume(2, OnPeerLoss.ON_PEER_LOSS_WRITE_THROUGH, "n2"),
            members("n1", UP, "n2", UP),
            FINE);

    assertThat(a.state()).isEqualTo(VolumeState.DEGRADED);
    assertThat(a.reason())
        .isEqualTo(
            "1 of 2 wanted replicas in sync, and the cluster has only 1 other UP member to hold"
                + " them: writes go through to shared storage");
  }

  @Test
  void degradedWhileReprotectingSaysWritesWaitUnderBlock() {
    ClusterVolume v = volume(1, OnPeerLoss.ON_PEER_LOSS_BLOCK).toBuilder().addSyncing("n3").build();

    Assessment a = VolumeHealth.assess(v, members("n1", UP, "n2", DOWN, "n3", UP), FINE);

    assertThat(a.state()).isEqualTo(VolumeState.DEGRADED);
    assertThat(a.reason())
        .isEqualTo(
            "0 of 1 wanted replicas in sync, re-protecting to n3: writes wait for re-protection"
                + " (peer-loss-wait-ms), then fail");
  }

  @Test
  void atRiskUnderAcceptNamesTheDirtyBytes() {
    Assessment a =
        VolumeHealth.assess(
            volume(1, OnPeerLoss.ON_PEER_LOSS_ACCEPT), members("n1", UP, "n2", UP), FINE);

    assertThat(a.state()).isEqualTo(VolumeState.AT_RISK);
    assertThat(a.reason())
        .isEqualTo(
            "0 of 1 wanted replicas in sync: writes are acknowledged with fewer copies (8192 dirty"
                + " bytes at risk)");
  }

  @Test
  void offlineWhenTheOwnerIsDownAndNoReplicaCanTakeOver() {
    Assessment a =
        VolumeHealth.assess(
            volume(0, OnPeerLoss.ON_PEER_LOSS_WRITE_THROUGH), members("n1", DOWN, "n2", UP), null);

    assertThat(a.state()).isEqualTo(VolumeState.OFFLINE);
    assertThat(a.reason())
        .isEqualTo(
            "its owner n1 is DOWN and no in-sync replica can take over (the volume keeps no"
                + " replicas); I/O fails until n1 is back");
  }

  @Test
  void offlineWhenTheOnlyReplicaIsDownToo() {
    Assessment a =
        VolumeHealth.assess(
            volume(1, OnPeerLoss.ON_PEER_LOSS_WRITE_THROUGH, "n2"),
            members("n1", DOWN, "n2", DOWN),
            null);

    assertThat(a.state()).isEqualTo(VolumeState.OFFLINE);
    assertThat(a.reason()).contains("in-sync replicas: none UP of [n2]");
  }

  @Test
  void ownerDownWithAnInSyncReplicaIsAFailoverNotOffline() {
    Assessment a =
        VolumeHealth.assess(
            volume(1, OnPeerLoss.ON_PEER_LOSS_WRITE_THROUGH, "n2"),
            members("n1", DOWN, "n2", UP),
            null);

    assertThat(a.state()).isEqualTo(VolumeState.DEGRADED);
    assertThat(a.reason())
        .isEqualTo("its owner n1 is DOWN; failover to an in-sync replica (n2) pending");
  }

  @Test
  void storageFailingFromTheOwnersEngine() {
    Assessment a =
        VolumeHealth.assess(
            volume(0, OnPeerLoss.ON_PEER_LOSS_WRITE_THROUGH),
            members("n1", UP),
            new OwnerReport(VolumeState.STORAGE_FAILING, "shared storage failing for 12 s", 0, ""));

    assertThat(a.state()).isEqualTo(VolumeState.STORAGE_FAILING);
    assertThat(a.reason()).isEqualTo("shared storage failing for 12 s");
  }

  @Test
  void corruptDirtyDataOutranksStorageFailingAndDegraded() {
    // (one report carries one engine state; the map adds the replica problem)
    Assessment a =
        VolumeHealth.assess(
            volume(1, OnPeerLoss.ON_PEER_LOSS_WRITE_THROUGH),
            members("n1", UP),
            new OwnerReport(
                VolumeState.CORRUPT_DIRTY_DATA, "2 dirty blocks failed their checksum", 0, ""));

    assertThat(a.state()).isEqualTo(VolumeState.CORRUPT_DIRTY_DATA);
    assertThat(a.problems())
        .extracting(VolumeProblem::getState)
        .containsExactly(VolumeState.CORRUPT_DIRTY_DATA, VolumeState.DEGRADED);
  }

  @Test
  void stoppedAfterAnFsyncFailure() {
    Assessment a =
        VolumeHealth.assess(
            new OwnerReport(VolumeState.LOCAL_FLASH_FAILED, "fsync of cache.slots failed", 0, ""));

    assertThat(a.state()).isEqualTo(VolumeState.LOCAL_FLASH_FAILED);
    assertThat(a.reason()).isEqualTo("fsync of cache.slots failed");
  }

  @Test
  void fencedWhenTheOwnerHoldsNoLease() {
    Assessment a =
        VolumeHealth.assess(
            volume(0, OnPeerLoss.ON_PEER_LOSS_WRITE_THROUGH),
            members("n1", UP),
            new OwnerReport(VolumeState.HEALTHY, "", 0, "node n1 holds no valid cluster lease"));

    assertThat(a.state()).isEqualTo(VolumeState.FENCED);
    assertThat(a.reason()).isEqualTo("node n1 holds no valid cluster lease");
  }

  @Test
  void replicasDoNotMatterOutsideWriteBack() {
    ClusterVolume v =
        volume(2, OnPeerLoss.ON_PEER_LOSS_WRITE_THROUGH).toBuilder()
            .setMode(CacheMode.WRITE_THROUGH)
            .build();

    assertThat(VolumeHealth.assess(v, members("n1", UP), FINE).state())
        .isEqualTo(VolumeState.HEALTHY);
  }
}
