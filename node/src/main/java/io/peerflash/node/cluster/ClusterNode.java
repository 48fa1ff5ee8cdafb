package io.peerflash.node.cluster;

import io.grpc.ManagedChannel;
import io.peerflash.node.NodeConfig;
import io.peerflash.node.engine.CacheEngine;
import io.peerflash.node.engine.CacheException;
import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.index.VolumeInfo;
import io.peerflash.node.index.VolumeInfo.Role;
import io.peerflash.node.net.EventLoops;
import io.peerflash.node.net.NodeTls;
import io.peerflash.node.wire.Protos;
import io.peerflash.proto.v1.AddNodeRequest;
import io.peerflash.proto.v1.AddNodeResponse;
import io.peerflash.proto.v1.CommandResult;
import io.peerflash.proto.v1.CreateVolumeRequest;
import io.peerflash.proto.v1.DrainNodeRequest;
import io.peerflash.proto.v1.DrainNodeResponse;
import io.peerflash.proto.v1.MoveVolumeRequest;
import io.peerflash.proto.v1.MoveVolumeResponse;
import io.peerflash.proto.v1.OnPeerLoss;
import io.peerflash.proto.v1.RemoveNodeRequest;
import io.peerflash.proto.v1.RemoveNodeResponse;
import io.peerflash.proto.v1.SetPolicyRequest;
import io.peerflash.proto.v1.Volume;
import io.peerflash.replication.cluster.ClusterMap;
import io.peerflash.replication.cluster.ControlPlane;
import io.peerflash.replication.cluster.ControlPlaneConfig;
import io.peerflash.replication.cluster.MapCommands;
import io.peerflash.replication.cluster.Member;
import io.peerflash.replication.cluster.VolumeRecord;
import io.peerflash.replication.data.EpochGuard;
import io.peerflash.replication.data.PeerReplicator;
import io.peerflash.replication.fault.FaultPoints;
import io.peerflash.util.NamedThreadFactory;
import io.peerflash.util.Time;
import java.io.IOException;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A node as a cluster member: the Raft-held map decides which volumes it owns or replicates; this
 * class keeps the engine in line with the map (volumes, roles), fences the node when its lease
 * lapses or has not begun, and wires the pieces that do the rest: client routing and volume
 * administration ({@link ClusterVolumes}), the replica's epoch guard ({@link ReplicaEpochGuard}),
 * failover on the leader ({@link LeaderFailover}), re-protection, moves and membership.
 */
public final class ClusterNode
    implements ClusterRouting, ClusterAdmin, PeerChannels, AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(ClusterNode.class);
  private static final long COMMAND_TIMEOUT_MS = 15_000;

  private final NodeConfig config;
  private final String nodeId;
  private final CacheEngine engine;
  private final ControlPlane controlPlane;
  private final ScheduledExecutorService timers =
      Executors.newSingleThreadScheduledExecutor(
          new NamedThreadFactory("peerflash-cluster-timer", true));
  private final ExecutorService reconciler =
      Executors.newSingleThreadExecutor(new NamedThreadFactory("peerflash-reconciler", true));
  private final AtomicBoolean reconcileQueued = new AtomicBoolean();
  private final PeerConnections peers;
  private final ExecutorService evictions =
      Executors.newCachedThreadPool(new NamedThreadFactory("peerflash-evict", true));
  private final ExecutorService copier =
      Executors.newCachedThreadPool(new NamedThreadFactory("peerflash-reprotect", true));
  private final FaultPoints faults;
  private final Time time;
  private final Reprotector reprotector;
  private final VolumeMover mover;
  private final Membership membership;
  private final ClusterVolumes volumes;
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
    this.config = config;
    this.nodeId = config.nodeId();
    this.peers = new PeerConnections(nodeId, config, loops, tls, timers, faults, time);
    this.engine = engine;
    this.controlPlane = controlPlane;
    this.faults = faults;
    this.time = time;
    this.reprotector =
        new Reprotector(
            nodeId,
            engine,
            controlPlane,
            this::replicator,
            copier,
            timers,
            time,
            config.replicationAckTimeoutMs(),
            2 * (config.leaseTimeoutMs() + config.clockSkewMarginMs()),
            faults);
    this.mover = new VolumeMover(nodeId, engine, controlPlane, this::channel, time);
    this.membership = new Membership(controlPlane, time);
    this.failover =
        new LeaderFailover(
            controlPlane,
            this::channel,
            faults,
            () -> timers.schedule(this::scheduleReconcile, 500, TimeUnit.MILLISECONDS),
            COMMAND_TIMEOUT_MS);
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
                return ClusterNode.this.channel(peer);
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
        new PeerReplicationPort(node::resolve, node::evictReplica, node::admit));
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
        admits(map.volume(v.name()).orElse(null)),
        v.replicas() == 0 ? null : targets(map, v));
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
              timers.schedule(this::scheduleReconcile, 500, TimeUnit.MILLISECONDS);
            }
          });
    }
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

  // ---------------------------------------------------------------------------------------------
  // Replication targets (owner side) and the epoch guard (replica side)

  private PeerReplicationPort.Targets targets(ClusterMap map, VolumeInfo v) {
    PeerReplicationPort.CopyPlan plan = PeerReplicationPort.CopyPlan.of(nodeId, map, v.name());
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

  /**
   * On-peer-loss {@code block}: a write waits (bounded) while fewer in-sync replicas hold copies
   * than the policy asks for, then fails with UNAVAILABLE naming the wait.
   */
  private static boolean admits(VolumeRecord rec) {
    return rec == null
        || rec.onPeerLoss() != OnPeerLoss.ON_PEER_LOSS_BLOCK
        || !rec.underReplicated();
  }

  private void admit(VolumeInfo v) throws CacheException {
    long deadline = time.nowMs() + config.peerLossWaitMs();
    while (true) {
      VolumeRecord rec = controlPlane.map().volume(v.name()).orElse(null);
      if (admits(rec)) {
        return;
      }
      if (time.nowMs() >= deadline) {
        throw new CacheException(
            Reason.UNAVAILABLE,
            "volume '"
                + v.name()
                + "' has "
                + rec.replicaSet().size()
                + " of "
                + rec.requestedReplicas()
                + " replicas in sync and its on-peer-loss policy is block; waited "
                + config.peerLossWaitMs()
                + " ms (peer-loss-wait-ms) for re-protection");
      }
      sleep(10);
    }
  }

  /**
   * Takes a replica that failed to take a copy (in sync or being filled) out of the volume's
   * replicas, so it can never win a failover without the write about to be acknowledged without it.
   * Retried across epoch changes; bounded by the lease.
   */
  private CompletableFuture<Boolean> evictReplica(String volume, String peerId, long epoch) {
    return time.completeOnTimeout(
        CompletableFuture.supplyAsync(() -> evictBlocking(volume, peerId, epoch), evictions),
        false,
        config.leaseTimeoutMs());
  }

  private boolean evictBlocking(String volume, String peerId, long epoch) {
    long deadline = time.nowMs() + config.leaseTimeoutMs();
    VolumeRecord rec = controlPlane.map().volume(volume).orElse(null);
    while (rec != null && rec.owner().equals(nodeId) && time.nowMs() < deadline) {
      if (!rec.allReplicas().contains(peerId)) {
        return rec.epoch() > epoch;
      }
      log.warn("volume {}: replica {} did not take a copy; removing it", volume, peerId);
      reprotector.noteFailed(peerId);
      CommandResult r;
      try {
        r =
            controlPlane
                .submit(
                    MapCommands.because(
                        MapCommands.removeReplica(volume, peerId, rec.epoch()),
                        "it did not take a copy of a write within the ack timeout"))
                .get(Math.max(1, deadline - time.nowMs()), TimeUnit.MILLISECONDS);
      } catch (Exception e) {
        return false;
      }
      if (r.getOk()) {
        return true; // committed; this node's copy of the map follows shortly
      }
      // Compare-and-set lost to another change: try again at the epoch the map has now.
      rec = r.hasVolume() ? VolumeRecord.fromProto(r.getVolume()) : null;
    }
    return false;
  }

  private PeerReplicator replicator(String memberId) {
    return controlPlane.map().member(memberId).map(this::replicator).orElse(null);
  }

  private PeerReplicator replicator(Member member) {
    return peers.replicator(member);
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

  private ManagedChannel channel(Member peer) {
    return peers.channel(peer);
  }

  @Override
  public ManagedChannel peerChannel(String nodeId) {
    Member m = controlPlane.map().member(nodeId).orElse(null);
    return m == null ? null : channel(m);
  }

  @Override
  public boolean servesVolume(String nodeId, String volume) {
    ClusterMap map = controlPlane.map();
    return map.volume(volume).map(r -> r.owner().equals(nodeId)).orElse(false)
        && map.member(nodeId).map(Member::isAlive).orElse(false);
  }

  /**
   * Whether the cluster map names {@code nodeId} a member (in any state): only members may send I/O
   * forwarded for a client ({@link io.peerflash.node.rpc.Authorization}).
   */
  public boolean isMember(String nodeId) {
    return controlPlane.map().member(nodeId).isPresent();
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

  /** The map as this node holds it, for `cluster status`. */
  @Override
  public io.peerflash.proto.v1.ClusterStatus status() {
    ClusterMap map = controlPlane.map();
    io.peerflash.proto.v1.ClusterStatus.Builder b =
        io.peerflash.proto.v1.ClusterStatus.newBuilder()
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
  public io.peerflash.proto.v1.ListClusterEventsResponse events(
      io.peerflash.proto.v1.ListClusterEventsRequest req) {
    var page =
        controlPlane
            .events()
            .page(req.getAfterSeq(), req.getVolume(), req.getNode(), req.getLimit());
    return io.peerflash.proto.v1.ListClusterEventsResponse.newBuilder()
        .addAllEvents(page.events())
        .setLastSeq(page.lastSeq())
        .build();
  }

  // ---------------------------------------------------------------------------------------------
  // Client routing and volume administration ({@link ClusterVolumes})

  @Override
  public void routeIo(String volume) {
    volumes.routeIo(volume);
  }

  @Override
  public Volume createVolume(CreateVolumeRequest req) throws CacheException {
    return volumes.createVolume(req);
  }

  @Override
  public void deleteVolume(String name) throws CacheException {
    volumes.deleteVolume(name);
  }

  @Override
  public Volume setPolicy(SetPolicyRequest req) throws CacheException {
    return volumes.setPolicy(req);
  }

  @Override
  public Volume getVolume(String name) throws CacheException {
    return volumes.getVolume(name);
  }

  @Override
  public java.util.concurrent.CompletableFuture<Void> catchUp() {
    return volumes.catchUp();
  }

  @Override
  public List<Volume> listVolumes() {
    return volumes.listVolumes();
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
    evictions.shutdownNow();
    peers.close();
    controlPlane.close();
    timers.shutdownNow();
  }
}
