package io.peerflash.node.health;

import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.ClusterMember;
import io.peerflash.proto.v1.ClusterVolume;
import io.peerflash.proto.v1.MemberState;
import io.peerflash.proto.v1.OnPeerLoss;
import io.peerflash.proto.v1.VolumeProblem;
import io.peerflash.proto.v1.VolumeState;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;

/**
 * The one place a volume's state is decided: from its entry in the cluster map, the members' states
 * and, when known, what its owner reports. Pure: the node answering {@code GetVolume} and {@code
 * peerflash cluster health} call it with what each knows, so both say the same.
 */
public final class VolumeHealth {
  private VolumeHealth() {}

  /**
   * What the owner's engine says of the volume.
   *
   * @param engineState HEALTHY, STORAGE_FAILING, CORRUPT_DIRTY_DATA or LOCAL_FLASH_FAILED
   * @param engineDetail why, for a state other than HEALTHY
   * @param dirtyBytes the volume's dirty bytes on the owner
   * @param fencedReason empty while the owner may serve the volume; otherwise why not
   */
  public record OwnerReport(
      VolumeState engineState, String engineDetail, long dirtyBytes, String fencedReason) {}

  /** A volume's state (its worst problem, HEALTHY when none) and every problem, worst first. */
  public record Assessment(VolumeState state, String reason, List<VolumeProblem> problems) {
    public boolean healthy() {
      return problems.isEmpty();
    }
  }

  /** Worst first: what {@link Assessment#state()} shows when several things are wrong. */
  private static final List<VolumeState> SEVERITY =
      List.of(
          VolumeState.OFFLINE,
          VolumeState.LOCAL_FLASH_FAILED,
          VolumeState.CORRUPT_DIRTY_DATA,
          VolumeState.FENCED,
          VolumeState.STORAGE_FAILING,
          VolumeState.AT_RISK,
          VolumeState.DEGRADED);

  /** States that mean data cannot be served or may be lost: HEALTH_ERR. */
  public static boolean isError(VolumeState state) {
    return state == VolumeState.OFFLINE
        || state == VolumeState.LOCAL_FLASH_FAILED
        || state == VolumeState.CORRUPT_DIRTY_DATA;
  }

  /** A volume of a single node (no cluster map): only its engine's report counts. */
  public static Assessment assess(OwnerReport owner) {
    List<VolumeProblem> problems = new ArrayList<>();
    engineProblems(owner, problems);
    return conclude(problems);
  }

  /**
   * A volume of a cluster.
   *
   * @param members the map's members by id
   * @param owner what the owner reports, or null when the caller does not know (the owner is down,
   *     or the answering node is not the owner)
   */
  public static Assessment assess(
      ClusterVolume vol, Map<String, ClusterMember> members, OwnerReport owner) {
    List<VolumeProblem> problems = new ArrayList<>();
    ClusterMember ownerMember = members.get(vol.getOwner());
    boolean ownerDown = ownerMember == null || ownerMember.getState() == MemberState.MEMBER_DOWN;
    List<String> takers =
        vol.getReplicaSetList().stream()
            .filter(id -> state(members, id) == MemberState.MEMBER_UP)
            .toList();
    if (ownerDown) {
      String who =
          ownerMember == null
              ? "its owner " + vol.getOwner() + " is no longer a member"
              : "its owner " + vol.getOwner() + " is DOWN";
      if (takers.isEmpty()) {
        problems.add(
            problem(
                VolumeState.OFFLINE,
                who
                    + " and no in-sync replica can take over ("
                    + (vol.getRequestedReplicas() == 0 || vol.getMode() != CacheMode.WRITE_BACK
                        ? "the volume keeps no replicas"
                        : "in-sync replicas: none UP of " + vol.getReplicaSetList())
                    + "); I/O fails until "
                    + vol.getOwner()
                    + " is back"));
        return conclude(problems);
      }
      problems.add(
          problem(
              VolumeState.DEGRADED,
              who
                  + "; failover to an in-sync replica ("
                  + String.join(", ", takers)
                  + ") pending"));
    }
    if (owner != null && !ownerDown) {
      engineProblems(owner, problems);
    }
    if (vol.getMode() == CacheMode.WRITE_BACK) {
      long copies =
          vol.getReplicaSetList().stream()
              .filter(
                  id -> members.containsKey(id) && state(members, id) != MemberState.MEMBER_DOWN)
              .count();
      int wanted = vol.getRequestedReplicas();
      if (copies < wanted) {
        problems.add(replicationProblem(vol, members, copies, owner));
      }
    }
    return conclude(problems);
  }

  private static VolumeProblem replicationProblem(
      ClusterVolume vol, Map<String, ClusterMember> members, long copies, OwnerReport owner) {
    int wanted = vol.getRequestedReplicas();
    StringBuilder why = new StringBuilder();
    why.append(copies).append(" of ").append(wanted).append(" wanted replicas in sync");
    long others =
        members.values().stream()
            .filter(m -> m.getState() == MemberState.MEMBER_UP && !m.getId().equals(vol.getOwner()))
            .count();
    if (!vol.getSyncingList().isEmpty()) {
      why.append(", re-protecting to ").append(String.join(", ", vol.getSyncingList()));
    } else if (others < wanted) {
      why.append(", and the cluster has only ")
          .append(others)
          .append(others == 1 ? " other UP member" : " other UP members")
          .append(" to hold them");
    }
    OnPeerLoss policy = vol.getOnPeerLoss();
    if (policy == OnPeerLoss.ON_PEER_LOSS_ACCEPT) {
      why.append(": writes are acknowledged with fewer copies");
      if (owner != null) {
        why.append(" (").append(owner.dirtyBytes()).append(" dirty bytes at risk)");
      }
      return problem(VolumeState.AT_RISK, why.toString());
    }
    if (policy == OnPeerLoss.ON_PEER_LOSS_BLOCK) {
      why.append(": writes wait for re-protection (peer-loss-wait-ms), then fail");
    } else {
      why.append(": writes go through to shared storage");
    }
    return problem(VolumeState.DEGRADED, why.toString());
  }

  private static void engineProblems(OwnerReport owner, List<VolumeProblem> problems) {
    if (owner == null) {
      return;
    }
    VolumeState s = owner.engineState();
    if (s != VolumeState.HEALTHY && s != VolumeState.VOLUME_STATE_UNSPECIFIED) {
      problems.add(problem(s, owner.engineDetail()));
    }
    if (!owner.fencedReason().isEmpty()) {
      problems.add(problem(VolumeState.FENCED, owner.fencedReason()));
    }
  }

  private static MemberState state(Map<String, ClusterMember> members, String id) {
    ClusterMember m = members.get(id);
    return m == null ? MemberState.MEMBER_DOWN : m.getState();
  }

  private static VolumeProblem problem(VolumeState state, String reason) {
    return VolumeProblem.newBuilder().setState(state).setReason(reason).build();
  }

  private static Assessment conclude(List<VolumeProblem> problems) {
    List<VolumeProblem> sorted = new ArrayList<>(problems);
    sorted.sort(Comparator.comparingInt(p -> rank(p.getState())));
    if (sorted.isEmpty()) {
      return new Assessment(VolumeState.HEALTHY, "", List.of());
    }
    return new Assessment(sorted.get(0).getState(), sorted.get(0).getReason(), List.copyOf(sorted));
  }

  private static int rank(VolumeState s) {
    int i = SEVERITY.indexOf(s);
    return i < 0 ? SEVERITY.size() : i;
  }
}
