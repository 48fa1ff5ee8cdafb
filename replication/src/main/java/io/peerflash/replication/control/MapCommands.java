package io.peerflash.replication.control;

import io.peerflash.proto.v1.MapCommand;
import java.util.Collection;
import java.util.List;

/**
 * Builders for the volume commands that compare and set on an epoch: each applies only while the
 * volume is still at {@code expectedEpoch} (see {@link ClusterMap#apply}).
 */
public final class MapCommands {
  private MapCommands() {}

  /**
   * {@code command} as a node proposes it: stamped with its wall clock (unless already set) and its
   * id. The event history takes both from the command, because the state machine is deterministic
   * and reads no clock.
   */
  public static MapCommand proposed(MapCommand command, long nowMs, String nodeId) {
    return command.toBuilder()
        .setProposedAtMs(command.getProposedAtMs() != 0 ? command.getProposedAtMs() : nowMs)
        .setProposedBy(nodeId)
        .build();
  }

  /** {@code command} with why it is proposed, for the event history. */
  public static MapCommand because(MapCommand command, String reason) {
    return command.toBuilder().setReason(reason).build();
  }

  /** Makes {@code newOwner} the volume's owner. */
  public static MapCommand changeOwner(String volume, String newOwner, long expectedEpoch) {
    return MapCommand.newBuilder()
        .setChangeOwner(
            MapCommand.ChangeOwner.newBuilder()
                .setVolume(volume)
                .setNewOwner(newOwner)
                .setExpectedEpoch(expectedEpoch))
        .build();
  }

  /** Takes {@code member} out of the volume's replica set (or its syncing list). */
  public static MapCommand removeReplica(String volume, String member, long expectedEpoch) {
    return MapCommand.newBuilder()
        .setRemoveReplica(
            MapCommand.RemoveReplica.newBuilder()
                .setVolume(volume)
                .setMember(member)
                .setExpectedEpoch(expectedEpoch))
        .build();
  }

  /** Moves a syncing {@code member} into the replica set: it holds every dirty block now. */
  public static MapCommand replicaInSync(String volume, String member, long expectedEpoch) {
    return MapCommand.newBuilder()
        .setReplicaInSync(
            MapCommand.ReplicaInSync.newBuilder()
                .setVolume(volume)
                .setMember(member)
                .setExpectedEpoch(expectedEpoch))
        .build();
  }

  /** Picks new syncing replicas up to the volume's policy, none of {@code exclude}. */
  public static MapCommand addReplicas(
      String volume, long expectedEpoch, Collection<String> exclude) {
    return MapCommand.newBuilder()
        .setAddReplicas(
            MapCommand.AddReplicas.newBuilder()
                .setVolume(volume)
                .setExpectedEpoch(expectedEpoch)
                .addAllExclude(exclude))
        .build();
  }

  /** Sets the volume's replica set to exactly {@code replicas}. */
  public static MapCommand setReplicaSet(String volume, long expectedEpoch, List<String> replicas) {
    return MapCommand.newBuilder()
        .setSetReplicaSet(
            MapCommand.SetReplicaSet.newBuilder()
                .setVolume(volume)
                .addAllReplicas(replicas)
                .setExpectedEpoch(expectedEpoch))
        .build();
  }
}
