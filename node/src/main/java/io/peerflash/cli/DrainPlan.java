package io.peerflash.cli;

import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.ClusterMember;
import io.peerflash.proto.v1.ClusterStatus;
import io.peerflash.proto.v1.ClusterVolume;
import io.peerflash.proto.v1.MemberState;
import java.util.ArrayList;
import java.util.List;

/**
 * What stands in the way of draining a node, read from the cluster map before the drain starts (so
 * it fails at once with the reason and the fix, instead of waiting out its timeout) and at each
 * poll while it runs (so the progress line says what it waits for).
 */
final class DrainPlan {
  private DrainPlan() {}

  /** Each thing that keeps {@code node} from being emptied, with its fix; empty when none. */
  static List<String> blockers(ClusterStatus status, String node) {
    List<String> blockers = new ArrayList<>();
    List<String> up = new ArrayList<>();
    for (ClusterMember m : status.getMembersList()) {
      if (m.getState() == MemberState.MEMBER_UP && !m.getId().equals(node)) {
        up.add(m.getId());
      }
    }
    for (ClusterVolume v : status.getVolumesList()) {
      if (v.getOwner().equals(node) && up.isEmpty()) {
        blockers.add(
            "volume "
                + v.getName()
                + " is owned by "
                + node
                + " and no other member is UP to take it over: start or add a node"
                + " (cluster add-node)");
      }
      boolean replica = v.getReplicaSetList().contains(node) || v.getSyncingList().contains(node);
      if (replica && v.getMode() == CacheMode.WRITE_BACK && v.getRequestedReplicas() > 0) {
        List<String> candidates = new ArrayList<>(up);
        candidates.remove(v.getOwner());
        candidates.removeAll(v.getReplicaSetList());
        candidates.removeAll(v.getSyncingList());
        if (candidates.isEmpty()) {
          int keep = v.getRequestedReplicas() - 1;
          blockers.add(
              "no UP member can take another replica of volume "
                  + v.getName()
                  + " (it wants "
                  + v.getRequestedReplicas()
                  + "; owner "
                  + v.getOwner()
                  + ", replicas "
                  + String.join(", ", v.getReplicaSetList())
                  + "): add a node (cluster add-node), or lower its replicas (volume set-policy "
                  + v.getName()
                  + " --replicas "
                  + keep
                  + ")");
        }
      }
    }
    return blockers;
  }

  /**
   * A warning when removing {@code node} leaves an even number of Raft voters (every member is a
   * voter), or null.
   */
  static String evenVotersWarning(ClusterStatus status, String node) {
    long after = status.getMembersList().stream().filter(m -> !m.getId().equals(node)).count();
    if (after < 2 || after % 2 != 0) {
      return null;
    }
    return "after removing "
        + node
        + " the Raft group has "
        + after
        + " voters: an even number survives no more failures than "
        + (after - 1)
        + " would ("
        + ((after - 1) / 2)
        + "); add a node to make it "
        + (after + 1);
  }
}
