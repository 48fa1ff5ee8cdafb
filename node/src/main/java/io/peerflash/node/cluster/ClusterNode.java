package io.peerflash.node.cluster;

import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.peerflash.node.NodeConfig;
import io.peerflash.node.engine.CacheEngine;
import io.peerflash.node.engine.CacheException;
import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.engine.VolumeStatusView;
import io.peerflash.node.health.VolumeHealth;
import io.peerflash.node.health.VolumeRisk;
import io.peerflash.node.index.VolumeInfo;
import io.peerflash.node.index.VolumeInfo.Role;
import io.peerflash.node.net.EventLoops;
import io.peerflash.node.net.NodeTls;
import io.peerflash.node.wire.Protos;
import io.peerflash.proto.v1.AddNodeRequest;
import io.peerflash.proto.v1.AddNodeResponse;
import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.ClusterMember;
import io.peerflash.proto.v1.CommandResult;
import io.peerflash.proto.v1.CreateVolumeRequest;
import io.peerflash.proto.v1.DescribeCopiesRequest;
import io.peerflash.proto.v1.DrainNodeRequest;
import io.peerflash.proto.v1.DrainNodeResponse;
import io.peerflash.proto.v1.MapCommand;
import io.peerflash.proto.v1.MoveVolumeRequest;
import io.peerflash.proto.v1.MoveVolumeResponse;
import io.peerflash.proto.v1.OnPeerLoss;
import io.peerflash.proto.v1.RemoveNodeRequest;
import io.peerflash.proto.v1.RemoveNodeResponse;
import io.peerflash.proto.v1.ReplicaServiceGrpc;
import io.peerflash.proto.v1.ReplicaStatus;
import io.peerflash.proto.v1.SetPolicyRequest;
import io.peerflash.proto.v1.Volume;
import io.peerflash.proto.v1.VolumePolicy;
import io.peerflash.replication.cluster.ClusterMap;
import io.peerflash.replication.cluster.ControlPlane;
import io.peerflash.replication.cluster.ControlPlaneConfig;
import io.peerflash.replication.cluster.MapCommands;
import io.peerflash.replication.cluster.Member;
import io.peerflash.replication.cluster.VolumeRecord;
import io.peerflash.replication.data.EpochGuard;
import io.peerflash.replication.data.PeerReplicator;
import io.peerflash.replication.data.ReplicaException;
import io.peerflash.replication.fault.FaultPoints;
import io.peerflash.util.NamedThreadFactory;
import io.peerflash.util.Texts;
import io.peerflash.util.Time;
import java.io.IOException;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A node as a cluster member: the Raft-held map decides which volumes it owns or replicates; this
 * class keeps the engine in line with the map (volumes, roles), routes client I/O to owners, guards
 * replica copies by epoch, fences the node when its lease lapses, and, on the leader, fails volumes
 * of a DOWN owner over to the replica holding the most.
 */
public final class ClusterNode implements ClusterRouting, ClusterAdmin, EpochGuard, AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(ClusterNode.class);
  private static final Metadata.Key<String> OWNER_KEY =
      Metadata.Key.of(OWNER_TRAILER, Metadata.ASCII_STRING_MARSHALLER);
  private static final Metadata.Key<String> VOLUME_STATE_KEY =
      Metadata.Key.of(VOLUME_STATE_TRAILER, Metadata.ASCII_STRING_MARSHALLER);
  private static final long COMMAND_TIMEOUT_MS = 15_000;
  private static final long MAP_CATCH_UP_MS = 2_000;

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
  private final ConcurrentHashMap<String, ManagedChannel> channels = new ConcurrentHashMap<>();
  private final EventLoops loops;
  private final NodeTls tls;
  private final ConcurrentHashMap<String, PeerReplicator> replicators = new ConcurrentHashMap<>();
  private final ExecutorService evictions =
      Executors.newCachedThreadPool(new NamedThreadFactory("peerflash-evict", true));
  private final ExecutorService copier =
      Executors.newCachedThreadPool(new NamedThreadFactory("peerflash-reprotect", true));
  private final Set<String> failoversInProgress = ConcurrentHashMap.newKeySet();
  private final java.util.concurrent.atomic.LongAdder failoversCommitted =
      new java.util.concurrent.atomic.LongAdder();
  private final java.util.concurrent.atomic.LongAdder fencingRefusals =
      new java.util.concurrent.atomic.LongAdder();
  private final FaultPoints faults;
  private final Time time;
  private final Reprotector reprotector;
  private final VolumeMover mover;
  private final Membership membership;
  private volatile boolean ready;
  private volatile long lapsesAtSync;
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
    this.loops = loops;
    this.tls = tls;
    this.nodeId = config.nodeId();
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
            time,
            config.replicationAckTimeoutMs(),
            2 * (config.leaseTimeoutMs() + config.clockSkewMarginMs()),
            faults);
    this.mover = new VolumeMover(nodeId, engine, controlPlane, this::channel, time);
    this.membership = new Membership(controlPlane, time);
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
            node::targets,
            node::evictReplica,
            new PeerReplicationPort.Admission() {
              @Override
              public void admit(VolumeInfo volume) throws CacheException {
                node.admit(volume);
              }

              @Override
              public boolean admitsNow(VolumeInfo volume) {
                return node.admitsNow(volume);
              }
            }));
    controlPlane.addListener(map -> node.scheduleReconcile());
    node.reconciler.execute(node::initialReconcile);
    return node;
  }

  /**
   * Fencing: serve and destage a volume only with a valid lease that has not lapsed since this node
   * last read the map linearizably, and only while the map still names this node its owner. After a
   * lapse (cut off or frozen), the node re-reads the map first: its volumes may be gone.
   */
  private boolean mayServe(VolumeInfo v) {
    Fencing.Serve verdict =
        Fencing.serve(
            nodeId,
            ready,
            controlPlane.leaseValid(),
            controlPlane.leaseKeeper().lapses(),
            lapsesAtSync,
            controlPlane.map(),
            v.name());
    if (verdict == Fencing.Serve.RESYNC) {
      ready = false;
      log.warn("node {}: lease lapsed; re-reading the cluster map before serving again", nodeId);
      reconciler.execute(this::initialReconcile);
    }
    return verdict == Fencing.Serve.YES;
  }

  public ControlPlane controlPlane() {
    return controlPlane;
  }

  /** Failovers this node committed as the Raft leader since it started. */
  public long failoversCommitted() {
    return failoversCommitted.sum();
  }

  /** Copies this node refused as a replica for a stale epoch or a sender not the owner. */
  public long fencingRefusals() {
    return fencingRefusals.sum();
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
        long lapses = controlPlane.leaseKeeper().lapses();
        ClusterMap map = controlPlane.readLinearizable().get(10, TimeUnit.SECONDS);
        reconcile(map);
        lapsesAtSync = lapses;
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
              maybeFailOver(map);
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
              role == Role.OWNER);
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
   * On the leader: for each volume whose owner is DOWN, ask the live replica holders how much they
   * hold and commit the most complete one as the new owner (compare-and-set on the epoch).
   */
  private void maybeFailOver(ClusterMap map) {
    if (!controlPlane.isLeaderReady()) {
      return;
    }
    for (VolumeRecord rec : map.volumes().values()) {
      if (!FailoverChoice.ownerLost(map, rec)) {
        continue;
      }
      if (!failoversInProgress.add(rec.name())) {
        continue;
      }
      try {
        Map<String, Long> answered = new LinkedHashMap<>();
        for (String candidate : FailoverChoice.candidates(map, rec)) {
          try {
            long seq =
                ReplicaServiceGrpc.newBlockingStub(channel(map.member(candidate).orElseThrow()))
                    .withDeadlineAfter(1, TimeUnit.SECONDS)
                    .describeCopies(
                        DescribeCopiesRequest.newBuilder().setVolume(rec.name()).build())
                    .getMaxSeq();
            answered.put(candidate, seq);
          } catch (RuntimeException e) {
            log.info("failover of {}: {} did not answer: {}", rec.name(), candidate, e.toString());
          }
        }
        String best = FailoverChoice.best(answered);
        long bestSeq = best == null ? -1 : answered.get(best);
        if (best != null) {
          faults.hit(FaultPoints.FAILOVER_BEFORE_CHANGE_OWNER, rec.name());
        }
        if (best == null) {
          log.error(
              "volume {}: owner {} is down and no live replica holds its data; it stays"
                  + " unavailable until {} returns",
              rec.name(),
              rec.owner(),
              rec.owner());
          continue;
        }
        CommandResult r =
            controlPlane
                .submit(MapCommands.changeOwner(rec.name(), best, rec.epoch()))
                .get(COMMAND_TIMEOUT_MS, TimeUnit.MILLISECONDS);
        if (r.getOk()) {
          failoversCommitted.increment();
        }
        log.warn(
            "volume {}: owner {} down; {} takes over at sequence {} ({})",
            rec.name(),
            rec.owner(),
            best,
            bestSeq,
            r.getOk() ? "committed" : r.getMessage());
      } catch (Exception e) {
        log.warn("failover of {} failed; will retry: {}", rec.name(), e.toString());
        timers.schedule(this::scheduleReconcile, 500, TimeUnit.MILLISECONDS);
      } finally {
        failoversInProgress.remove(rec.name());
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Replication targets (owner side) and the epoch guard (replica side)

  private PeerReplicationPort.Targets targets(VolumeInfo v) {
    ClusterMap map = controlPlane.map();
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
  private boolean admitsNow(VolumeInfo v) {
    return admits(controlPlane.map().volume(v.name()).orElse(null));
  }

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
    return CompletableFuture.supplyAsync(() -> evictBlocking(volume, peerId, epoch), evictions)
        .completeOnTimeout(false, config.leaseTimeoutMs(), TimeUnit.MILLISECONDS);
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
                .submit(MapCommands.removeReplica(volume, peerId, rec.epoch()))
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
    return replicators.computeIfAbsent(
        member.id(),
        id -> {
          PeerReplicator r =
              new PeerReplicator(
                  nodeId,
                  id,
                  channel(member),
                  timers,
                  config.replicationAckTimeoutMs(),
                  config.replicationConnectTimeoutMs(),
                  faults,
                  time);
          r.setAckObserver(ackObserver);
          return r;
        });
  }

  private volatile PeerReplicator.AckObserver ackObserver = PeerReplicator.AckObserver.NONE;

  /** Who is told how long each replica took to ack a write's copies (the node's metrics). */
  public void setReplicaAckObserver(PeerReplicator.AckObserver observer) {
    this.ackObserver = observer;
    for (PeerReplicator r : replicators.values()) {
      r.setAckObserver(observer);
    }
  }

  // Replica acks complete the write's future on the transport thread: their callbacks match the
  // ack and answer the client (or wake a waiting writer), so a pool would only add a thread
  // hand-off to every replicated write. Blocking stubs on these channels run on the caller's
  // thread anyway.
  private ManagedChannel channel(Member peer) {
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
  public void checkReplicate(String volume, long epoch, String ownerId) throws ReplicaException {
    long deadline = time.nowMs() + MAP_CATCH_UP_MS;
    while (!tryCheckReplicate(volume, epoch, ownerId)) {
      // This node's map (or its engine) is behind the sender's: wait a little for it.
      if (time.nowMs() > deadline) {
        throw new ReplicaException(
            ReplicaException.Code.UNAVAILABLE,
            "node " + nodeId + " has not caught up with epoch " + epoch + " of " + volume);
      }
      sleep(10);
    }
  }

  @Override
  public boolean tryCheckReplicate(String volume, long epoch, String ownerId)
      throws ReplicaException {
    try {
      return Fencing.acceptCopy(
          nodeId,
          controlPlane.map().volume(volume).orElse(null),
          ready,
          () -> heldAsReplica(volume),
          volume,
          epoch,
          ownerId);
    } catch (ReplicaException e) {
      fencingRefusals.increment();
      throw e;
    }
  }

  private boolean heldAsReplica(String volume) {
    try {
      return engine.getVolume(volume).role() == Role.REPLICA;
    } catch (CacheException e) {
      return false;
    }
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

  // ---------------------------------------------------------------------------------------------
  // Client routing and volume administration

  @Override
  public void routeIo(String volume) {
    ClusterMap map = controlPlane.map();
    VolumeRecord rec = map.volume(volume).orElse(null);
    if (rec == null) {
      throw Status.NOT_FOUND
          .withDescription("volume " + Texts.quote(volume) + " does not exist")
          .asRuntimeException();
    }
    if (!rec.owner().equals(nodeId)) {
      Optional<Member> owner = map.member(rec.owner());
      if (owner.isEmpty() || !owner.get().isAlive()) {
        Map<String, ClusterMember> members = new java.util.HashMap<>();
        for (Member m : map.members().values()) {
          members.put(m.id(), m.toProto());
        }
        VolumeHealth.Assessment health = VolumeHealth.assess(rec.toProto(), members, null);
        if (health.state() == io.peerflash.proto.v1.VolumeState.OFFLINE) {
          // No failover can happen: the client is told so (the trailer stops its retries)
          // instead of retrying for its whole budget.
          Metadata trailers = new Metadata();
          trailers.put(VOLUME_STATE_KEY, health.state().name());
          throw Status.UNAVAILABLE
              .withDescription("volume '" + volume + "' is OFFLINE: " + health.reason())
              .asRuntimeException(trailers);
        }
        throw Status.UNAVAILABLE
            .withDescription(
                "volume '"
                    + volume
                    + "': its owner "
                    + rec.owner()
                    + " is down; failover in"
                    + " progress")
            .asRuntimeException();
      }
      Metadata trailers = new Metadata();
      trailers.put(OWNER_KEY, rec.owner() + "@" + owner.get().grpcAddress());
      throw Status.FAILED_PRECONDITION
          .withDescription(
              "volume '"
                  + volume
                  + "' is owned by "
                  + rec.owner()
                  + " at "
                  + owner.get().grpcAddress())
          .asRuntimeException(trailers);
    }
    if (!ready || !heldAsOwner(volume)) {
      // The map names this node already, its engine not yet (a failover or move applied a
      // moment ago): retryable, unlike the engine's "held as a replica" answer.
      throw Status.UNAVAILABLE
          .withDescription("node " + nodeId + " is taking over volume " + Texts.quote(volume))
          .asRuntimeException();
    }
  }

  private boolean heldAsOwner(String name) {
    try {
      return engine.getVolume(name).role() == Role.OWNER;
    } catch (CacheException e) {
      return false;
    }
  }

  @Override
  public Volume createVolume(CreateVolumeRequest req) throws CacheException {
    if (req.getPolicy().getMode() == CacheMode.CACHE_MODE_UNSPECIFIED) {
      throw new CacheException(
          Reason.INVALID_ARGUMENT, "policy.mode must be WRITE_BACK, WRITE_THROUGH or WRITE_AROUND");
    }
    String name = req.getName();
    if (!VolumeInfo.isValidName(name)) {
      throw new CacheException(
          Reason.INVALID_ARGUMENT,
          "volume name " + Texts.quote(name) + " is invalid: use " + VolumeInfo.NAME_RULE);
    }
    ClusterMap map = controlPlane.map();
    if (map.volume(name).isPresent()) {
      throw new CacheException(
          Reason.ALREADY_EXISTS, "volume " + Texts.quote(name) + " already exists");
    }
    engine.checkVolumeCount(map.volumes().size());
    // Shared storage first: the size against the largest file it holds, and a file already
    // there is refused (or adopted when asked), before the map records anything.
    long sizeBytes = engine.prepareBackingFile(name, req.getSizeBytes(), req.getAdoptExisting());
    CommandResult r;
    try {
      // After the size checks (a bad size is INVALID_ARGUMENT whatever the replica count).
      String owner = map.member(nodeId).filter(Member::isUp).isPresent() ? nodeId : null;
      checkReplicasCanBeMet(map, name, req.getPolicy(), owner, req.getAllowDegraded());
      r =
          submit(
              MapCommand.newBuilder()
                  .setCreateVolume(
                      MapCommand.CreateVolume.newBuilder()
                          .setName(name)
                          .setSizeBytes(sizeBytes)
                          .setMode(req.getPolicy().getMode())
                          .setReplicas(req.getPolicy().getReplicas())
                          .setOnPeerLoss(req.getPolicy().getOnPeerLoss())
                          .setPreferredOwner(nodeId))
                  .build());
    } catch (CacheException e) {
      // The new file is ours alone unless a volume of that name made it into the map meanwhile.
      if (!req.getAdoptExisting() && controlPlane.map().volume(name).isEmpty()) {
        engine.discardNewBackingFile(name);
      }
      throw e;
    }
    VolumeRecord rec = VolumeRecord.fromProto(r.getVolume());
    awaitLocal(rec);
    return volume(controlPlane.map(), rec);
  }

  @Override
  public void deleteVolume(String name) throws CacheException {
    submit(
        MapCommand.newBuilder()
            .setDeleteVolume(MapCommand.DeleteVolume.newBuilder().setName(name))
            .build());
  }

  @Override
  public Volume setPolicy(SetPolicyRequest req) throws CacheException {
    ClusterMap map = controlPlane.map();
    VolumeRecord current =
        map.volume(req.getName()).orElseThrow(() -> CacheException.notFound(req.getName()));
    if (req.getPolicy().getReplicas() > current.requestedReplicas()
        || req.getPolicy().getMode() != current.mode()) {
      // Only a change that asks for more copies (or turns write-back on) can newly be unmet.
      checkReplicasCanBeMet(
          map, req.getName(), req.getPolicy(), current.owner(), req.getAllowDegraded());
    }
    CommandResult r =
        submit(
            MapCommand.newBuilder()
                .setSetPolicy(
                    MapCommand.SetPolicy.newBuilder()
                        .setName(req.getName())
                        .setMode(req.getPolicy().getMode())
                        .setReplicas(req.getPolicy().getReplicas())
                        .setOnPeerLoss(
                            req.getPolicy().getOnPeerLoss() == OnPeerLoss.ON_PEER_LOSS_UNSPECIFIED
                                ? current.onPeerLoss()
                                : req.getPolicy().getOnPeerLoss()))
                .build());
    return volume(controlPlane.map(), VolumeRecord.fromProto(r.getVolume()));
  }

  /**
   * Refuses a replica count more than the cluster's other UP members can hold, unless the caller
   * accepts a DEGRADED volume: otherwise the volume would run under its peer-loss policy from the
   * start (writes going through to shared storage, or waiting) without anyone having asked.
   *
   * @param owner the volume's owner, or null when the map will pick one
   */
  private static void checkReplicasCanBeMet(
      ClusterMap map, String name, VolumePolicy policy, String owner, boolean allowDegraded)
      throws CacheException {
    int wanted = policy.getReplicas();
    if (allowDegraded
        || policy.getMode() != CacheMode.WRITE_BACK
        || wanted <= 0
        || wanted > io.peerflash.replication.data.Replicas.MAX_REPLICAS) {
      return; // (an out-of-range count is the map's INVALID_ARGUMENT)
    }
    List<String> up = new ArrayList<>();
    List<String> others = new ArrayList<>();
    for (Member m : map.members().values()) {
      others.add(m.id() + " " + m.state());
      if (m.isUp()) {
        up.add(m.id());
      }
    }
    int holders =
        owner == null
            ? Math.max(0, up.size() - 1)
            : (int) up.stream().filter(id -> !id.equals(owner)).count();
    if (wanted > holders) {
      throw new CacheException(
          Reason.FAILED_PRECONDITION,
          "volume "
              + Texts.quote(name)
              + " wants "
              + wanted
              + (wanted == 1 ? " replica" : " replicas")
              + " but the cluster has "
              + holders
              + " UP member"
              + (holders == 1 ? "" : "s")
              + " besides its owner to hold them (members: "
              + String.join(", ", others)
              + "): add nodes, ask for at most "
              + holders
              + ", or allow a DEGRADED volume (--allow-degraded)");
    }
  }

  @Override
  public Volume getVolume(String name) throws CacheException {
    ClusterMap map = controlPlane.map();
    VolumeRecord rec = map.volume(name).orElseThrow(() -> CacheException.notFound(name));
    return volume(map, rec);
  }

  @Override
  public List<Volume> listVolumes() {
    List<Volume> all = new ArrayList<>();
    ClusterMap map = controlPlane.map();
    for (VolumeRecord rec : map.volumes().values()) {
      all.add(volume(map, rec));
    }
    return all;
  }

  /**
   * Empty while this node may serve the volumes it owns; otherwise why not (see {@link #mayServe}).
   */
  public String fencedReason() {
    if (!ready) {
      return "node " + nodeId + " is not yet in step with the cluster map";
    }
    if (!controlPlane.leaseValid()) {
      return "node "
          + nodeId
          + " holds no valid cluster lease (cut off from the Raft majority or paused): it serves"
          + " nothing until it renews it";
    }
    return "";
  }

  private Volume volume(ClusterMap map, VolumeRecord rec) {
    Volume.Builder b =
        Volume.newBuilder()
            .setName(rec.name())
            .setSizeBytes(rec.sizeBytes())
            .setPolicy(
                VolumePolicy.newBuilder()
                    .setMode(rec.mode())
                    .setReplicas(rec.requestedReplicas())
                    .setOnPeerLoss(rec.onPeerLoss()))
            .setOwner(rec.owner())
            .setEpoch(rec.epoch())
            .setEffectiveReplicas(rec.replicaSet().size());
    VolumeHealth.OwnerReport report = null;
    if (rec.owner().equals(nodeId)) {
      Map<String, Reprotector.Progress> copies = reprotector.progress();
      for (String peer : rec.allReplicas()) {
        ReplicaStatus.Builder r =
            ReplicaStatus.newBuilder().setNode(peer).setInSync(rec.replicaSet().contains(peer));
        PeerReplicator rep = replicators.get(peer);
        if (rep != null) {
          r.setInFlightBatches(rep.inFlight()).setLagMs(rep.oldestInFlightMs());
        }
        Reprotector.Progress p = copies.get(rec.name() + "/" + peer);
        if (p != null) {
          r.setResyncRemainingBytes(Math.max(0, p.totalBytes() - p.ackedBytes()));
        }
        b.addReplicas(r);
      }
      try {
        VolumeStatusView s = engine.volumeStatus(rec.name());
        b.setAtRiskBytes(
            VolumeRisk.atRiskBytes(
                s.dirtyBytes(), rec.requestedReplicas(), rec.replicaSet().size()));
        b.setDirtyBytes(s.dirtyBytes())
            .setCachedBytes(s.cachedBytes())
            .setOldestDirtyAgeMs(s.oldestDirtyAgeMs())
            .setCorruptBlocks(s.corruptBlocks());
        report =
            new VolumeHealth.OwnerReport(
                Protos.state(s.health()),
                s.healthDetail(),
                s.dirtyBytes(),
                mover.moving(rec.name())
                    ? "being handed to another node (volume move)"
                    : fencedReason());
      } catch (CacheException e) {
        // not adopted yet
      }
    }
    Map<String, ClusterMember> members = new java.util.HashMap<>();
    for (Member m : map.members().values()) {
      members.put(m.id(), m.toProto());
    }
    VolumeHealth.Assessment health = VolumeHealth.assess(rec.toProto(), members, report);
    b.setState(health.state()).addAllProblems(health.problems());
    if (!health.healthy()) {
      b.setStateDetail(health.reason());
    }
    String detail =
        "owner "
            + rec.owner()
            + ", epoch "
            + rec.epoch()
            + ", replicas "
            + rec.replicaSet()
            + (rec.syncing().isEmpty() ? "" : ", re-protecting to " + rec.syncing())
            + (rec.underReplicated() ? " (fewer than requested: " + peerLossEffect(rec) + ")" : "");
    if (b.getStateDetail().isEmpty()) {
      b.setStateDetail(detail);
    }
    return b.build();
  }

  private static String peerLossEffect(VolumeRecord rec) {
    return switch (rec.onPeerLoss()) {
      case ON_PEER_LOSS_BLOCK -> "writes wait for re-protection";
      case ON_PEER_LOSS_ACCEPT -> "writes are acknowledged with fewer copies, at risk";
      default -> "writes go through to shared storage";
    };
  }

  /**
   * Waits (bounded) until the owner and every replica hold the new volume, so the first writes do
   * not find a replica that has not caught up and lose it.
   */
  private void awaitLocal(VolumeRecord rec) {
    long deadline = time.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    if (rec.owner().equals(nodeId)) {
      while (!held(rec.name()) && time.nanoTime() - deadline < 0) {
        sleep(10);
      }
    }
    for (String replica : rec.replicaSet()) {
      Optional<Member> m = controlPlane.map().member(replica);
      if (m.isEmpty()) {
        continue;
      }
      while (time.nanoTime() - deadline < 0) {
        try {
          ReplicaServiceGrpc.newBlockingStub(channel(m.get()))
              .withDeadlineAfter(1, TimeUnit.SECONDS)
              .describeCopies(DescribeCopiesRequest.newBuilder().setVolume(rec.name()).build());
          break;
        } catch (RuntimeException e) {
          sleep(20); // not adopted there yet
        }
      }
    }
  }

  private CommandResult submit(MapCommand command) throws CacheException {
    CommandResult r;
    try {
      r = controlPlane.submit(command).get(COMMAND_TIMEOUT_MS, TimeUnit.MILLISECONDS);
    } catch (Exception e) {
      throw new CacheException(
          Reason.UNAVAILABLE, "the cluster did not commit the change: " + e, e);
    }
    if (r.getOk()) {
      return r;
    }
    Reason reason =
        switch (r.getError()) {
          case CLUSTER_ERROR_VOLUME_NOT_FOUND -> Reason.NOT_FOUND;
          case CLUSTER_ERROR_VOLUME_EXISTS -> Reason.ALREADY_EXISTS;
          case CLUSTER_ERROR_INVALID_ARGUMENT -> Reason.INVALID_ARGUMENT;
          case CLUSTER_ERROR_NO_CAPACITY -> Reason.RESOURCE_EXHAUSTED;
          default -> Reason.FAILED_PRECONDITION;
        };
    throw new CacheException(reason, r.getMessage());
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
    for (PeerReplicator r : replicators.values()) {
      r.close();
    }
    for (ManagedChannel c : channels.values()) {
      c.shutdownNow();
    }
    controlPlane.close();
    timers.shutdownNow();
  }
}
