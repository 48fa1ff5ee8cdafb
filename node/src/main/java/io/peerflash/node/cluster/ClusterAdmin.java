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

/**
 * What peerflash.v1.ClusterService needs from the cluster member. Failures are thrown as {@link
 * io.grpc.StatusRuntimeException} with the status the caller gets.
 */
public interface ClusterAdmin {
  ClusterStatus status();

  /** The cluster's event history as this node's replica of the map has it. */
  ListClusterEventsResponse events(ListClusterEventsRequest request);

  MoveVolumeResponse moveVolume(MoveVolumeRequest request);

  DrainNodeResponse drainNode(DrainNodeRequest request);

  RemoveNodeResponse removeNode(RemoveNodeRequest request);

  AddNodeResponse addNode(AddNodeRequest request);
}
