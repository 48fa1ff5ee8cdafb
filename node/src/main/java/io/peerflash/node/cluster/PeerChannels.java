package io.peerflash.node.cluster;

import io.grpc.ManagedChannel;

/**
 * This node's channels to the other members, for I/O it forwards to a volume's owner (the NBD front
 * end serves every volume on every node), and the map facts that decide where it goes.
 */
public interface PeerChannels {
  /**
   * The channel to member {@code nodeId} (with TLS it accepts only that node's certificate and
   * presents this node's), or null when the cluster map has no such member.
   */
  ManagedChannel peerChannel(String nodeId);

  /** Whether the map names {@code nodeId} the owner of {@code volume} and that node alive. */
  boolean servesVolume(String nodeId, String volume);
}
