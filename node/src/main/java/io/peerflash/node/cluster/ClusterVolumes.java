package io.peerflash.node.cluster;

import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import io.peerflash.node.engine.CacheEngine;
import io.peerflash.node.engine.CacheException;
import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.engine.VolumeStatusView;
import io.peerflash.node.health.VolumeHealth;
import io.peerflash.node.health.VolumeRisk;
import io.peerflash.node.index.VolumeInfo;
import io.peerflash.node.index.VolumeInfo.Role;
import io.peerflash.node.wire.Protos;
import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.ClusterMember;
import io.peerflash.proto.v1.CommandResult;
import io.peerflash.proto.v1.CreateVolumeRequest;
import io.peerflash.proto.v1.DescribeCopiesRequest;
import io.peerflash.proto.v1.MapCommand;
import io.peerflash.proto.v1.OnPeerLoss;
import io.peerflash.proto.v1.ReplicaServiceGrpc;
import io.peerflash.proto.v1.ReplicaStatus;
import io.peerflash.proto.v1.SetPolicyRequest;
import io.peerflash.proto.v1.Volume;
import io.peerflash.proto.v1.VolumePolicy;
import io.peerflash.replication.control.ClusterMap;
import io.peerflash.replication.control.ControlPlane;
import io.peerflash.replication.control.Member;
import io.peerflash.replication.control.VolumeRecord;
import io.peerflash.replication.data.PeerReplicator;
import io.peerflash.util.Texts;
import io.peerflash.util.Time;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * Client routing and volume administration through the cluster map: which node serves a volume's
 * I/O, create, delete and set-policy as map commands, and each volume as clients see it (its state
 * judged by {@link VolumeHealth} from the map and, on its owner, the engine).
 */
final class ClusterVolumes implements ClusterRouting {
  private static final Metadata.Key<String> OWNER_KEY =
      Metadata.Key.of(OWNER_TRAILER, Metadata.ASCII_STRING_MARSHALLER);
  private static final Metadata.Key<String> VOLUME_STATE_KEY =
      Metadata.Key.of(VOLUME_STATE_TRAILER, Metadata.ASCII_STRING_MARSHALLER);
  private static final long COMMAND_TIMEOUT_MS = 15_000;

  /** What this needs of the node it belongs to. */
  interface Local {
    /** In step with the map: its engine holds what the map says. */
    boolean ready();

    /** Why the node may not serve its volumes now; empty when it may. */
    String fencedReason();

    /** Whether the engine holds the volume (in any role). */
    boolean held(String volume);

    ManagedChannel channel(Member peer);
  }

  private final String nodeId;
  private final ControlPlane controlPlane;
  private final CacheEngine engine;
  private final Time time;
  private final Reprotector reprotector;
  private final VolumeMover mover;
  private final Map<String, PeerReplicator> replicators;
  private final Local local;

  ClusterVolumes(
      String nodeId,
      ControlPlane controlPlane,
      CacheEngine engine,
      Time time,
      Reprotector reprotector,
      VolumeMover mover,
      Map<String, PeerReplicator> replicators,
      Local local) {
    this.nodeId = nodeId;
    this.controlPlane = controlPlane;
    this.engine = engine;
    this.time = time;
    this.reprotector = reprotector;
    this.mover = mover;
    this.replicators = replicators;
    this.local = local;
  }

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
    if (!local.ready() || !heldAsOwner(volume)) {
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
  public CompletableFuture<Void> catchUp() {
    // A dependent future: a timeout here must not fail the read other callers share.
    return time.orTimeout(controlPlane.catchUp().<Void>thenApply(map -> null), CATCH_UP_TIMEOUT_MS);
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
                    : local.fencedReason());
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
      while (!local.held(rec.name()) && time.nanoTime() - deadline < 0) {
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
          ReplicaServiceGrpc.newBlockingStub(local.channel(m.get()))
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
      awaitOwnMap();
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

  /**
   * Waits (bounded) until this node's map holds a change it just committed: the leader answered
   * once it applied the command, this node applies it a moment later (a follower learns of the
   * commit with the next append), and a stat or list through this node right after must not show
   * the volume as it was before (a policy just raised to one replica shown HEALTHY with none).
   */
  private void awaitOwnMap() {
    try {
      catchUp().get();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (java.util.concurrent.ExecutionException e) {
      // The change is committed either way; only this node's view of it may lag.
    }
  }

  /** A pause in a wait loop, on the node's clock (whose deadlines the loops read). */
  private void sleep(long ms) {
    try {
      time.sleepMs(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
