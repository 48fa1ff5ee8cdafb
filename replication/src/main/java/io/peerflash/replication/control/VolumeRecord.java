package io.peerflash.replication.control;

import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.ClusterVolume;
import io.peerflash.proto.v1.OnPeerLoss;
import java.util.List;
import java.util.Objects;

/**
 * A volume as the {@link ClusterMap} knows it: its policy and who serves it.
 *
 * @param id cluster-wide id assigned by the map, never reused (a re-created name gets a new id)
 * @param name unique name
 * @param sizeBytes size in bytes
 * @param mode cache mode
 * @param requestedReplicas peer copies the policy asks for (0-2)
 * @param onPeerLoss what to do while fewer peers than requested hold copies
 * @param owner the node serving and destaging the volume
 * @param epoch incremented on every change of owner or replica set; never decreases
 * @param replicaSet in-sync peers, each holding a copy of every dirty block: distinct, never
 *     containing the owner; only these may take the volume over
 * @param syncing peers being filled by re-protection: they receive every new write but count as
 *     copies only once in sync; distinct, disjoint from the owner and the replica set
 */
public record VolumeRecord(
    long id,
    String name,
    long sizeBytes,
    CacheMode mode,
    int requestedReplicas,
    OnPeerLoss onPeerLoss,
    String owner,
    long epoch,
    List<String> replicaSet,
    List<String> syncing) {

  public VolumeRecord {
    Objects.requireNonNull(name, "name");
    Objects.requireNonNull(mode, "mode");
    Objects.requireNonNull(onPeerLoss, "onPeerLoss");
    Objects.requireNonNull(owner, "owner");
    replicaSet = List.copyOf(replicaSet);
    syncing = List.copyOf(syncing);
  }

  /** Every peer that must receive the volume's writes: in-sync replicas, then syncing ones. */
  public List<String> allReplicas() {
    if (syncing.isEmpty()) {
      return replicaSet;
    }
    List<String> all = new java.util.ArrayList<>(replicaSet);
    all.addAll(syncing);
    return List.copyOf(all);
  }

  /** Peer copies actually assigned now (at most {@link #requestedReplicas()}). */
  public int effectiveReplicas() {
    return replicaSet.size();
  }

  /** Fewer replica peers are assigned than the policy requests. */
  public boolean underReplicated() {
    return replicaSet.size() < requestedReplicas;
  }

  VolumeRecord withPlacement(String newOwner, List<String> newReplicas) {
    return withPlacement(newOwner, newReplicas, syncing);
  }

  VolumeRecord withPlacement(String newOwner, List<String> newReplicas, List<String> newSyncing) {
    return new VolumeRecord(
        id,
        name,
        sizeBytes,
        mode,
        requestedReplicas,
        onPeerLoss,
        newOwner,
        epoch + 1,
        newReplicas,
        newSyncing);
  }

  VolumeRecord withPolicy(
      CacheMode newMode,
      int newReplicas,
      OnPeerLoss newOnPeerLoss,
      List<String> newSet,
      List<String> newSyncing) {
    long newEpoch = newSet.equals(replicaSet) && newSyncing.equals(syncing) ? epoch : epoch + 1;
    return new VolumeRecord(
        id,
        name,
        sizeBytes,
        newMode,
        newReplicas,
        newOnPeerLoss,
        owner,
        newEpoch,
        newSet,
        newSyncing);
  }

  public ClusterVolume toProto() {
    return ClusterVolume.newBuilder()
        .setId(id)
        .setName(name)
        .setSizeBytes(sizeBytes)
        .setMode(mode)
        .setRequestedReplicas(requestedReplicas)
        .setOnPeerLoss(onPeerLoss)
        .setOwner(owner)
        .setEpoch(epoch)
        .addAllReplicaSet(replicaSet)
        .addAllSyncing(syncing)
        .build();
  }

  public static VolumeRecord fromProto(ClusterVolume p) {
    return new VolumeRecord(
        p.getId(),
        p.getName(),
        p.getSizeBytes(),
        p.getMode(),
        p.getRequestedReplicas(),
        p.getOnPeerLoss(),
        p.getOwner(),
        p.getEpoch(),
        p.getReplicaSetList(),
        p.getSyncingList());
  }
}
