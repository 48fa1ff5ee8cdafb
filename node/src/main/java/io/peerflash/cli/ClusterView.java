package io.peerflash.cli;

import io.grpc.StatusRuntimeException;
import io.peerflash.client.PeerFlashClient;
import io.peerflash.client.PeerFlashException;
import io.peerflash.proto.v1.ClusterMember;
import io.peerflash.proto.v1.ClusterStatus;
import io.peerflash.proto.v1.GetStatusRequest;
import io.peerflash.proto.v1.MemberState;
import io.peerflash.proto.v1.NodeServiceGrpc;
import io.peerflash.proto.v1.NodeStatus;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * The cluster map as one node sees it plus each live member's own status, asked of that member
 * directly (never redirected): what {@code cluster health} and {@code status --cluster} show.
 */
record ClusterView(
    ClusterStatus cluster, Map<String, NodeStatus> nodes, Map<String, String> unanswered) {
  static final long NODE_TIMEOUT_MS = 5_000;

  static ClusterView gather(ClientOptions client, PeerFlashClient c) {
    ClusterStatus cluster = c.clusterStatus();
    Map<String, NodeStatus> nodes = new LinkedHashMap<>();
    Map<String, String> unanswered = new LinkedHashMap<>();
    for (ClusterMember m : cluster.getMembersList()) {
      if (m.getState() == MemberState.MEMBER_DOWN) {
        continue; // The map says so already.
      }
      try (PeerFlashClient one = client.cli().connect(m.getGrpcAddress())) {
        nodes.put(
            m.getId(),
            NodeServiceGrpc.newBlockingStub(one.channel())
                .withDeadlineAfter(NODE_TIMEOUT_MS, TimeUnit.MILLISECONDS)
                .getStatus(GetStatusRequest.getDefaultInstance()));
      } catch (StatusRuntimeException e) {
        io.grpc.Status s = e.getStatus();
        unanswered.put(
            m.getId(), s.getCode() + (s.getDescription() == null ? "" : ": " + s.getDescription()));
      } catch (PeerFlashException e) {
        unanswered.put(m.getId(), e.code() + ": " + e.getMessage());
      }
    }
    return new ClusterView(cluster, nodes, unanswered);
  }
}
