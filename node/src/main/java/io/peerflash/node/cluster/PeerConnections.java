package io.peerflash.node.cluster;

import io.grpc.ConnectivityState;
import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.peerflash.node.NodeConfig;
import io.peerflash.node.net.EventLoops;
import io.peerflash.node.net.NodeTls;
import io.peerflash.replication.control.ClusterMap;
import io.peerflash.replication.control.Member;
import io.peerflash.replication.data.CopyTransport;
import io.peerflash.replication.data.GrpcCopyTransport;
import io.peerflash.replication.data.PeerReplicator;
import io.peerflash.replication.fault.FaultPoints;
import io.peerflash.replication.link.LinkCopyTransport;
import io.peerflash.replication.link.ReplicaLinkServer;
import io.peerflash.util.Time;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ScheduledExecutorService;
import java.util.function.Supplier;

/**
 * This node's connections to its peers: one gRPC channel per peer and address (with TLS it accepts
 * only that node's certificate), and one {@link PeerReplicator} per peer that copies go to, on the
 * peer's replica link where it has one. As {@link PeerChannels}, the channels that I/O forwarded to
 * a volume's owner takes.
 */
final class PeerConnections implements PeerChannels, AutoCloseable {
  private final String nodeId;
  private final Supplier<ClusterMap>
      currentMap; // this node's replica of the map: who the peers are
  private final NodeConfig config;
  private final EventLoops loops; // null: channels on gRPC's own loops, copies on gRPC (tests)
  private final NodeTls tls;
  private final ScheduledExecutorService timers;
  private final FaultPoints faults;
  private final Time time;
  private final ConcurrentHashMap<String, ManagedChannel> channels = new ConcurrentHashMap<>();
  private final ConcurrentHashMap<String, PeerReplicator> replicators = new ConcurrentHashMap<>();

  PeerConnections(
      String nodeId,
      Supplier<ClusterMap> currentMap,
      NodeConfig config,
      EventLoops loops,
      NodeTls tls,
      ScheduledExecutorService timers,
      FaultPoints faults,
      Time time) {
    this.nodeId = nodeId;
    this.currentMap = currentMap;
    this.config = config;
    this.loops = loops;
    this.tls = tls;
    this.timers = timers;
    this.faults = faults;
    this.time = time;
  }

  /** The replicators made so far, by peer id (live view). */
  Map<String, PeerReplicator> replicators() {
    return replicators;
  }

  /** The replicator to the member the map names {@code memberId}; null when it names none. */
  PeerReplicator replicator(String memberId) {
    return currentMap.get().member(memberId).map(this::replicator).orElse(null);
  }

  /**
   * Where an owner's write of {@code volume} sends its copies by {@code map}: the epoch, and the
   * replicators of the peers the copy plan names; null when the plan has none.
   */
  PeerReplicationPort.Targets targets(ClusterMap map, String volume) {
    PeerReplicationPort.CopyPlan plan = PeerReplicationPort.CopyPlan.of(nodeId, map, volume);
    if (plan == null) {
      return null;
    }
    List<PeerReplicator> peers = new ArrayList<>(plan.peers().size());
    for (String id : plan.peers()) {
      peers.add(replicator(map.member(id).orElseThrow()));
    }
    return new PeerReplicationPort.Targets(
        plan.epoch(), nodeId, peers, plan.inSync(), plan.acceptFewer());
  }

  /** The replicator to {@code member}, made on first use. */
  PeerReplicator replicator(Member member) {
    return replicators.computeIfAbsent(
        member.id(),
        id -> {
          PeerReplicator r =
              new PeerReplicator(
                  nodeId,
                  id,
                  channel(member),
                  copyTransport(member),
                  timers,
                  config.replicationAckTimeoutMs(),
                  config.replicationConnectTimeoutMs(),
                  faults,
                  time);
          r.setAckObserver(ackObserver);
          return r;
        });
  }

  /**
   * How copies reach {@code member}: its replica link, found by asking it on each new stream, or
   * the Replicate gRPC stream where it has none (or this node runs without shared event loops, in
   * tests).
   */
  private CopyTransport copyTransport(Member member) {
    CopyTransport grpc = new GrpcCopyTransport(member.id(), channel(member));
    if (loops == null) {
      return grpc;
    }
    String address = member.grpcAddress();
    String host = address.substring(0, address.lastIndexOf(':'));
    if (host.startsWith("[") && host.endsWith("]")) {
      host = host.substring(1, host.length() - 1);
    }
    return new LinkCopyTransport(
        member.id(),
        host,
        () -> replicaLinkPort(member),
        tls.replicaLinkTo(member.id()),
        loops.workers(),
        loops.clientChannel(),
        ReplicaLinkServer.MAX_FRAME_BYTES,
        grpc);
  }

  private CompletableFuture<Integer> replicaLinkPort(Member member) {
    return LinkCopyTransport.askPort(channel(member), config.replicationConnectTimeoutMs());
  }

  private volatile PeerReplicator.AckObserver ackObserver = PeerReplicator.AckObserver.NONE;

  /**
   * Per peer this node sends copies to: the age of its oldest copy not yet acked (the replication
   * lag, 0 when it has acked everything) in ms, and the batches in flight.
   */
  Map<String, long[]> replicationLag() {
    Map<String, long[]> lag = new java.util.TreeMap<>();
    replicators.forEach(
        (peer, r) -> lag.put(peer, new long[] {r.oldestInFlightMs(), r.inFlight()}));
    return lag;
  }

  /** Who is told how long each replica took to ack a write's copies (the node's metrics). */
  void setAckObserver(PeerReplicator.AckObserver observer) {
    this.ackObserver = observer;
    for (PeerReplicator r : replicators.values()) {
      r.setAckObserver(observer);
    }
  }

  // Replica acks complete the write's future on the transport thread: their callbacks match the
  // ack and answer the client (or wake a waiting writer), so a pool would only add a thread
  // hand-off to every replicated write. Blocking stubs on these channels run on the caller's
  // thread anyway.
  /**
   * Connects to each UP peer once, when this node first sees it, ahead of the first write that
   * needs it: the TCP and TLS handshakes of a cold channel and of the replica link would otherwise
   * be paid by that write. Only once: asking a channel to connect again later could reconnect to a
   * peer that is shutting down, whose new connection then takes new streams nowhere (a write would
   * wait out the connect timeout instead of finding the peer gone at once). A copy stream closed
   * later (the peer restarted) is opened again by the next write to that peer.
   */
  void warmUp(ClusterMap map) {
    for (Member m : map.members().values()) {
      if (!m.id().equals(nodeId) && m.isUp() && warmedUp.add(m.id() + "@" + m.grpcAddress())) {
        channel(m).getState(true);
        replicator(m).connect();
      }
    }
  }

  private final Set<String> warmedUp = ConcurrentHashMap.newKeySet();

  /** The state of this node's channel to a peer, or null while it has none (tests). */
  ConnectivityState channelState(String peerId) {
    for (Map.Entry<String, ManagedChannel> e : channels.entrySet()) {
      if (e.getKey().startsWith(peerId + "@")) {
        return e.getValue().getState(false);
      }
    }
    return null;
  }

  /** The gRPC channel to {@code peer}, made on first use. */
  ManagedChannel channel(Member peer) {
    // One channel per peer and address: with TLS it accepts only that node's certificate.
    return channels.computeIfAbsent(
        peer.id() + "@" + peer.grpcAddress(),
        key -> {
          String a = peer.grpcAddress();
          return tls.toPeer(
                  loops != null ? loops.channel(a) : NettyChannelBuilder.forTarget(a), peer.id())
              .directExecutor()
              .build();
        });
  }

  @Override
  public ManagedChannel peerChannel(String memberId) {
    Member m = currentMap.get().member(memberId).orElse(null);
    return m == null ? null : channel(m);
  }

  @Override
  public boolean servesVolume(String memberId, String volume) {
    ClusterMap current = currentMap.get();
    return current.volume(volume).map(r -> r.owner().equals(memberId)).orElse(false)
        && current.member(memberId).map(Member::isAlive).orElse(false);
  }

  @Override
  public void close() {
    for (PeerReplicator r : replicators.values()) {
      r.close();
    }
    for (ManagedChannel c : channels.values()) {
      c.shutdownNow();
    }
  }
}
