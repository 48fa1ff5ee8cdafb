package io.peerflash.node.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.peerflash.replication.control.ClusterMap;
import io.peerflash.replication.control.VolumeRecord;
import io.peerflash.replication.data.ReplicaException;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * The two fencing rules, case by case, on a real cluster map: when an owner may serve (a valid
 * lease, begun before its last linearizable read, and the map naming it owner), and when a replica
 * takes a copy (the sender the owner at the map's epoch, this node among its replicas; a wait when
 * this node is behind, a refusal when the sender is).
 */
class FencingTest {
  private static final ClusterMap map =
      TestMaps.withVolume(TestMaps.members("n1", "n2", "n3"), "v", 1, "n1");

  private static VolumeRecord v() {
    return map.volume("v").orElseThrow();
  }

  @Test
  void anOwnerServesOnlyWithAValidLeaseBegunBeforeItsLastReadAndTheMapNamingIt() {
    assertThat(v().owner()).isEqualTo("n1");
    assertThat(Fencing.serve("n1", true, true, 3, 3, map, "v")).isEqualTo(Fencing.Serve.YES);
    // (a) no valid lease, or not in step with the map yet
    assertThat(Fencing.serve("n1", true, false, 3, 3, map, "v")).isEqualTo(Fencing.Serve.NO);
    assertThat(Fencing.serve("n1", false, true, 3, 3, map, "v")).isEqualTo(Fencing.Serve.NO);
    // (b) a lease began since the last read: read the map again first
    assertThat(Fencing.serve("n1", true, true, 4, 3, map, "v")).isEqualTo(Fencing.Serve.RESYNC);
    // (c) the map names another owner, or no such volume
    assertThat(Fencing.serve("n2", true, true, 3, 3, map, "v")).isEqualTo(Fencing.Serve.NO);
    assertThat(Fencing.serve("n1", true, true, 3, 3, map, "gone")).isEqualTo(Fencing.Serve.NO);
    // Without a lease nothing else counts, a resync included.
    assertThat(Fencing.serve("n1", true, false, 4, 3, map, "v")).isEqualTo(Fencing.Serve.NO);
  }

  @Test
  void aReplicaTakesCopiesOnlyFromTheOwnerAtTheMapsEpoch() throws Exception {
    VolumeRecord rec = v();
    String replica = rec.replicaSet().get(0);
    String other = "n2".equals(replica) ? "n3" : "n2";
    long epoch = rec.epoch();
    AtomicInteger asked = new AtomicInteger();

    assertThat(Fencing.acceptCopy(replica, rec, true, () -> true, "v", epoch, "n1")).isTrue();
    // Behind: no map entry, an older map, not in step, or the engine not holding it yet: wait.
    assertThat(Fencing.acceptCopy(replica, null, true, () -> true, "v", epoch, "n1")).isFalse();
    assertThat(Fencing.acceptCopy(replica, rec, true, () -> true, "v", epoch + 1, "n1")).isFalse();
    assertThat(Fencing.acceptCopy(replica, rec, false, () -> true, "v", epoch, "n1")).isFalse();
    assertThat(Fencing.acceptCopy(replica, rec, true, () -> false, "v", epoch, "n1")).isFalse();
    // The engine is asked last: not at all when the map already says wait.
    Fencing.acceptCopy(
        replica,
        rec,
        false,
        () -> {
          asked.incrementAndGet();
          return true;
        },
        "v",
        epoch,
        "n1");
    assertThat(asked).hasValue(0);

    // The sender is behind (a stale epoch), not the owner, or this node is no replica: refused.
    assertThat(epoch).as("a created volume's epoch").isPositive();
    assertThatThrownBy(
            () -> Fencing.acceptCopy(replica, rec, true, () -> true, "v", epoch - 1, "n1"))
        .isInstanceOf(ReplicaException.class);
    assertThatThrownBy(() -> Fencing.acceptCopy(replica, rec, true, () -> true, "v", epoch, other))
        .isInstanceOf(ReplicaException.class)
        .hasMessageContaining("the owner is n1");
    assertThatThrownBy(() -> Fencing.acceptCopy(other, rec, true, () -> true, "v", epoch, "n1"))
        .isInstanceOf(ReplicaException.class)
        .satisfies(
            e ->
                assertThat(((ReplicaException) e).code())
                    .isEqualTo(ReplicaException.Code.FAILED_PRECONDITION));
  }
}
