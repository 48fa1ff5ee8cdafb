package io.peerflash.node.cluster;

import io.peerflash.proto.v1.AddNodeRequest;
import io.peerflash.proto.v1.AddNodeResponse;
import io.peerflash.proto.v1.ClusterStatus;
import io.peerflash.proto.v1.DrainNodeRequest;
import io.peerflash.proto.v1.DrainNodeResponse;
import io.peerflash.proto.v1.ListClusterEventsRequest;
import io.peerflash.proto.v1.ListClusterEventsResponse;
import io.peerflash.proto.v1.MoveVolumeRequest;
import io.peerflash.proto.v1.MoveVolumeResponse;
import io.peerflash.proto.v1.RemoveNodeRequest;
import io.peerflash.proto.v1.RemoveNodeResponse;
import io.peerflash.replication.control.ClusterMap;
import io.peerflash.replication.control.ControlPlane;
import io.peerflash.replication.control.Member;
import io.peerflash.replication.control.VolumeRecord;

/**
 * The cluster service's requests on this node: status and events from this node's replica of the
 * map, volume moves by {@link VolumeMover}, drain, removal and addition of members by {@link
 * Membership}. The node owns the mover and membership (the reconcile loop drives drains too) and
 * closes them.
 */
final class ClusterAdministration implements ClusterAdmin {
  private final String nodeId;
  private final ControlPlane controlPlane;
  private final VolumeMover mover;
  private final Membership membership;

  ClusterAdministration(
      String nodeId, ControlPlane controlPlane, VolumeMover mover, Membership membership) {
    this.nodeId = nodeId;
    this.controlPlane = controlPlane;
    this.mover = mover;
    this.membership = membership;
  }

  /** The map as this node holds it, for `cluster status`. */
  @Override
  public ClusterStatus status() {
    ClusterMap map = controlPlane.map();
    ClusterStatus.Builder b =
        ClusterStatus.newBuilder()
            .setAnsweredBy(nodeId)
            .setLeaderId(controlPlane.leaderId().orElse(""));
    for (Member m : map.members().values()) {
      b.addMembers(m.toProto());
    }
    for (VolumeRecord v : map.volumes().values()) {
      b.addVolumes(v.toProto());
    }
    return b.build();
  }

  @Override
  public ListClusterEventsResponse events(ListClusterEventsRequest req) {
    var page =
        controlPlane
            .events()
            .page(req.getAfterSeq(), req.getVolume(), req.getNode(), req.getLimit());
    return ListClusterEventsResponse.newBuilder()
        .addAllEvents(page.events())
        .setLastSeq(page.lastSeq())
        .build();
  }

  @Override
  public MoveVolumeResponse moveVolume(MoveVolumeRequest request) {
    return mover.move(request);
  }

  @Override
  public DrainNodeResponse drainNode(DrainNodeRequest request) {
    return membership.drain(request);
  }

  @Override
  public RemoveNodeResponse removeNode(RemoveNodeRequest request) {
    return membership.remove(request);
  }

  @Override
  public AddNodeResponse addNode(AddNodeRequest request) {
    return membership.add(request);
  }
}
