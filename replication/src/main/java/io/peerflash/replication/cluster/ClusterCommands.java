package io.peerflash.replication.cluster;

import io.peerflash.proto.v1.ClusterCommand;
import java.util.Collection;
import java.util.List;

/**
 * Builders for the volume commands that compare and set on an epoch: each applies only while the
 * volume is still at {@code expectedEpoch} (see {@link ClusterMap#apply}).
 */
public final class ClusterCommands {
  private ClusterCommands() {}

  /** Makes {@code newOwner} the volume's owner. */
  public static ClusterCommand changeOwner(String volume, String newOwner, long expectedEpoch) {
    return ClusterCommand.newBuilder()
        .setChangeOwner(
            ClusterCommand.ChangeOwner.newBuilder()
                .setVolume(volume)
                .setNewOwner(newOwner)
                .setExpectedEpoch(expectedEpoch))
        .build();
  }

  /** Takes {@code member} out of the volume's replica set (or its syncing list). */
  public static ClusterCommand removeReplica(String volume, String member, long expectedEpoch) {
    return ClusterCommand.newBuilder()
        .setRemoveReplica(
            ClusterCommand.RemoveReplica.newBuilder()
                .setVolume(volume)
                .setMember(member)
                .setExpectedEpoch(expectedEpoch))
        .build();
  }

  /** Moves a syncing {@code member} into the replica set: it holds every dirty block now. */
  public static ClusterCommand replicaInSync(String volume, String member, long expectedEpoch) {
    return ClusterCommand.newBuilder()
        .setReplicaInSync(
            ClusterCommand.ReplicaInSync.newBuilder()
                .setVolume(volume)
                .setMember(member)
                .setExpectedEpoch(expectedEpoch))
        .build();
  }

  /** Picks new syncing replicas up to the volume's policy, none of {@code exclude}. */
  public static ClusterCommand addReplicas(
      String volume, long expectedEpoch, Collection<String> exclude) {
    return ClusterCommand.newBuilder()
        .setAddReplicas(
            ClusterCommand.AddReplicas.newBuilder()
                .setVolume(volume)
                .setExpectedEpoch(expectedEpoch)
                .addAllExclude(exclude))
        .build();
  }

  /** Sets the volume's replica set to exactly {@code replicas}. */
  public static ClusterCommand setReplicaSet(
      String volume, long expectedEpoch, List<String> replicas) {
    return ClusterCommand.newBuilder()
        .setSetReplicaSet(
            ClusterCommand.SetReplicaSet.newBuilder()
                .setVolume(volume)
                .addAllReplicas(replicas)
                .setExpectedEpoch(expectedEpoch))
        .build();
  }
}
