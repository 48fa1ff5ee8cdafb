package io.peerflash.node.cluster;

import io.grpc.ManagedChannel;
import io.peerflash.node.NodeConfig;
import io.peerflash.node.engine.CacheEngine;
import io.peerflash.node.engine.CacheException;
import io.peerflash.node.index.VolumeInfo;
import io.peerflash.node.index.VolumeInfo.Role;
import io.peerflash.node.net.EventLoops;
import io.peerflash.node.net.NodeTls;
import io.peerflash.node.wire.Protos;
import io.peerflash.replication.control.ClusterMap;
import io.peerflash.replication.control.ControlPlane;
import io.peerflash.replication.control.ControlPlaneConfig;
import io.peerflash.replication.control.Member;
import io.peerflash.replication.control.VolumeRecord;
import io.peerflash.replication.data.EpochGuard;
import io.peerflash.replication.data.PeerReplicator;
import io.peerflash.replication.fault.FaultPoints;
import io.peerflash.util.NamedThreadFactory;
import io.peerflash.util.Time;
import java.io.IOException;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A node as a cluster member: the Raft-held map decides which volumes it owns or replicates; this
 * class keeps the engine in line with the map (volumes, roles), fences the node when its lease
 * lapses or has not begun, and wires the pieces that do the rest: client routing and volume
 * administration ({@link ClusterVolumes}, as {@link #routing()}), the cluster service's requests
 * ({@link ClusterAdministration}, as {@link #admin()}), the channels to peers ({@link
 * PeerConnections}, as {@link #peers()}), an owner's handling of lost replicas ({@link
 * ReplicaLoss}), the replica's epoch guard ({@link ReplicaEpochGuard}), failover on the leader
 * ({@link LeaderFailover}), re-protection, moves and membership.
 */
public final class ClusterNode implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(ClusterNode.class);
  private static final long COMMAND_TIMEOUT_MS = 15_000;
  private static final long RECONCILE_RETRY_MS = 500;

  private final String nodeId;
  private final CacheEngine engine;
  private final ControlPlane controlPlane;
  private final Time time;
  // The replicators' ack-deadline sweeps (at a fixed delay) and re-protection's paced second
  // looks run on it; the node's own retries use the clock's timer (Time.schedule).
  private final ScheduledExecutorService replicationTimers =
      Executors.newSingleThreadScheduledExecutor(
          new NamedThreadFactory("peerflash-cluster-timer", true));
  // One reconcile at a time: it blocks on the engine (adopting, dropping volumes) and on reads
  // of the map.
  private final ExecutorService reconciler =
      Executors.newSingleThreadExecutor(new NamedThreadFactory("peerflash-reconciler", true));
  private final AtomicBoolean reconcileQueued = new AtomicBoolean();
  // Re-protection's copies of dirty data to new replicas, a thread each while they run.
  private final ExecutorService copier =
      Executors.newCachedThreadPool(new NamedThreadFactory("peerflash-reprotect", true));
  private final PeerConnections peers;
  private final Reprotector reprotector;
  private final VolumeMover mover;
  private final Membership membership;
  private final ClusterVolumes volumes;
  private final ClusterAdministration admin;
  private final ReplicaLoss replicaLoss;
  private final LeaderFailover failover;
  private final ReplicaEpochGuard epochGuard;
  private volatile boolean ready;
  private volatile long leaseStartsAtSync;
  private volatile boolean closed;

  private ClusterNode(
      NodeConfig config,
      CacheEngine engine,
      ControlPlane controlPlane,
      FaultPoints faults,
      Time time,
      EventLoops loops,
      NodeTls tls) {
    this.nodeId = config.nodeId();
    this.engine = engine;
    this.controlPlane = controlPlane;
    this.time = time;
    this.peers =
        new PeerConnections(
            nodeId, controlPlane::map, config, loops, tls, replicationTimers, faults, time);
    this.reprotector =
        new Reprotector(
            nodeId,
            engine,
            controlPlane,
            peers::replicator,
            copier,
            replicationTimers,
            time,
            config.replicationAckTimeoutMs(),
            2 * (config.leaseTimeoutMs() + config.clockSkewMarginMs()),
            faults);
    this.mover = new VolumeMover(nodeId, engine, controlPlane, peers::channel, time);
    this.membership = new Membership(controlPlane, time);
    this.admin = new ClusterAdministration(nodeId, controlPlane, mover, membership);
    this.replicaLoss =
        new ReplicaLoss(
            nodeId,
            controlPlane,
            reprotector::noteFailed,
            time,
            config.leaseTimeoutMs(),
            config.peerLossWaitMs());
    this.failover =
        new LeaderFailover(
            controlPlane, peers::channel, faults, this::retryReconcileLater, COMMAND_TIMEOUT_MS);
    this.epochGuard = new ReplicaEpochGuard(nodeId, controlPlane, engine, () -> ready, time);
    this.volumes =
        new ClusterVolumes(
            nodeId,
            controlPlane,
            engine,
            time,
            reprotector,
            mover,
            peers.replicators(),
            new ClusterVolumes.Local() {
              @Override
              public boolean ready() {
                return ready;
              }

              @Override
              public String fencedReason() {
                return ClusterNode.this.fencedReason();
              }

              @Override
              public boolean held(String volume) {
                return ClusterNode.this.held(volume);
              }

              @Override
              public ManagedChannel channel(Member peer) {
                return peers.channel(peer);
              }
            });
  }

  /** Joins the Raft group and connects the engine to the cluster (before the engine starts). */
  public static ClusterNode start(
      NodeConfig config, CacheEngine engine, FaultPoints faults, Time time) throws IOException {
    return start(config, engine, faults, time, null, NodeTls.of(config));
  }

  /**
   * @param loops network threads for the channels to peers (the server's, so that a write's hops
   *     stay on one thread); null: gRPC's default
   */
  public static ClusterNode start(
      NodeConfig config,
      CacheEngine engine,
      FaultPoints faults,
      Time time,
      EventLoops loops,
      NodeTls tls)
      throws IOException {
    if (config.listenPort() == 0) {
      throw new IllegalArgumentException("a cluster member needs a fixed listen port");
    }
    ControlPlaneConfig cp =
        ControlPlaneConfig.of(
                config.nodeId(),
                config.raftAddress(),
                config.grpcAddress(),
                config.faultDomain(),
                config.raftPeers(),
                config.engine().dataDir().resolve("raft"))
            .withLease(config.leaseTimeoutMs(), config.clockSkewMarginMs());
    ControlPlane controlPlane = ControlPlane.start(tls.raft(cp));
    controlPlane.useFaultPoints(faults);
    // A node whose local flash failed an fsync must not keep its volumes: without a lease it
    // stops serving and the leader fails them over to replicas.
    controlPlane.holdHeartbeatsWhile(engine::localFailure);
    ClusterNode node = new ClusterNode(config, engine, controlPlane, faults, time, loops, tls);
    // Fencing: no lease, no service and no destage (a frozen or cut-off owner stops before the
    // leader can hand its volumes to another node).
    engine.setServeGuard(node::mayServe);
    engine.setReplicationPort(
        new PeerReplicationPort(
            node::resolve, node.replicaLoss::evict, node.replicaLoss::admit, node.time));
    controlPlane.addListener(map -> node.scheduleReconcile());
    node.reconciler.execute(node::initialReconcile);
    return node;
  }

  /**
   * Fencing: serve and destage a volume only with a valid lease that began before this node last
   * read the map linearizably, and only while the map still names this node its owner. When a lease
   * begins after the read (the first one, or one after a lapse: cut off or frozen), the node
   * re-reads the map first: its volumes may be gone.
   */
  private boolean mayServe(VolumeInfo v) {
    return mayServe(controlPlane.map(), v.name());
  }

  private boolean mayServe(ClusterMap map, String volume) {
    Fencing.Serve verdict =
        Fencing.serve(
            nodeId,
            ready,
            controlPlane.leaseValid(),
            controlPlane.leaseKeeper().leaseStarts(),
            leaseStartsAtSync,
            map,
            volume);
    if (verdict == Fencing.Serve.RESYNC) {
      ready = false;
      log.warn(
          "node {}: a lease began after the last read of the cluster map; re-reading it before"
              + " serving again",
          nodeId);
      reconciler.execute(this::initialReconcile);
    }
    return verdict == Fencing.Serve.YES;
  }

  /**
   * A write's placement by one read of the map: the fencing verdict, admission and the targets of
   * its copies all come from the same version ({@link io.peerflash.node.engine.Placement}).
   */
  private PeerReplicationPort.Resolved resolve(VolumeInfo v) {
    ClusterMap map = controlPlane.map();
    return new PeerReplicationPort.Resolved(
        mayServe(map, v.name()),
        ReplicaLoss.admits(map.volume(v.name()).orElse(null)),
        v.replicas() == 0 ? null : peers.targets(map, v.name()));
  }

  /** Client routing and volume administration through the map, for the client API and NBD. */
  public ClusterRouting routing() {
    return volumes;
  }

  /** The cluster service's requests (status, events, moves, membership). */
  public ClusterAdmin admin() {
    return admin;
  }

  /** The channels to the other members, for I/O forwarded to a volume's owner. */
  public PeerChannels peers() {
    return peers;
  }

  public ControlPlane controlPlane() {
    return controlPlane;
  }

  /** Failovers this node committed as the Raft leader since it started. */
  public long failoversCommitted() {
    return failover.committed();
  }

  /** Copies this node refused as a replica for a stale epoch or a sender not the owner. */
  public long fencingRefusals() {
    return epochGuard.refusals();
  }

  /** The replica side's epoch check, for the replication service. */
  public EpochGuard epochGuard() {
    return epochGuard;
  }

  /** In step with the map and holding a valid lease: serving. */
  public boolean ready() {
    return ready && controlPlane.leaseValid();
  }

  // ---------------------------------------------------------------------------------------------
  // Keeping the engine in line with the map

  /** The first reconcile reads a linearizable map: a half-replayed log must not drop volumes. */
  private void initialReconcile() {
    while (!closed) {
      try {
        if (ready) {
          return;
        }
        controlPlane.registered().get(10, TimeUnit.SECONDS);
        // Without a lease the node serves nothing anyway, and a read before the lease begins
        // would have to be made again once it does (Fencing.serve).
        if (!controlPlane.leaseKeeper().awaitLease(10_000)) {
          log.info("node {}: no lease yet; waiting for a heartbeat to commit", nodeId);
          continue;
        }
        long leaseStarts = controlPlane.leaseKeeper().leaseStarts();
        ClusterMap map = controlPlane.readLinearizable().get(10, TimeUnit.SECONDS);
        reconcile(map);
        leaseStartsAtSync = leaseStarts;
        ready = true;
        log.info("node {} in step with the cluster map; serving", nodeId);
        scheduleReconcile();
        return;
      } catch (Exception e) {
        log.info("waiting for the cluster map: {}", e.toString());
        sleep(500);
      }
    }
  }

  private void scheduleReconcile() {
    if (ready && !closed && reconcileQueued.compareAndSet(false, true)) {
      try {
        reconciler.execute(
            () -> {
              reconcileQueued.set(false);
              try {
                ClusterMap map = controlPlane.map();
                reconcile(map);
                failover.maybeFailOver(map);
                reprotector.maybeReprotect(map);
                mover.maybeDrain(map);
              } catch (RuntimeException e) {
                log.warn("reconcile failed; retrying", e);
                retryReconcileLater();
              }
            });
      } catch (RejectedExecutionException e) {
        // Closed meanwhile: a retry on the clock's timer may still fall due after close.
      }
    }
  }

  /** Another reconcile in a moment, on the node's clock (a failed one, a failover not yet due). */
  private void retryReconcileLater() {
    time.schedule(RECONCILE_RETRY_MS, this::scheduleReconcile);
  }

  private void reconcile(ClusterMap map) {
    peers.warmUp(map);
    Set<String> inMap = new HashSet<>();
    for (VolumeRecord rec : map.volumes().values()) {
      inMap.add(rec.name());
      try {
        Reconciliation.Step step = Reconciliation.step(nodeId, rec, heldRole(rec.name()));
        if (step == Reconciliation.Step.DROP
            || step == Reconciliation.Step.DROP_THEN_ADOPT_REPLICA) {
          // Not ours at the current epoch (or ours no longer as the owner): the owner and
          // replicas of that epoch hold every acknowledged write, so these copies are superseded.
          engine.dropLocalVolume(rec.name());
        }
        if (step == Reconciliation.Step.ADOPT_OWNER
            || step == Reconciliation.Step.ADOPT_REPLICA
            || step == Reconciliation.Step.DROP_THEN_ADOPT_REPLICA) {
          Role role = step == Reconciliation.Step.ADOPT_OWNER ? Role.OWNER : Role.REPLICA;
          engine.adoptVolume(
              new VolumeInfo(
                  rec.id(),
                  rec.name(),
                  rec.sizeBytes(),
                  Protos.mode(rec.mode()),
                  rec.requestedReplicas(),
                  role),
              role == Role.OWNER,
              // Above every sequence an earlier owner may have left on the replicas.
              Reconciliation.sequenceFloor(rec.epoch()));
          if (role == Role.OWNER && rec.underReplicated()) {
            // Dirty data written before a replica was lost has fewer copies than wanted.
            engine.destageSoon(rec.name());
          }
        }
      } catch (CacheException e) {
        log.warn("volume {}: cannot follow the cluster map yet: {}", rec.name(), e.getMessage());
      }
    }
    for (VolumeInfo local : engine.listVolumes()) {
      if (!inMap.contains(local.name())) {
        try {
          if (local.role() == Role.OWNER) {
            engine.deleteVolume(
                local.name()); // deleted from the cluster: the owner removes the file
          } else {
            engine.dropLocalVolume(local.name());
          }
        } catch (CacheException e) {
          log.warn("volume {}: delete failed: {}", local.name(), e.getMessage());
        }
      }
    }
  }

  /** The role the engine holds the volume in, null when it does not hold it. */
  private Role heldRole(String name) {
    try {
      return engine.getVolume(name).role();
    } catch (CacheException e) {
      return null;
    }
  }

  private boolean held(String name) {
    try {
      engine.getVolume(name);
      return true;
    } catch (CacheException e) {
      return false;
    }
  }

  /**
   * Per peer this node sends copies to: the age of its oldest copy not yet acked (the replication
   * lag, 0 when it has acked everything) in ms, and the batches in flight.
   */
  public Map<String, long[]> replicationLag() {
    return peers.replicationLag();
  }

  /** Who is told how long each replica took to ack a write's copies (the node's metrics). */
  public void setReplicaAckObserver(PeerReplicator.AckObserver observer) {
    peers.setAckObserver(observer);
  }

  /** The state of this node's channel to a peer, or null while it has none (tests). */
  io.grpc.ConnectivityState peerChannelState(String peerId) {
    return peers.channelState(peerId);
  }

  /**
   * Whether the cluster map names {@code nodeId} a member (in any state): only members may send I/O
   * forwarded for a client ({@link io.peerflash.node.rpc.Authorization}).
   */
  public boolean isMember(String nodeId) {
    return controlPlane.map().member(nodeId).isPresent();
  }

  /**
   * Empty while this node may serve the volumes it owns; otherwise why not (see {@link #mayServe}).
   */
  public String fencedReason() {
    if (!ready) {
      return "node " + nodeId + " is not yet in step with the cluster map";
    }
    if (controlPlane.map().member(nodeId).isEmpty()) {
      return "node "
          + nodeId
          + " is not a member of the cluster (it was removed): it serves and replicates nothing;"
          + " stop it, or add it again with 'peerflash cluster add-node'";
    }
    if (!controlPlane.leaseValid()) {
      return "node "
          + nodeId
          + " holds no valid cluster lease (cut off from the Raft majority or paused): it serves"
          + " nothing until it renews it";
    }
    return "";
  }

  /** A pause in a wait loop, on the node's clock (whose deadlines the loops read). */
  private void sleep(long ms) {
    try {
      time.sleepMs(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  @Override
  public void close() {
    closed = true;
    mover.close();
    membership.close();
    reconciler.shutdownNow();
    copier.shutdownNow();
    replicaLoss.close();
    peers.close();
    controlPlane.close();
    replicationTimers.shutdownNow();
  }
}
