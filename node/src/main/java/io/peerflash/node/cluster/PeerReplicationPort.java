package io.peerflash.node.cluster;

import com.google.protobuf.UnsafeByteOperations;
import io.peerflash.node.engine.CacheException;
import io.peerflash.node.engine.Placement;
import io.peerflash.node.engine.ReplicationPort;
import io.peerflash.node.engine.ReplicationPort.StuckException;
import io.peerflash.node.index.VolumeInfo;
import io.peerflash.proto.v1.BlockImage;
import io.peerflash.proto.v1.OnPeerLoss;
import io.peerflash.replication.control.ClusterMap;
import io.peerflash.replication.control.VolumeRecord;
import io.peerflash.replication.data.BlockCopy;
import io.peerflash.replication.data.PeerReplicator;
import io.peerflash.replication.data.ReplicaException;
import io.peerflash.util.Time;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.function.Function;

/**
 * The write path's replication over gRPC: each write's block images go to every replica of the
 * volume at the volume's current epoch, and the write waits for all of them. Which peers and which
 * epoch come from the write's {@link Placement}, resolved from one read of the cluster map.
 */
public final class PeerReplicationPort implements ReplicationPort {
  private static final org.slf4j.Logger log =
      org.slf4j.LoggerFactory.getLogger(PeerReplicationPort.class);

  /**
   * Where a volume's copies go now.
   *
   * @param replicas every peer that must get the copies: in-sync replicas and those being filled by
   *     re-protection
   * @param inSync how many of them count as copies (the in-sync ones)
   * @param acceptFewer the volume's on-peer-loss policy accepts acknowledging with fewer copies
   */
  public record Targets(
      long epoch, String ownerId, List<PeerReplicator> replicas, int inSync, boolean acceptFewer) {
    public Targets(long epoch, String ownerId, List<PeerReplicator> replicas) {
      this(epoch, ownerId, replicas, replicas.size(), false);
    }

    boolean underReplicated(VolumeInfo volume) {
      return inSync < volume.replicas() && !acceptFewer;
    }
  }

  /**
   * Where a volume's copies go by one map, as peer ids: the decision {@link Targets} is built from.
   *
   * @param peers in-sync replicas and those being filled, each a member of the map
   * @param inSync how many of them are in sync
   * @param acceptFewer the volume's on-peer-loss policy accepts acknowledging with fewer copies
   */
  record CopyPlan(long epoch, String ownerId, List<String> peers, int inSync, boolean acceptFewer) {

    /**
     * The plan of {@code volume} by {@code map}; null unless the map names {@code nodeId} owner.
     */
    static CopyPlan of(String nodeId, ClusterMap map, String volume) {
      VolumeRecord rec = map.volume(volume).orElse(null);
      if (rec == null || !rec.owner().equals(nodeId)) {
        return null;
      }
      List<String> peers = new ArrayList<>();
      int inSync = 0;
      for (String id : rec.allReplicas()) {
        if (map.member(id).isPresent()) {
          peers.add(id);
          inSync += rec.replicaSet().contains(id) ? 1 : 0;
        }
      }
      boolean acceptFewer = rec.onPeerLoss() == OnPeerLoss.ON_PEER_LOSS_ACCEPT;
      return new CopyPlan(rec.epoch(), nodeId, List.copyOf(peers), inSync, acceptFewer);
    }

    /** Fewer peers count as copies than {@code requestedReplicas}, and the policy minds. */
    boolean underReplicated(int requestedReplicas) {
      return inSync < requestedReplicas && !acceptFewer;
    }
  }

  /**
   * Removes a replica that failed to take a copy from the volume's replica set (in the cluster map)
   * before the write may be acknowledged without it: a replica that missed an acknowledged write
   * must never be chosen at failover. Completes with true once the map no longer lists it (at a
   * newer epoch, with this node still the owner).
   */
  public interface ReplicaEviction {
    CompletableFuture<Boolean> evict(String volume, String peerId, long epoch);
  }

  /** Waits (bounded) until a volume may take writes under its on-peer-loss policy. */
  public interface Admission {
    void admit(VolumeInfo volume) throws CacheException;
  }

  /**
   * What one read of the cluster map says about a write of a volume on this node.
   *
   * @param mayServe the fencing verdict: this node may serve the volume
   * @param admitsNow the on-peer-loss policy lets it take a write without waiting
   * @param targets where its copies go; null when it keeps none
   */
  public record Resolved(boolean mayServe, boolean admitsNow, Targets targets) {}

  private final Function<VolumeInfo, Resolved> resolver;
  private final ReplicaEviction eviction;
  private final Admission admission;
  private final Time time;

  /**
   * A port whose volumes are always served and admitted (tests of the copies alone).
   *
   * @param lookup the volume's epoch and replica peers; null or no replicas means no copies
   */
  public PeerReplicationPort(Function<VolumeInfo, Targets> lookup) {
    this(lookup, (volume, peer, epoch) -> CompletableFuture.completedFuture(true));
  }

  public PeerReplicationPort(Function<VolumeInfo, Targets> lookup, ReplicaEviction eviction) {
    this(v -> new Resolved(true, true, lookup.apply(v)), eviction, volume -> {});
  }

  /**
   * @param resolver the placement of a write by one read of the map ({@link #place})
   */
  public PeerReplicationPort(
      Function<VolumeInfo, Resolved> resolver, ReplicaEviction eviction, Admission admission) {
    this(resolver, eviction, admission, Time.SYSTEM);
  }

  /**
   * @param time the clock (and its timer) of a refused owner's wait for its own map
   */
  public PeerReplicationPort(
      Function<VolumeInfo, Resolved> resolver,
      ReplicaEviction eviction,
      Admission admission,
      Time time) {
    this.resolver = resolver;
    this.eviction = eviction;
    this.admission = admission;
    this.time = time;
  }

  @Override
  public void admit(VolumeInfo volume) throws CacheException {
    admission.admit(volume);
  }

  @Override
  public Placement place(VolumeInfo volume) {
    Resolved resolved = resolver.apply(volume);
    return new Placement() {
      @Override
      public boolean mayServe() {
        return resolved.mayServe();
      }

      @Override
      public boolean admitsNow() {
        return resolved.admitsNow();
      }

      @Override
      public CompletableFuture<Void> replicate(VolumeInfo v, List<BlockCopy> blocks) {
        return PeerReplicationPort.this.replicate(v, resolved.targets(), blocks);
      }
    };
  }

  /** The targets of the map as it is now (a refused epoch is retried with them). */
  private Targets lookup(VolumeInfo volume) {
    return resolver.apply(volume).targets();
  }

  /** A block image for the wire; its data is wrapped, not copied. */
  static BlockImage image(BlockCopy b) {
    BlockImage.Builder img = BlockImage.newBuilder().setBlock(b.block()).setSeq(b.seq());
    if (b.data() == null) {
      img.setZero(true);
    } else {
      // Zero-copy: the engine keeps the buffer unchanged until the future completes.
      img.setData(UnsafeByteOperations.unsafeWrap(b.data().duplicate()));
    }
    return img.build();
  }

  /** Sends one write's copies to the targets of its placement ({@link Placement#replicate}). */
  private CompletableFuture<Void> replicate(VolumeInfo volume, Targets t, List<BlockCopy> blocks) {
    if (volume.replicas() == 0 || t == null) {
      return null;
    }
    if (t.replicas().isEmpty()) {
      return t.underReplicated(volume) ? CompletableFuture.failedFuture(fewer(t, volume)) : null;
    }
    List<BlockImage> images = new ArrayList<>(blocks.size());
    for (BlockCopy b : blocks) {
      images.add(image(b));
    }
    CompletableFuture<Void> result = new CompletableFuture<>();
    attempt(volume, images, t, 1, result);
    return result;
  }

  /**
   * Sends to the targets of one epoch. A refused epoch is retried with the map's newer targets
   * while this node is still the owner (a replica-set change also bumps the epoch).
   */
  private void attempt(
      VolumeInfo volume,
      List<BlockImage> images,
      Targets t,
      int attemptNo,
      CompletableFuture<Void> result) {
    // Each peer: its ack, or, if it failed for any reason but a refused epoch, its removal from
    // the replica set (true) or the failure to remove it (false).
    List<CompletableFuture<Outcome>> outcomes = new ArrayList<>();
    for (PeerReplicator r : t.replicas()) {
      outcomes.add(
          r.replicate(volume.name(), t.epoch(), t.ownerId(), images)
              .handle((ok, failure) -> failure)
              .thenCompose(
                  failure -> {
                    if (failure == null) {
                      return CompletableFuture.completedFuture(Outcome.ACKED);
                    }
                    Throwable cause =
                        failure instanceof CompletionException ? failure.getCause() : failure;
                    if (cause instanceof ReplicaException re
                        && re.code() == ReplicaException.Code.FAILED_PRECONDITION) {
                      return CompletableFuture.completedFuture(Outcome.FENCED);
                    }
                    log.warn(
                        "volume {}: replica {} failed at epoch {}: {}",
                        volume.name(),
                        r.peerId(),
                        t.epoch(),
                        cause.toString());
                    return eviction
                        .evict(volume.name(), r.peerId(), t.epoch())
                        .handle((done, e) -> e == null && done ? Outcome.EVICTED : Outcome.STUCK);
                  }));
    }
    CompletableFuture.allOf(outcomes.toArray(CompletableFuture[]::new))
        .whenComplete(
            (ignored, never) -> {
              List<Outcome> all = new ArrayList<>(outcomes.size());
              for (CompletableFuture<Outcome> o : outcomes) {
                all.add(o.join());
              }
              switch (ackVerdict(all, t.underReplicated(volume))) {
                case RETRY_FENCED -> retryFenced(volume, images, t, attemptNo, result, 0);
                case STUCK ->
                    // Could neither reach a replica nor take it out of the map: acknowledging now
                    // would let it win a later failover without this write.
                    result.completeExceptionally(
                        new StuckException(
                            "a replica is unreachable and could not be removed from the cluster"
                                + " map (no Raft leader reachable); the write was not"
                                + " acknowledged"));
                case GO_THROUGH_EVICTED ->
                    result.completeExceptionally(
                        new ReplicaException(
                            ReplicaException.Code.UNAVAILABLE,
                            "a replica was lost and removed; the write goes through"));
                case GO_THROUGH_FEWER ->
                    // Every peer has it, but fewer of them count as copies than the policy asks
                    // for (re-protection is filling a new one): the write must go through as well.
                    result.completeExceptionally(fewer(t, volume));
                case ACK -> result.complete(null);
              }
            });
  }

  /** What became of one peer's copy of a write. */
  enum Outcome {
    /** The peer stored it. */
    ACKED,
    /** The peer refused the epoch (or the sender as owner at it). */
    FENCED,
    /** The peer failed otherwise and was removed from the replica set in the map. */
    EVICTED,
    /** The peer failed otherwise and could not be removed from the map. */
    STUCK
  }

  /** What the write does once every peer's outcome is known. */
  enum AckVerdict {
    /** Acknowledge the write (once the local store has it). */
    ACK,
    /** A peer refused the epoch: retry with the map's newer targets while still the owner. */
    RETRY_FENCED,
    /** Fail the write: a peer that may lack it is still in the map. */
    STUCK,
    /** A peer was removed: the write goes through to shared storage before its ack. */
    GO_THROUGH_EVICTED,
    /** Fewer peers count as copies than the policy asks for: the write goes through. */
    GO_THROUGH_FEWER
  }

  /**
   * The ack decision of a replicated write: acknowledged from the copies only when every peer of
   * the targets acked it and they are as many as the policy asks for.
   *
   * @param underReplicated fewer of the targets count as copies than the volume's policy asks for
   */
  static AckVerdict ackVerdict(List<Outcome> outcomes, boolean underReplicated) {
    if (outcomes.contains(Outcome.FENCED)) {
      return AckVerdict.RETRY_FENCED;
    }
    if (outcomes.contains(Outcome.STUCK)) {
      return AckVerdict.STUCK;
    }
    if (outcomes.contains(Outcome.EVICTED)) {
      return AckVerdict.GO_THROUGH_EVICTED;
    }
    return underReplicated ? AckVerdict.GO_THROUGH_FEWER : AckVerdict.ACK;
  }

  private static final int MAX_ATTEMPTS = 3;

  /** How long a refused owner waits for its own map to show the newer epoch, and how often. */
  static final long MAP_CATCH_UP_MS = 500;

  static final long MAP_CATCH_UP_POLL_MS = 10;

  /**
   * A replica refused this node's epoch: retries with the map's newer targets while this node is
   * still the owner. The replica may have applied an epoch change (a policy change, re-protection)
   * a moment before this node did: then this node waits, briefly, for its own map to catch up
   * instead of failing a write it still owns (the replica does the same the other way round).
   */
  private void retryFenced(
      VolumeInfo volume,
      List<BlockImage> images,
      Targets t,
      int attemptNo,
      CompletableFuture<Void> result,
      long waitedMs) {
    Targets newer = attemptNo < MAX_ATTEMPTS ? lookup(volume) : null;
    if (newer != null && newer.epoch() > t.epoch()) {
      attempt(volume, images, newer, attemptNo + 1, result);
      return;
    }
    if (newer != null && newer.epoch() == t.epoch() && waitedMs < MAP_CATCH_UP_MS) {
      // Still the owner at the same epoch by this node's map: it may be behind the replica's.
      time.schedule(
          MAP_CATCH_UP_POLL_MS,
          () -> retryFenced(volume, images, t, attemptNo, result, waitedMs + MAP_CATCH_UP_POLL_MS));
      return;
    }
    result.completeExceptionally(new FencedException("a replica refused epoch " + t.epoch()));
  }

  private static ReplicaException fewer(Targets t, VolumeInfo volume) {
    return new ReplicaException(
        ReplicaException.Code.UNAVAILABLE,
        t.inSync() + " of " + volume.replicas() + " replicas in sync; the write goes through");
  }

  /**
   * Asks every in-sync replica of the targets to sync ({@link PeerReplicator#syncCopies}), in
   * parallel. The flush it serves fails when one of them fails to sync while the map still lists
   * it; one the map no longer lists by then (removed meanwhile) follows the rule of a write's ack:
   * under on-peer-loss accept the flush covers the copies that exist, otherwise it goes through to
   * shared storage. A replica that refused this node's epoch is asked again at the map's epoch
   * while this node is still the owner. Replicas being filled by re-protection are not asked: they
   * do not count as copies yet (and a volume waiting for one goes through).
   */
  @Override
  public CompletableFuture<CopiesSynced> syncCopies(VolumeInfo volume) {
    if (volume.replicas() == 0) {
      return null;
    }
    Targets t = lookup(volume);
    if (t == null) {
      return null;
    }
    CopiesSynced whenAllSynced =
        t.underReplicated(volume) ? CopiesSynced.GO_THROUGH : CopiesSynced.SYNCED;
    List<CompletableFuture<CopiesSynced>> each = new ArrayList<>();
    for (PeerReplicator r : t.replicas().subList(0, Math.min(t.inSync(), t.replicas().size()))) {
      each.add(syncOne(volume, r, t, 1));
    }
    return CompletableFuture.allOf(each.toArray(CompletableFuture[]::new))
        .thenApply(
            ignored -> {
              CopiesSynced verdict = whenAllSynced;
              for (CompletableFuture<CopiesSynced> one : each) {
                if (one.join() == CopiesSynced.GO_THROUGH) {
                  verdict = CopiesSynced.GO_THROUGH;
                }
              }
              return verdict;
            });
  }

  /** Attempts of one replica's sync refused for its epoch: waits of 10 ms to 320 ms between. */
  private static final int MAX_SYNC_ATTEMPTS = 7;

  /** One replica's sync, asked again at a newer epoch if it refused this one. */
  private CompletableFuture<CopiesSynced> syncOne(
      VolumeInfo volume, PeerReplicator r, Targets t, int attemptNo) {
    return r.syncCopies(volume.name(), t.epoch(), t.ownerId())
        .handle((ok, failure) -> failure)
        .thenCompose(
            failure -> {
              if (failure == null) {
                return CompletableFuture.completedFuture(CopiesSynced.SYNCED);
              }
              Throwable cause =
                  failure instanceof CompletionException ? failure.getCause() : failure;
              Targets now = lookup(volume);
              if (now == null) {
                return CompletableFuture.failedFuture(
                    new FencedException(
                        "this node is no longer the owner of volume '" + volume.name() + "'"));
              }
              if (!now.replicas().contains(r)) {
                // Removed from the volume's replicas meanwhile: its copies no longer count.
                return CompletableFuture.completedFuture(
                    now.acceptFewer() ? CopiesSynced.SYNCED : CopiesSynced.GO_THROUGH);
              }
              if (cause instanceof ReplicaException re
                  && re.code() == ReplicaException.Code.FAILED_PRECONDITION
                  && attemptNo < MAX_SYNC_ATTEMPTS) {
                // The replica is at another epoch than this node's map (a policy change or
                // re-protection a moment ago): ask again at the map's, after a moment; the waits
                // double, past MAP_CATCH_UP_MS in all, for a map that is behind the replica's.
                CompletableFuture<Targets> later = new CompletableFuture<>();
                time.schedule(
                    MAP_CATCH_UP_POLL_MS << (attemptNo - 1),
                    () -> {
                      try {
                        later.complete(lookup(volume));
                      } catch (RuntimeException e) {
                        later.completeExceptionally(e);
                      }
                    });
                return later.thenCompose(
                    newer ->
                        newer == null
                            ? CompletableFuture.failedFuture(cause)
                            : syncOne(volume, r, newer, attemptNo + 1));
              }
              log.warn(
                  "volume {}: replica {} did not sync its copies for a flush: {}",
                  volume.name(),
                  r.peerId(),
                  cause.toString());
              return CompletableFuture.failedFuture(
                  new ReplicaException(
                      ReplicaException.Code.UNAVAILABLE,
                      "replica "
                          + r.peerId()
                          + " did not make its copies durable: "
                          + (cause instanceof ReplicaException re
                              ? re.description()
                              : cause.toString()),
                      cause));
            });
  }

  @Override
  public void released(VolumeInfo volume, long[] blocks, long[] seqs) {
    if (volume.replicas() == 0 || blocks.length == 0) {
      return;
    }
    Targets t = lookup(volume);
    if (t != null) {
      for (PeerReplicator r : t.replicas()) {
        release(volume, r, blocks, seqs, t.epoch(), 1);
      }
    }
  }

  /**
   * A release must reach every replica the map lists: one that kept a destaged copy could, after a
   * failover, write it over newer data. Refused for its epoch: resent at the newer one while the
   * peer is still a replica (otherwise it drops its copies itself). Lost: the peer is removed.
   */
  private void release(
      VolumeInfo volume, PeerReplicator r, long[] blocks, long[] seqs, long epoch, int attemptNo) {
    Targets t = lookup(volume);
    if (t == null) {
      return;
    }
    r.release(volume.name(), epoch, t.ownerId(), blocks, seqs)
        .whenComplete(
            (ok, failure) -> {
              if (failure == null) {
                return;
              }
              Throwable cause =
                  failure instanceof CompletionException ? failure.getCause() : failure;
              if (cause instanceof ReplicaException re
                  && re.code() == ReplicaException.Code.FAILED_PRECONDITION) {
                Targets newer = lookup(volume);
                if (newer != null
                    && newer.epoch() > epoch
                    && newer.replicas().contains(r)
                    && attemptNo < MAX_ATTEMPTS) {
                  release(volume, r, blocks, seqs, newer.epoch(), attemptNo + 1);
                }
                return;
              }
              log.warn(
                  "volume {}: replica {} missed a release at epoch {}: {}; removing it",
                  volume.name(),
                  r.peerId(),
                  epoch,
                  cause.toString());
              eviction.evict(volume.name(), r.peerId(), epoch);
            });
  }
}
