package io.peerflash.node.cluster;

import io.peerflash.replication.control.ClusterMap;
import io.peerflash.replication.control.Member;
import io.peerflash.replication.control.VolumeRecord;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The leader's failover decision as a function of the map and of what the replicas answer, apart
 * from the calls that ask them ({@link ClusterNode}), so that the simulation of fencing and
 * failover runs the same rule.
 */
final class FailoverChoice {
  private FailoverChoice() {}

  /** The volume's owner is gone from the map or DOWN: its volume needs a new owner. */
  static boolean ownerLost(ClusterMap map, VolumeRecord rec) {
    Optional<Member> owner = map.member(rec.owner());
    return owner.isEmpty() || !owner.get().isAlive();
  }

  /** Who may take the volume over: in-sync replicas (never syncing ones) that are UP. */
  static List<String> candidates(ClusterMap map, VolumeRecord rec) {
    List<String> out = new ArrayList<>();
    for (String candidate : rec.replicaSet()) {
      Optional<Member> m = map.member(candidate);
      if (m.isPresent() && m.get().isUp()) {
        out.add(candidate);
      }
    }
    return out;
  }

  /**
   * The candidate holding the most: the highest sequence it answered, the first asked on a tie;
   * null when none answered.
   *
   * @param answered each candidate that answered, in the order asked, with its highest sequence
   */
  static String best(Map<String, Long> answered) {
    String best = null;
    long bestSeq = -1;
    for (Map.Entry<String, Long> e : answered.entrySet()) {
      if (e.getValue() > bestSeq) {
        bestSeq = e.getValue();
        best = e.getKey();
      }
    }
    return best;
  }
}
