package io.peerflash.replication.control;

import io.peerflash.util.Time;
import java.nio.file.Path;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import javax.net.ssl.X509ExtendedTrustManager;
import javax.net.ssl.X509KeyManager;

/**
 * Configuration of one node's {@link ControlPlane}.
 *
 * @param nodeId this node's id (its Raft peer id and member id)
 * @param raftAddress host:port the Raft server listens on
 * @param grpcAddress host:port of this node's peerflash.v1 gRPC services, registered in the map
 * @param faultDomain this node's fault domain (empty: a domain of its own)
 * @param initialPeers id to Raft host:port of the initial voters. When it contains {@code nodeId}
 *     the node bootstraps (or restarts) as one of them; when it does not, the node starts empty and
 *     waits to be added with {@link ControlPlane#addPeer} by a running member, and {@code
 *     initialPeers} only tells its client where the cluster is.
 * @param storageDir Raft log, metadata and snapshots (one subdirectory per group)
 * @param leaseTimeoutMs lease length; heartbeats are sent every third of it
 * @param clockSkewMarginMs subtracted from a node's own lease and added to the leader's patience
 * @param snapshotThreshold log entries between automatic snapshots
 * @param electionTimeoutMinMs Raft election timeout (minimum; the maximum is twice it)
 * @param time the clock leases and liveness read
 * @param raftOverrides expert tuning: Ratis server properties (e.g. {@code
 *     raft.server.log.segment.size.max}) applied after the control plane's own settings
 * @param tls mutual TLS for the Raft server and clients, admitting only nodes of the Raft
 *     configuration; null: plaintext, any process that reaches the Raft port is a peer
 */
public record ControlPlaneConfig(
    String nodeId,
    String raftAddress,
    String grpcAddress,
    String faultDomain,
    Map<String, String> initialPeers,
    Path storageDir,
    long leaseTimeoutMs,
    long clockSkewMarginMs,
    long snapshotThreshold,
    long electionTimeoutMinMs,
    Time time,
    Map<String, String> raftOverrides,
    RaftTls tls) {

  public static final long DEFAULT_LEASE_TIMEOUT_MS = 3000;
  public static final long DEFAULT_CLOCK_SKEW_MARGIN_MS = 500;
  public static final long DEFAULT_SNAPSHOT_THRESHOLD = 10_000;
  public static final long DEFAULT_ELECTION_TIMEOUT_MIN_MS = 500;

  public ControlPlaneConfig {
    Objects.requireNonNull(nodeId, "nodeId");
    Objects.requireNonNull(raftAddress, "raftAddress");
    Objects.requireNonNull(grpcAddress, "grpcAddress");
    Objects.requireNonNull(faultDomain, "faultDomain");
    Objects.requireNonNull(storageDir, "storageDir");
    Objects.requireNonNull(time, "time");
    raftOverrides = Map.copyOf(raftOverrides);
    if (nodeId.isEmpty()) {
      throw new IllegalArgumentException("nodeId is empty");
    }
    initialPeers = java.util.Collections.unmodifiableSortedMap(new TreeMap<>(initialPeers));
    if (initialPeers.isEmpty()) {
      throw new IllegalArgumentException("initialPeers is empty");
    }
    if (initialPeers.containsKey(nodeId) && !initialPeers.get(nodeId).equals(raftAddress)) {
      throw new IllegalArgumentException(
          "initialPeers gives " + nodeId + " the address " + initialPeers.get(nodeId));
    }
    if (clockSkewMarginMs < 0 || leaseTimeoutMs <= 2 * clockSkewMarginMs) {
      throw new IllegalArgumentException(
          "need 0 <= clockSkewMarginMs < leaseTimeoutMs / 2, got lease "
              + leaseTimeoutMs
              + " margin "
              + clockSkewMarginMs);
    }
    if (snapshotThreshold < 1 || electionTimeoutMinMs < 50) {
      throw new IllegalArgumentException("snapshotThreshold >= 1, electionTimeoutMinMs >= 50");
    }
  }

  /** A plaintext config (see {@link #withTls}). */
  public ControlPlaneConfig(
      String nodeId,
      String raftAddress,
      String grpcAddress,
      String faultDomain,
      Map<String, String> initialPeers,
      Path storageDir,
      long leaseTimeoutMs,
      long clockSkewMarginMs,
      long snapshotThreshold,
      long electionTimeoutMinMs,
      Time time,
      Map<String, String> raftOverrides) {
    this(
        nodeId,
        raftAddress,
        grpcAddress,
        faultDomain,
        initialPeers,
        storageDir,
        leaseTimeoutMs,
        clockSkewMarginMs,
        snapshotThreshold,
        electionTimeoutMinMs,
        time,
        raftOverrides,
        null);
  }

  /** A config with the default lease, margin, snapshot threshold, election timeout and clock. */
  public static ControlPlaneConfig of(
      String nodeId,
      String raftAddress,
      String grpcAddress,
      String faultDomain,
      Map<String, String> initialPeers,
      Path storageDir) {
    return new ControlPlaneConfig(
        nodeId,
        raftAddress,
        grpcAddress,
        faultDomain,
        initialPeers,
        storageDir,
        DEFAULT_LEASE_TIMEOUT_MS,
        DEFAULT_CLOCK_SKEW_MARGIN_MS,
        DEFAULT_SNAPSHOT_THRESHOLD,
        DEFAULT_ELECTION_TIMEOUT_MIN_MS,
        Time.SYSTEM,
        Map.of());
  }

  public ControlPlaneConfig withLease(long leaseMs, long marginMs) {
    return new ControlPlaneConfig(
        nodeId,
        raftAddress,
        grpcAddress,
        faultDomain,
        initialPeers,
        storageDir,
        leaseMs,
        marginMs,
        snapshotThreshold,
        electionTimeoutMinMs,
        time,
        raftOverrides,
        tls);
  }

  public ControlPlaneConfig withSnapshotThreshold(long entries) {
    return new ControlPlaneConfig(
        nodeId,
        raftAddress,
        grpcAddress,
        faultDomain,
        initialPeers,
        storageDir,
        leaseTimeoutMs,
        clockSkewMarginMs,
        entries,
        electionTimeoutMinMs,
        time,
        raftOverrides,
        tls);
  }

  public ControlPlaneConfig withTime(Time t) {
    return new ControlPlaneConfig(
        nodeId,
        raftAddress,
        grpcAddress,
        faultDomain,
        initialPeers,
        storageDir,
        leaseTimeoutMs,
        clockSkewMarginMs,
        snapshotThreshold,
        electionTimeoutMinMs,
        t,
        raftOverrides,
        tls);
  }

  public ControlPlaneConfig withRaftOverrides(Map<String, String> overrides) {
    return new ControlPlaneConfig(
        nodeId,
        raftAddress,
        grpcAddress,
        faultDomain,
        initialPeers,
        storageDir,
        leaseTimeoutMs,
        clockSkewMarginMs,
        snapshotThreshold,
        electionTimeoutMinMs,
        time,
        overrides,
        tls);
  }

  /**
   * Raft over mutual TLS: this node presents {@code keyManager}'s certificate and admits peers that
   * {@code trustManager} accepts and that are nodes of the current Raft configuration.
   */
  public ControlPlaneConfig withTls(
      X509KeyManager keyManager, X509ExtendedTrustManager trustManager) {
    return new ControlPlaneConfig(
        nodeId,
        raftAddress,
        grpcAddress,
        faultDomain,
        initialPeers,
        storageDir,
        leaseTimeoutMs,
        clockSkewMarginMs,
        snapshotThreshold,
        electionTimeoutMinMs,
        time,
        raftOverrides,
        new RaftTls(keyManager, trustManager));
  }

  /** Heartbeat period: a third of the lease. */
  public long heartbeatIntervalMs() {
    return Math.max(1, leaseTimeoutMs / 3);
  }

  /** True when this node is one of the initial voters (else it joins through addPeer). */
  public boolean bootstrapsAsVoter() {
    return initialPeers.containsKey(nodeId);
  }
}
