package io.peerflash.node.health;

import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.node.health.ClusterHealth.Level;
import io.peerflash.node.health.ClusterHealth.Reason;
import io.peerflash.node.health.ClusterHealth.Report;
import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.ClusterMember;
import io.peerflash.proto.v1.ClusterStatus;
import io.peerflash.proto.v1.ClusterVolume;
import io.peerflash.proto.v1.MemberState;
import io.peerflash.proto.v1.NodeStatus;
import io.peerflash.proto.v1.Volume;
import io.peerflash.proto.v1.VolumeState;
import java.util.Map;
import org.junit.jupiter.api.Test;

class ClusterHealthTest {
  private static ClusterMember member(String id, MemberState state) {
    return ClusterMember.newBuilder().setId(id).setState(state).build();
  }

  private static ClusterStatus.Builder threeUp() {
    return ClusterStatus.newBuilder()
        .setLeaderId("n1")
        .addMembers(member("n1", MemberState.MEMBER_UP))
        .addMembers(member("n2", MemberState.MEMBER_UP))
        .addMembers(member("n3", MemberState.MEMBER_UP));
  }

  private static ClusterVolume vol(String name, int replicas, String owner, String... set) {
    return ClusterVolume.newBuilder()
        .setName(name)
        .setMode(CacheMode.WRITE_BACK)
        .setRequestedReplicas(replicas)
        .setOwner(owner)
        .addAllReplicaSet(java.util.List.of(set))
        .build();
  }

  @Test
  void okWhenNothingIsWrong() {
    Report r =
        ClusterHealth.summarize(
            threeUp().addVolumes(vol("vm1", 1, "n1", "n2")).build(), Map.of(), Map.of());

    assertThat(r.level()).isEqualTo(Level.HEALTH_OK);
    assertThat(r.reasons()).isEmpty();
  }

  @Test
  void warnForADegradedVolumeAndADrainingMember() {
    ClusterStatus s =
        threeUp()
            .setMembers(2, member("n3", MemberState.MEMBER_DRAINING))
            .addVolumes(vol("vm1", 2, "n1", "n2"))
            .build();

    Report r = ClusterHealth.summarize(s, Map.of(), Map.of());

    assertThat(r.level()).isEqualTo(Level.HEALTH_WARN);
    assertThat(r.reasons())
        .extracting(Reason::text)
        .containsExactly(
            "member n3 is DRAINING",
            "volume vm1 is DEGRADED: 1 of 2 wanted replicas in sync, and the cluster has only 1"
                + " other UP member to hold them: writes go through to shared storage");
  }

  @Test
  void errForAnOfflineVolumeListedBeforeTheWarnings() {
    ClusterStatus s =
        threeUp()
            .setMembers(2, member("n3", MemberState.MEMBER_DOWN))
            .addVolumes(vol("vm3", 0, "n3"))
            .build();

    Report r = ClusterHealth.summarize(s, Map.of(), Map.of());

    assertThat(r.level()).isEqualTo(Level.HEALTH_ERR);
    assertThat(r.reasons().get(0).text()).startsWith("volume vm3 is OFFLINE: its owner n3 is DOWN");
    assertThat(r.reasons().get(1).text()).isEqualTo("member n3 is DOWN");
  }

  @Test
  void warnsAboutAnEvenNumberOfVoters() {
    ClusterStatus s =
        ClusterStatus.newBuilder()
            .setLeaderId("n1")
            .addMembers(member("n1", MemberState.MEMBER_UP))
            .addMembers(member("n2", MemberState.MEMBER_UP))
            .build();

    Report r = ClusterHealth.summarize(s, Map.of(), Map.of());

    assertThat(r.level()).isEqualTo(Level.HEALTH_WARN);
    assertThat(r.reasons())
        .extracting(Reason::text)
        .containsExactly(
            "2 Raft voters: an even number survives no more failures than 1 would (0); add or"
                + " remove one");
  }

  @Test
  void errWithoutALeaderAndFromTheOwnersReport() {
    NodeStatus n1 =
        NodeStatus.newBuilder()
            .setNodeId("n1")
            .addVolumes(
                Volume.newBuilder()
                    .setName("vm1")
                    .setState(VolumeState.CORRUPT_DIRTY_DATA)
                    .setStateDetail("1 dirty block failed its checksum"))
            .build();
    ClusterStatus s = threeUp().setLeaderId("").addVolumes(vol("vm1", 0, "n1")).build();

    Report r = ClusterHealth.summarize(s, Map.of("n1", n1), Map.of("n2", "UNAVAILABLE: refused"));

    assertThat(r.level()).isEqualTo(Level.HEALTH_ERR);
    assertThat(r.reasons())
        .extracting(Reason::text)
        .containsExactly(
            "no Raft leader: fewer than a majority of voters reach each other; the cluster map"
                + " cannot change (no failover)",
            "volume vm1 is CORRUPT_DIRTY_DATA: 1 dirty block failed its checksum",
            "member n2 did not answer: UNAVAILABLE: refused");
  }
}
