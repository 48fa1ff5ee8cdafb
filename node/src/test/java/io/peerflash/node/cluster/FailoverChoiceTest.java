package io.peerflash.node.cluster;

import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.replication.control.ClusterMap;
import io.peerflash.replication.control.VolumeRecord;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The leader's failover rule on real maps: a volume needs a new owner when its owner is DOWN or
 * gone; only in-sync replicas that are UP may take it; of those that answered, the one holding the
 * highest sequence wins, the first asked on a tie.
 */
class FailoverChoiceTest {
  @Test
  void aVolumeNeedsANewOwnerOnlyWhenItsOwnerIsDownOrGone() {
    ClusterMap map = TestMaps.withVolume(TestMaps.members("n1", "n2", "n3"), "v", 2, "n1");
    VolumeRecord v = map.volume("v").orElseThrow();
    assertThat(FailoverChoice.ownerLost(map, v)).isFalse();
    assertThat(FailoverChoice.ownerLost(TestMaps.down(map, "n2"), v))
        .as("a replica DOWN is re-protection's concern, not failover's")
        .isFalse();
    assertThat(FailoverChoice.ownerLost(TestMaps.down(map, "n1"), v)).isTrue();
  }

  @Test
  void onlyInSyncReplicasThatAreUpAreCandidates() {
    ClusterMap map = TestMaps.withVolume(TestMaps.members("n1", "n2", "n3"), "v", 2, "n1");
    VolumeRecord v = map.volume("v").orElseThrow();
    assertThat(v.replicaSet()).containsExactlyInAnyOrder("n2", "n3");
    ClusterMap ownerDown = TestMaps.down(map, "n1");
    assertThat(FailoverChoice.candidates(ownerDown, v)).containsExactlyElementsOf(v.replicaSet());
    ClusterMap oneLeft = TestMaps.down(ownerDown, "n3");
    assertThat(FailoverChoice.candidates(oneLeft, v)).containsExactly("n2");
    assertThat(FailoverChoice.candidates(TestMaps.down(oneLeft, "n2"), v)).isEmpty();
  }

  @Test
  void theCandidateHoldingTheMostWinsAndTheFirstAskedOnATie() {
    Map<String, Long> answered = new LinkedHashMap<>();
    assertThat(FailoverChoice.best(answered)).as("nobody answered").isNull();
    answered.put("n2", 40L);
    answered.put("n3", 41L);
    assertThat(FailoverChoice.best(answered)).isEqualTo("n3");
    answered.put("n4", 41L);
    assertThat(FailoverChoice.best(answered)).isEqualTo("n3");
    Map<String, Long> empty = new LinkedHashMap<>();
    empty.put("n2", 0L);
    assertThat(FailoverChoice.best(empty)).as("a replica holding nothing yet").isEqualTo("n2");
  }
}
