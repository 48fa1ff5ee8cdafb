package io.peerflash.replication.control;

import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.proto.v1.ClusterError;
import io.peerflash.proto.v1.MapCommand;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

class RaftAdmissionsTest {
  static MapCommand admit(String id, long untilMs) {
    return MapCommand.newBuilder()
        .setAdmitRaftPeer(
            MapCommand.AdmitRaftPeer.newBuilder()
                .setNodeId(id)
                .setRaftAddress(id + ":9860")
                .setUntilMs(untilMs))
        .build();
  }

  /** Applies like the state machine does: through the map, then to the listener. */
  static ClusterMap apply(RaftAdmissions admissions, ClusterMap map, MapCommand c) {
    ClusterMap.Applied applied = map.apply(c);
    admissions.onApplied(1, c, applied.result(), applied.map());
    return applied.map();
  }

  @Test
  void anAdmissionLeavesTheMapAloneAndLastsUntilItsDeadline() {
    RaftAdmissions admissions = new RaftAdmissions();
    ClusterMap map = apply(admissions, ClusterMap.EMPTY, admit("n4", 10_000));
    assertThat(map).isSameAs(ClusterMap.EMPTY);
    assertThat(admissions.current(9_999, Set.of())).isEqualTo(Map.of("n4", "n4:9860"));
    // Replayed after its deadline (a restart), it admits nobody.
    assertThat(admissions.current(10_000, Set.of())).isEmpty();
  }

  @Test
  void anAdmissionIsWithdrawnOrEndsOnceTheConfigurationNamesTheNode() {
    RaftAdmissions admissions = new RaftAdmissions();
    apply(admissions, ClusterMap.EMPTY, admit("n4", 10_000));
    apply(admissions, ClusterMap.EMPTY, admit("n4", 0));
    assertThat(admissions.current(0, Set.of())).isEmpty();

    apply(admissions, ClusterMap.EMPTY, admit("n5", 10_000));
    assertThat(admissions.current(0, Set.of("n1", "n5"))).isEmpty();
    // Removed from the configuration later: the admission does not come back.
    assertThat(admissions.current(0, Set.of("n1"))).isEmpty();
  }

  @Test
  void anAdmissionWithoutANodeIdIsRefused() {
    RaftAdmissions admissions = new RaftAdmissions();
    ClusterMap.Applied applied = ClusterMap.EMPTY.apply(admit("", 10_000));
    assertThat(applied.result().getError()).isEqualTo(ClusterError.CLUSTER_ERROR_INVALID_ARGUMENT);
    admissions.onApplied(1, admit("", 10_000), applied.result(), applied.map());
    assertThat(admissions.current(0, Set.of())).isEmpty();
  }
}
