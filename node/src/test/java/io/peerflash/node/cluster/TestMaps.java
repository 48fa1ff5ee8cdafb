package io.peerflash.node.cluster;

import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.MapCommand;
import io.peerflash.replication.control.ClusterMap;

/** Cluster maps built by applying the commands Raft would commit, for the decisions' own tests. */
final class TestMaps {
  private TestMaps() {}

  /** Members {@code ids} registered and UP, each its own fault domain. */
  static ClusterMap members(String... ids) {
    ClusterMap map = ClusterMap.EMPTY;
    for (String id : ids) {
      map =
          apply(
              map,
              MapCommand.newBuilder()
                  .setRegisterMember(
                      MapCommand.RegisterMember.newBuilder()
                          .setId(id)
                          .setGrpcAddress(id + ":1")
                          .setRaftAddress(id + ":2")
                          .setFaultDomain(id))
                  .build());
    }
    return map;
  }

  /** A 1 MiB write-back volume created with {@code replicas} replicas, owned by {@code owner}. */
  static ClusterMap withVolume(ClusterMap map, String name, int replicas, String owner) {
    return apply(
        map,
        MapCommand.newBuilder()
            .setCreateVolume(
                MapCommand.CreateVolume.newBuilder()
                    .setName(name)
                    .setSizeBytes(1 << 20)
                    .setMode(CacheMode.WRITE_BACK)
                    .setReplicas(replicas)
                    .setPreferredOwner(owner))
            .build());
  }

  /** {@code id} marked DOWN unconditionally, as an operator may. */
  static ClusterMap down(ClusterMap map, String id) {
    return apply(
        map,
        MapCommand.newBuilder()
            .setMarkDown(MapCommand.MarkDown.newBuilder().setNodeId(id).setReason("test"))
            .build());
  }

  static ClusterMap apply(ClusterMap map, MapCommand command) {
    ClusterMap.Applied a = map.apply(command);
    if (!a.result().getOk()) {
      throw new IllegalStateException("not applied: " + command + " -> " + a.result());
    }
    return a.map();
  }
}
