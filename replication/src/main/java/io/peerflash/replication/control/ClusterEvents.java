package io.peerflash.replication.control;

import io.peerflash.proto.v1.ClusterEvent;
import io.peerflash.proto.v1.ClusterEventKind;
import io.peerflash.proto.v1.CommandResult;
import io.peerflash.proto.v1.MapCommand;
import java.util.ArrayList;
import java.util.List;

/**
 * The cluster events one applied command causes: a pure function of the command and the maps before
 * and after it, so every node derives the same history from the same log. A command that failed, or
 * changed nothing worth telling an operator (a heartbeat of an UP member, a Raft admission), causes
 * none.
 *
 * <p>The events carry no seq; {@link ClusterEventLog} numbers them as it keeps them.
 */
public final class ClusterEvents {
  /** Volumes named in one member event's detail, at most; the rest are counted. */
  static final int VOLUMES_NAMED = 8;

  private ClusterEvents() {}

  public static List<ClusterEvent> of(
      long raftIndex,
      MapCommand command,
      CommandResult result,
      ClusterMap before,
      ClusterMap after) {
    if (!result.getOk() || after == before) {
      return List.of();
    }
    Events out = new Events(raftIndex, command);
    switch (command.getCommandCase()) {
      case REGISTER_MEMBER -> {
        String id = command.getRegisterMember().getId();
        Member old = before.members().get(id);
        if (old == null) {
          Member m = after.members().get(id);
          out.member(
              ClusterEventKind.EVENT_MEMBER_JOINED,
              id,
              "member "
                  + id
                  + " joined (client "
                  + m.grpcAddress()
                  + ", raft "
                  + m.raftAddress()
                  + (m.faultDomain().isEmpty() ? "" : ", fault domain " + m.faultDomain())
                  + ")");
        } else if (old.state() == Member.State.DOWN) {
          backUp(out, id, before, after);
        }
      }
      case HEARTBEAT -> {
        String id = command.getHeartbeat().getNodeId();
        Member old = before.members().get(id);
        if (old != null && old.state() == Member.State.DOWN) {
          backUp(out, id, before, after);
        }
      }
      case MARK_DOWN -> {
        String id = command.getMarkDown().getNodeId();
        String why = command.getMarkDown().getReason();
        List<String> left =
            before.volumesReplicatedOn(id).stream().map(VolumeRecord::name).toList();
        List<String> owned = before.volumesOwnedBy(id).stream().map(VolumeRecord::name).toList();
        out.member(
            ClusterEventKind.EVENT_MEMBER_DOWN,
            id,
            "member "
                + id
                + " DOWN"
                + (why.isEmpty() ? "" : ": " + why)
                + (left.isEmpty() ? "" : "; left the replicas of " + names(left))
                + (owned.isEmpty() ? "" : "; owns " + names(owned)));
      }
      case DRAIN ->
          out.member(
              ClusterEventKind.EVENT_MEMBER_DRAINING,
              command.getDrain().getNodeId(),
              "member " + command.getDrain().getNodeId() + " DRAINING: no new placements");
      case UNDRAIN ->
          out.member(
              ClusterEventKind.EVENT_MEMBER_DRAIN_CANCELLED,
              command.getUndrain().getNodeId(),
              "drain of member " + command.getUndrain().getNodeId() + " cancelled: UP again");
      case REMOVE_MEMBER ->
          out.member(
              ClusterEventKind.EVENT_MEMBER_REMOVED,
              command.getRemoveMember().getNodeId(),
              "member " + command.getRemoveMember().getNodeId() + " removed from the map");
      case CREATE_VOLUME -> {
        VolumeRecord v = after.volumes().get(command.getCreateVolume().getName());
        out.volume(
            ClusterEventKind.EVENT_VOLUME_CREATED,
            v,
            v.owner(),
            "volume "
                + v.name()
                + " created: "
                + v.sizeBytes()
                + " bytes, "
                + policy(v)
                + ", owner "
                + v.owner()
                + ", replicas "
                + list(v.replicaSet()));
      }
      case DELETE_VOLUME -> {
        VolumeRecord v = before.volumes().get(command.getDeleteVolume().getName());
        out.volume(
            ClusterEventKind.EVENT_VOLUME_DELETED,
            v,
            v.owner(),
            "volume " + v.name() + " deleted (owner " + v.owner() + ")");
      }
      case SET_POLICY -> {
        VolumeRecord old = before.volumes().get(command.getSetPolicy().getName());
        VolumeRecord v = after.volumes().get(old.name());
        out.volume(
            ClusterEventKind.EVENT_POLICY_CHANGED,
            v,
            "",
            "policy of "
                + v.name()
                + ": "
                + policy(old)
                + " -> "
                + policy(v)
                + placementChange(old, v));
      }
      case CHANGE_OWNER -> {
        VolumeRecord old = before.volumes().get(command.getChangeOwner().getVolume());
        VolumeRecord v = after.volumes().get(old.name());
        Member previous = before.members().get(old.owner());
        boolean failover = previous == null || previous.state() == Member.State.DOWN;
        out.volume(
            failover ? ClusterEventKind.EVENT_FAILOVER : ClusterEventKind.EVENT_VOLUME_MOVED,
            v,
            v.owner(),
            (failover ? "failover of " : "move of ")
                + v.name()
                + ": owner "
                + old.owner()
                + (failover ? " (DOWN)" : "")
                + " -> "
                + v.owner()
                + ", epoch "
                + old.epoch()
                + " -> "
                + v.epoch()
                + (failover ? " fences " + old.owner() : "")
                + ", replicas "
                + list(v.allReplicas()));
      }
      case SET_REPLICA_SET -> {
        VolumeRecord old = before.volumes().get(command.getSetReplicaSet().getVolume());
        VolumeRecord v = after.volumes().get(old.name());
        out.volume(
            ClusterEventKind.EVENT_REPLICA_SET_CHANGED,
            v,
            "",
            "replicas of " + v.name() + placementChange(old, v));
      }
      case ADD_REPLICAS -> {
        VolumeRecord old = before.volumes().get(command.getAddReplicas().getVolume());
        VolumeRecord v = after.volumes().get(old.name());
        List<String> added = new ArrayList<>(v.syncing());
        added.removeAll(old.syncing());
        for (String member : added) {
          out.volume(
              ClusterEventKind.EVENT_REPROTECTION_STARTED,
              v,
              member,
              "re-protection of "
                  + v.name()
                  + ": filling "
                  + member
                  + " with the dirty blocks (in sync "
                  + list(v.replicaSet())
                  + ", wants "
                  + v.requestedReplicas()
                  + ")");
        }
      }
      case REPLICA_IN_SYNC -> {
        VolumeRecord v = after.volumes().get(command.getReplicaInSync().getVolume());
        String member = command.getReplicaInSync().getMember();
        out.volume(
            ClusterEventKind.EVENT_REPLICA_IN_SYNC,
            v,
            member,
            member
                + " holds every dirty block of "
                + v.name()
                + ": in sync "
                + list(v.replicaSet())
                + " of "
                + v.requestedReplicas()
                + " wanted");
      }
      case REMOVE_REPLICA -> {
        VolumeRecord old = before.volumes().get(command.getRemoveReplica().getVolume());
        VolumeRecord v = after.volumes().get(old.name());
        String member = command.getRemoveReplica().getMember();
        if (old.allReplicas().contains(member)) {
          out.volume(
              ClusterEventKind.EVENT_REPLICA_REMOVED,
              v,
              member,
              member
                  + " removed from the replicas of "
                  + v.name()
                  + ", epoch "
                  + old.epoch()
                  + " -> "
                  + v.epoch()
                  + " (left "
                  + list(v.allReplicas())
                  + " of "
                  + v.requestedReplicas()
                  + " wanted)");
        }
      }
      default -> {}
    }
    return out.list;
  }

  private static void backUp(Events out, String id, ClusterMap before, ClusterMap after) {
    List<String> fenced =
        after.volumesOwnedBy(id).stream()
            .filter(v -> before.volumes().containsKey(v.name()))
            .map(VolumeRecord::name)
            .toList();
    out.member(
        ClusterEventKind.EVENT_MEMBER_UP,
        id,
        "member "
            + id
            + " UP again"
            + (fenced.isEmpty()
                ? ""
                : "; epochs of the volumes it owns bumped (" + names(fenced) + ")"));
  }

  private static String policy(VolumeRecord v) {
    return v.mode()
        + " replicas "
        + v.requestedReplicas()
        + " on-peer-loss "
        + v.onPeerLoss().name().replace("ON_PEER_LOSS_", "");
  }

  private static String placementChange(VolumeRecord old, VolumeRecord v) {
    if (old.replicaSet().equals(v.replicaSet())
        && old.syncing().equals(v.syncing())
        && old.epoch() == v.epoch()) {
      return "";
    }
    return "; replicas "
        + list(old.allReplicas())
        + " -> "
        + list(v.allReplicas())
        + ", epoch "
        + old.epoch()
        + " -> "
        + v.epoch();
  }

  private static String list(List<String> ids) {
    return "[" + String.join(", ", ids) + "]";
  }

  private static String names(List<String> volumes) {
    if (volumes.size() <= VOLUMES_NAMED) {
      return String.join(", ", volumes);
    }
    return String.join(", ", volumes.subList(0, VOLUMES_NAMED))
        + " and "
        + (volumes.size() - VOLUMES_NAMED)
        + " more";
  }

  /** Collects the events of one command with the fields every one of them carries. */
  private static final class Events {
    final List<ClusterEvent> list = new ArrayList<>(1);
    final long raftIndex;
    final MapCommand command;

    Events(long raftIndex, MapCommand command) {
      this.raftIndex = raftIndex;
      this.command = command;
    }

    void member(ClusterEventKind kind, String node, String detail) {
      add(kind, "", node, 0, detail);
    }

    void volume(ClusterEventKind kind, VolumeRecord v, String node, String detail) {
      add(kind, v.name(), node, v.epoch(), detail);
    }

    private void add(ClusterEventKind kind, String volume, String node, long epoch, String detail) {
      String reason = command.getReason();
      list.add(
          ClusterEvent.newBuilder()
              .setTimeMs(command.getProposedAtMs())
              .setKind(kind)
              .setVolume(volume)
              .setNode(node)
              .setEpoch(epoch)
              .setDetail(reason.isEmpty() ? detail : detail + "; reason: " + reason)
              .setRaftIndex(raftIndex)
              .setProposedBy(command.getProposedBy())
              .build());
    }
  }
}
