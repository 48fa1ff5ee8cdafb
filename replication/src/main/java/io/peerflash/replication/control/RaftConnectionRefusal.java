package io.peerflash.replication.control;

/**
 * A Raft connection or call this node refused, reported to {@link
 * ControlPlane#addRaftRefusalListener} listeners (and logged).
 *
 * @param direction INBOUND: a peer connected to this node's Raft server; OUTBOUND: this node
 *     connected to a server
 * @param stage HANDSHAKE: the TLS handshake was refused; CALL: a call on a connection made earlier
 *     was refused (the peer has left the configuration since)
 * @param peerSubject the subject of the peer's certificate, empty when it presented none
 * @param nodeId the node id its certificate names, empty when it names none
 * @param remoteAddress host:port of the peer when known, else empty
 * @param reason what was refused and why
 */
public record RaftConnectionRefusal(
    Direction direction,
    Stage stage,
    String peerSubject,
    String nodeId,
    String remoteAddress,
    String reason) {

  public enum Direction {
    INBOUND,
    OUTBOUND
  }

  public enum Stage {
    HANDSHAKE,
    CALL
  }
}
