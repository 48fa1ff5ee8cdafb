package io.peerflash.node.health;

import io.peerflash.proto.v1.ClusterMember;
import io.peerflash.proto.v1.ClusterStatus;
import io.peerflash.proto.v1.ClusterVolume;
import io.peerflash.proto.v1.MemberState;
import io.peerflash.proto.v1.NodeStatus;
import io.peerflash.proto.v1.Volume;
import io.peerflash.proto.v1.VolumeState;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The cluster's health in one word and its reasons, as {@code ceph -s} puts it: HEALTH_OK,
 * HEALTH_WARN (something runs with less margin than asked: a member down or draining, a volume
 * degraded or at risk, an even number of voters) or HEALTH_ERR (data cannot be served or may be
 * lost: a volume offline, corrupt or on failed flash, no Raft leader). Pure, over the cluster map
 * and what each node reported; volumes are judged by {@link VolumeHealth}.
 */
public final class ClusterHealth {
  private ClusterHealth() {}

  public enum Level {
    HEALTH_OK,
    HEALTH_WARN,
    HEALTH_ERR
  }

  /** One reason, with the level it alone would give. */
  public record Reason(Level level, String text) {}

  public record Report(Level level, List<Reason> reasons) {}

  /**
   * @param status the map as one node sees it
   * @param nodes each member's own status, by id (members that did not answer are absent)
   * @param unanswered why a live member did not answer, by id
   */
  public static Report summarize(
      ClusterStatus status, Map<String, NodeStatus> nodes, Map<String, String> unanswered) {
    List<Reason> reasons = new ArrayList<>();
    if (status.getLeaderId().isEmpty()) {
      reasons.add(
          new Reason(
              Level.HEALTH_ERR,
              "no Raft leader: fewer than a majority of voters reach each other; the cluster map"
                  + " cannot change (no failover)"));
    }
    Map<String, ClusterMember> members = new LinkedHashMap<>();
    for (ClusterMember m : status.getMembersList()) {
      members.put(m.getId(), m);
      if (m.getState() == MemberState.MEMBER_DOWN) {
        reasons.add(new Reason(Level.HEALTH_WARN, "member " + m.getId() + " is DOWN"));
      } else if (m.getState() == MemberState.MEMBER_DRAINING) {
        reasons.add(new Reason(Level.HEALTH_WARN, "member " + m.getId() + " is DRAINING"));
      }
    }
    int voters = members.size();
    if (voters > 1 && voters % 2 == 0) {
      reasons.add(
          new Reason(
              Level.HEALTH_WARN,
              voters
                  + " Raft voters: an even number survives no more failures than "
                  + (voters - 1)
                  + " would ("
                  + ((voters - 1) / 2)
                  + "); add or remove one"));
    }
    for (Map.Entry<String, String> e : unanswered.entrySet()) {
      reasons.add(
          new Reason(
              Level.HEALTH_WARN, "member " + e.getKey() + " did not answer: " + e.getValue()));
    }
    for (NodeStatus n : nodes.values()) {
      if (!n.getLocalFlashFailure().isEmpty()) {
        reasons.add(
            new Reason(
                Level.HEALTH_ERR,
                "node " + n.getNodeId() + ": local flash failed: " + n.getLocalFlashFailure()));
      }
      if (!n.getLocalIndexProblem().isEmpty()) {
        reasons.add(
            new Reason(
                Level.HEALTH_WARN,
                "node " + n.getNodeId() + ": index not writable: " + n.getLocalIndexProblem()));
      }
      if (!n.getCertificateWarning().isEmpty()) {
        reasons.add(
            new Reason(
                Level.HEALTH_WARN,
                "node " + n.getNodeId() + ": certificate: " + n.getCertificateWarning()));
      }
    }
    for (ClusterVolume v : status.getVolumesList()) {
      VolumeHealth.Assessment a = VolumeHealth.assess(v, members, ownerReport(v, nodes));
      if (!a.healthy()) {
        reasons.add(
            new Reason(
                VolumeHealth.isError(a.state()) ? Level.HEALTH_ERR : Level.HEALTH_WARN,
                "volume " + v.getName() + " is " + a.state() + ": " + a.reason()));
      }
    }
    Level level = Level.HEALTH_OK;
    for (Reason r : reasons) {
      if (r.level().compareTo(level) > 0) {
        level = r.level();
      }
    }
    // Errors first, then warnings, each in the order found.
    List<Reason> sorted = new ArrayList<>(reasons);
    sorted.sort((x, y) -> y.level().compareTo(x.level()));
    return new Report(level, List.copyOf(sorted));
  }

  /** What the volume's owner said of it, or null when it did not answer or does not hold it. */
  static VolumeHealth.OwnerReport ownerReport(ClusterVolume v, Map<String, NodeStatus> nodes) {
    NodeStatus owner = nodes.get(v.getOwner());
    if (owner == null) {
      return null;
    }
    for (Volume vol : owner.getVolumesList()) {
      if (vol.getName().equals(v.getName())) {
        // The node's status judges its engine alone (no map): its state is the engine's.
        VolumeState engine = vol.getState();
        return new VolumeHealth.OwnerReport(
            engine, vol.getStateDetail(), vol.getDirtyBytes(), owner.getFencedReason());
      }
    }
    return null;
  }
}
