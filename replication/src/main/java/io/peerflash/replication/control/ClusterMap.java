package io.peerflash.replication.control;

import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.ClusterError;
import io.peerflash.proto.v1.ClusterMapSnapshot;
import io.peerflash.proto.v1.ClusterMember;
import io.peerflash.proto.v1.ClusterVolume;
import io.peerflash.proto.v1.CommandResult;
import io.peerflash.proto.v1.MapCommand;
import io.peerflash.proto.v1.OnPeerLoss;
import io.peerflash.replication.data.Replicas;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.SortedMap;
import java.util.TreeMap;

/**
 * The cluster map: an immutable value holding the members and the volumes (policy, owner, epoch,
 * replica set), changed only by {@link #apply(MapCommand)}.
 *
 * <p>{@code apply} is pure and deterministic: the same sequence of commands applied to {@link
 * #EMPTY} gives equal maps on every node (iteration is over sorted maps, ties are broken by id).
 * Commands that cannot be applied return an error {@link CommandResult} and the unchanged map; they
 * never throw.
 *
 * <p>Rules kept by every command (checked by {@code ClusterMapTest}):
 *
 * <ul>
 *   <li>a volume's owner is never in its own replica set, and the replica set has no duplicates and
 *       at most {@code requestedReplicas} entries;
 *   <li>a volume's epoch never decreases, and it increases on every change of owner or replica set
 *       (ChangeOwner and SetReplicaSet always bump it, even when nothing else changes, so they can
 *       be used for fencing);
 *   <li>a DOWN member is in no replica set; a DOWN member keeps the volumes it owns (failover is a
 *       ChangeOwner decided outside, with the epoch as compare-and-set);
 *   <li>when a DOWN member comes back UP (Heartbeat or RegisterMember), the epoch of every volume
 *       it owns is bumped, so a failover decided while it was down (a ChangeOwner carrying the old
 *       epoch) fails instead of racing with the returning owner.
 * </ul>
 */
public final class ClusterMap {
  /** Peer copies per dirty block, at most. */

  /** Volume sizes are multiples of this. */
  public static final long VOLUME_SIZE_ALIGNMENT = io.peerflash.util.Blocks.BLOCK_BYTES;

  public static final ClusterMap EMPTY = new ClusterMap(new TreeMap<>(), new TreeMap<>(), 1);

  /** The new map and the result of one command. */
  public record Applied(ClusterMap map, CommandResult result) {}

  // Never mutated after construction, so maps that a command leaves alone are shared.
  private final TreeMap<String, Member> memberMap;
  private final TreeMap<String, VolumeRecord> volumeMap;
  private final SortedMap<String, Member> members;
  private final SortedMap<String, VolumeRecord> volumes;
  private final long nextVolumeId;

  private ClusterMap(
      TreeMap<String, Member> members, TreeMap<String, VolumeRecord> volumes, long nextId) {
    this.memberMap = members;
    this.volumeMap = volumes;
    this.members = Collections.unmodifiableSortedMap(members);
    this.volumes = Collections.unmodifiableSortedMap(volumes);
    this.nextVolumeId = nextId;
  }

  // ---------------------------------------------------------------- queries

  /** Members by id, sorted by id. */
  public SortedMap<String, Member> members() {
    return members;
  }

  /** Volumes by name, sorted by name. */
  public SortedMap<String, VolumeRecord> volumes() {
    return volumes;
  }

  /** The id the next created volume gets. */
  public long nextVolumeId() {
    return nextVolumeId;
  }

  public Optional<Member> member(String id) {
    return Optional.ofNullable(members.get(id));
  }

  public Optional<VolumeRecord> volume(String name) {
    return Optional.ofNullable(volumes.get(name));
  }

  public Optional<VolumeRecord> volumeById(long id) {
    return volumes.values().stream().filter(v -> v.id() == id).findFirst();
  }

  /** Volumes whose owner is {@code node}, by name. */
  public List<VolumeRecord> volumesOwnedBy(String node) {
    return volumes.values().stream().filter(v -> v.owner().equals(node)).toList();
  }

  /** Volumes that have {@code node} in their replica set, by name. */
  public List<VolumeRecord> volumesReplicatedOn(String node) {
    return volumes.values().stream().filter(v -> v.replicaSet().contains(node)).toList();
  }

  /** Placement load of a node: volumes it owns plus volumes it holds replicas of. */
  public int load(String node) {
    return loads().getOrDefault(node, 0);
  }

  // ---------------------------------------------------------------- apply

  /** Applies one command; never throws for a bad command (the result says what was wrong). */
  public Applied apply(MapCommand command) {
    Objects.requireNonNull(command, "command");
    return switch (command.getCommandCase()) {
      case REGISTER_MEMBER -> register(command.getRegisterMember());
      case HEARTBEAT -> heartbeat(command.getHeartbeat());
      case MARK_DOWN -> markDown(command.getMarkDown());
      case DRAIN -> drain(command.getDrain());
      case UNDRAIN -> undrain(command.getUndrain());
      case REMOVE_MEMBER -> removeMember(command.getRemoveMember());
      case CREATE_VOLUME -> createVolume(command.getCreateVolume());
      case DELETE_VOLUME -> deleteVolume(command.getDeleteVolume());
      case SET_POLICY -> setPolicy(command.getSetPolicy());
      case CHANGE_OWNER -> changeOwner(command.getChangeOwner());
      case SET_REPLICA_SET -> setReplicaSet(command.getSetReplicaSet());
      case ADD_REPLICAS -> addReplicas(command.getAddReplicas());
      case REPLICA_IN_SYNC -> replicaInSync(command.getReplicaInSync());
      case REMOVE_REPLICA -> removeReplica(command.getRemoveReplica());
      case ADMIT_RAFT_PEER -> admitRaftPeer(command.getAdmitRaftPeer());
      case COMMAND_NOT_SET -> fail(ClusterError.CLUSTER_ERROR_INVALID_ARGUMENT, "no command set");
    };
  }

  private Applied register(MapCommand.RegisterMember c) {
    if (c.getId().isEmpty()) {
      return fail(ClusterError.CLUSTER_ERROR_INVALID_ARGUMENT, "member id is empty");
    }
    Member old = members.get(c.getId());
    TreeMap<String, Member> m = new TreeMap<>(memberMap);
    TreeMap<String, VolumeRecord> v = volumeMap;
    Member.State state = Member.State.UP;
    long heartbeats = 1;
    if (old != null) {
      state = old.state() == Member.State.DRAINING ? Member.State.DRAINING : Member.State.UP;
      heartbeats = old.heartbeats() + 1;
      if (old.state() == Member.State.DOWN) {
        v = new TreeMap<>(volumeMap);
        bumpOwned(v, old.id());
      }
    }
    m.put(
        c.getId(),
        new Member(
            c.getId(),
            c.getGrpcAddress(),
            c.getRaftAddress(),
            c.getFaultDomain(),
            state,
            heartbeats));
    return ok(new ClusterMap(m, v, nextVolumeId), null);
  }

  private Applied heartbeat(MapCommand.Heartbeat c) {
    Member old = members.get(c.getNodeId());
    if (old == null) {
      return fail(ClusterError.CLUSTER_ERROR_UNKNOWN_MEMBER, "unknown member " + c.getNodeId());
    }
    TreeMap<String, Member> m = new TreeMap<>(memberMap);
    TreeMap<String, VolumeRecord> v = volumeMap;
    Member updated = old.heard();
    if (old.state() == Member.State.DOWN) {
      updated = updated.withState(Member.State.UP);
      v = new TreeMap<>(volumeMap);
      bumpOwned(v, old.id());
    }
    m.put(old.id(), updated);
    return ok(new ClusterMap(m, v, nextVolumeId), null);
  }

  private Applied markDown(MapCommand.MarkDown c) {
    Member old = members.get(c.getNodeId());
    if (old == null) {
      return fail(ClusterError.CLUSTER_ERROR_UNKNOWN_MEMBER, "unknown member " + c.getNodeId());
    }
    if (c.getExpectedHeartbeats() != 0 && c.getExpectedHeartbeats() != old.heartbeats()) {
      return fail(
          ClusterError.CLUSTER_ERROR_STALE_HEARTBEAT,
          "member "
              + old.id()
              + " was heard from since: heartbeats "
              + old.heartbeats()
              + " != expected "
              + c.getExpectedHeartbeats());
    }
    if (old.state() == Member.State.DOWN) {
      return ok(this, null);
    }
    TreeMap<String, Member> m = new TreeMap<>(memberMap);
    m.put(old.id(), old.withState(Member.State.DOWN));
    TreeMap<String, VolumeRecord> v = new TreeMap<>(volumeMap);
    dropReplica(v, old.id());
    return ok(new ClusterMap(m, v, nextVolumeId), null);
  }

  private Applied drain(MapCommand.Drain c) {
    Member old = members.get(c.getNodeId());
    if (old == null) {
      return fail(ClusterError.CLUSTER_ERROR_UNKNOWN_MEMBER, "unknown member " + c.getNodeId());
    }
    if (old.state() == Member.State.DOWN) {
      return fail(ClusterError.CLUSTER_ERROR_MEMBER_NOT_UP, "member " + old.id() + " is DOWN");
    }
    TreeMap<String, Member> m = new TreeMap<>(memberMap);
    m.put(old.id(), old.withState(Member.State.DRAINING));
    return ok(new ClusterMap(m, volumeMap, nextVolumeId), null);
  }

  private Applied undrain(MapCommand.Undrain c) {
    Member old = members.get(c.getNodeId());
    if (old == null) {
      return fail(ClusterError.CLUSTER_ERROR_UNKNOWN_MEMBER, "unknown member " + c.getNodeId());
    }
    if (old.state() == Member.State.DOWN) {
      return fail(ClusterError.CLUSTER_ERROR_MEMBER_NOT_UP, "member " + old.id() + " is DOWN");
    }
    if (old.state() == Member.State.UP) {
      return ok(this, null);
    }
    TreeMap<String, Member> m = new TreeMap<>(memberMap);
    m.put(old.id(), old.withState(Member.State.UP));
    return ok(new ClusterMap(m, volumeMap, nextVolumeId), null);
  }

  private Applied removeMember(MapCommand.RemoveMember c) {
    Member old = members.get(c.getNodeId());
    if (old == null) {
      return fail(ClusterError.CLUSTER_ERROR_UNKNOWN_MEMBER, "unknown member " + c.getNodeId());
    }
    List<VolumeRecord> owned = volumesOwnedBy(old.id());
    if (!owned.isEmpty()) {
      return fail(
          ClusterError.CLUSTER_ERROR_MEMBER_IN_USE,
          "member " + old.id() + " still owns " + owned.size() + " volume(s)");
    }
    TreeMap<String, Member> m = new TreeMap<>(memberMap);
    m.remove(old.id());
    TreeMap<String, VolumeRecord> v = new TreeMap<>(volumeMap);
    dropReplica(v, old.id());
    return ok(new ClusterMap(m, v, nextVolumeId), null);
  }

  private Applied createVolume(MapCommand.CreateVolume c) {
    if (c.getName().isEmpty()) {
      return fail(ClusterError.CLUSTER_ERROR_INVALID_ARGUMENT, "volume name is empty");
    }
    if (volumes.containsKey(c.getName())) {
      return fail(
          ClusterError.CLUSTER_ERROR_VOLUME_EXISTS, "volume " + c.getName() + " already exists");
    }
    if (c.getSizeBytes() <= 0 || c.getSizeBytes() % VOLUME_SIZE_ALIGNMENT != 0) {
      return fail(
          ClusterError.CLUSTER_ERROR_INVALID_ARGUMENT,
          "size_bytes must be a positive multiple of " + VOLUME_SIZE_ALIGNMENT);
    }
    String policyError = checkPolicy(c.getMode(), c.getReplicas(), c.getOnPeerLoss());
    if (policyError != null) {
      return fail(ClusterError.CLUSTER_ERROR_INVALID_ARGUMENT, policyError);
    }
    Map<String, Integer> loads = loads();
    Member preferred = members.get(c.getPreferredOwner());
    String owner;
    if (preferred != null && preferred.isUp()) {
      owner = preferred.id();
    } else {
      owner =
          members.values().stream()
              .filter(Member::isUp)
              .min(
                  Comparator.<Member>comparingInt(x -> loads.getOrDefault(x.id(), 0))
                      .thenComparing(Member::id))
              .map(Member::id)
              .orElse(null);
    }
    if (owner == null) {
      return fail(ClusterError.CLUSTER_ERROR_NO_CAPACITY, "no UP member can own a volume");
    }
    List<String> replicas =
        chooseReplicas(owner, c.getReplicas(), loads, Set.of(owner), Set.of(owner));
    VolumeRecord vol =
        new VolumeRecord(
            nextVolumeId,
            c.getName(),
            c.getSizeBytes(),
            c.getMode(),
            c.getReplicas(),
            onPeerLoss(c.getOnPeerLoss()),
            owner,
            1,
            replicas,
            List.of());
    TreeMap<String, VolumeRecord> v = new TreeMap<>(volumeMap);
    v.put(vol.name(), vol);
    return ok(new ClusterMap(memberMap, v, nextVolumeId + 1), vol);
  }

  private Applied deleteVolume(MapCommand.DeleteVolume c) {
    if (!volumes.containsKey(c.getName())) {
      return notFound(c.getName());
    }
    TreeMap<String, VolumeRecord> v = new TreeMap<>(volumeMap);
    v.remove(c.getName());
    return ok(new ClusterMap(memberMap, v, nextVolumeId), null);
  }

  private Applied setPolicy(MapCommand.SetPolicy c) {
    VolumeRecord old = volumes.get(c.getName());
    if (old == null) {
      return notFound(c.getName());
    }
    String policyError = checkPolicy(c.getMode(), c.getReplicas(), c.getOnPeerLoss());
    if (policyError != null) {
      return fail(ClusterError.CLUSTER_ERROR_INVALID_ARGUMENT, policyError);
    }
    List<String> set = old.replicaSet();
    if (set.size() > c.getReplicas()) {
      set = set.subList(0, c.getReplicas());
    }
    // Syncing replicas only make sense while write-back copies are kept, and within the count.
    List<String> syncing = c.getMode() == CacheMode.WRITE_BACK ? old.syncing() : List.of();
    if (syncing.size() > c.getReplicas() - set.size()) {
      syncing = syncing.subList(0, Math.max(0, c.getReplicas() - set.size()));
    }
    VolumeRecord vol =
        old.withPolicy(c.getMode(), c.getReplicas(), onPeerLoss(c.getOnPeerLoss()), set, syncing);
    TreeMap<String, VolumeRecord> v = new TreeMap<>(volumeMap);
    v.put(vol.name(), vol);
    return ok(new ClusterMap(memberMap, v, nextVolumeId), vol);
  }

  private Applied changeOwner(MapCommand.ChangeOwner c) {
    VolumeRecord old = volumes.get(c.getVolume());
    if (old == null) {
      return notFound(c.getVolume());
    }
    if (old.epoch() != c.getExpectedEpoch()) {
      return staleEpoch(old, c.getExpectedEpoch());
    }
    Member owner = members.get(c.getNewOwner());
    if (owner == null) {
      return fail(ClusterError.CLUSTER_ERROR_UNKNOWN_MEMBER, "unknown member " + c.getNewOwner());
    }
    if (!owner.isUp()) {
      return fail(
          ClusterError.CLUSTER_ERROR_MEMBER_NOT_UP,
          "member " + owner.id() + " is " + owner.state() + ", cannot own a volume");
    }
    List<String> set = new ArrayList<>(old.replicaSet());
    set.remove(owner.id());
    // Syncing replicas were being filled by the old owner: the new one starts afresh.
    VolumeRecord vol = old.withPlacement(owner.id(), set, List.of());
    TreeMap<String, VolumeRecord> v = new TreeMap<>(volumeMap);
    v.put(vol.name(), vol);
    return ok(new ClusterMap(memberMap, v, nextVolumeId), vol);
  }

  private Applied setReplicaSet(MapCommand.SetReplicaSet c) {
    VolumeRecord old = volumes.get(c.getVolume());
    if (old == null) {
      return notFound(c.getVolume());
    }
    if (old.epoch() != c.getExpectedEpoch()) {
      return staleEpoch(old, c.getExpectedEpoch());
    }
    List<String> set = c.getReplicasList();
    if (set.size() > old.requestedReplicas()) {
      return fail(
          ClusterError.CLUSTER_ERROR_INVALID_ARGUMENT,
          "replica set of " + set.size() + " exceeds requested " + old.requestedReplicas());
    }
    if (new HashSet<>(set).size() != set.size()) {
      return fail(ClusterError.CLUSTER_ERROR_INVALID_ARGUMENT, "replica set has duplicates");
    }
    for (String id : set) {
      if (id.equals(old.owner())) {
        return fail(
            ClusterError.CLUSTER_ERROR_INVALID_ARGUMENT, "the owner cannot be its own replica");
      }
      Member m = members.get(id);
      if (m == null) {
        return fail(ClusterError.CLUSTER_ERROR_UNKNOWN_MEMBER, "unknown member " + id);
      }
      boolean kept =
          m.state() == Member.State.DRAINING
              && (old.replicaSet().contains(id) || old.syncing().contains(id));
      if (!m.isUp() && !kept) {
        return fail(
            ClusterError.CLUSTER_ERROR_MEMBER_NOT_UP,
            "member " + id + " is " + m.state() + ", cannot take a replica");
      }
    }
    List<String> syncing = new ArrayList<>(old.syncing());
    syncing.removeAll(set);
    while (!syncing.isEmpty() && set.size() + syncing.size() > old.requestedReplicas()) {
      syncing.remove(syncing.size() - 1); // no room left for it
    }
    VolumeRecord vol = old.withPlacement(old.owner(), set, syncing);
    TreeMap<String, VolumeRecord> v = new TreeMap<>(volumeMap);
    v.put(vol.name(), vol);
    return ok(new ClusterMap(memberMap, v, nextVolumeId), vol);
  }

  private Applied addReplicas(MapCommand.AddReplicas c) {
    VolumeRecord old = volumes.get(c.getVolume());
    if (old == null) {
      return notFound(c.getVolume());
    }
    if (old.epoch() != c.getExpectedEpoch()) {
      return staleEpoch(old, c.getExpectedEpoch());
    }
    if (old.mode() != CacheMode.WRITE_BACK) {
      return fail(
          ClusterError.CLUSTER_ERROR_INVALID_ARGUMENT,
          "volume " + old.name() + " is " + old.mode() + ": only write-back volumes keep replicas");
    }
    int wanted = replicasWanted(old);
    if (wanted <= 0) {
      return ok(this, old); // nothing to add; the epoch stays
    }
    Set<String> exclude = new HashSet<>(old.allReplicas());
    exclude.add(old.owner());
    Set<String> avoid = new HashSet<>(exclude);
    avoid.addAll(c.getExcludeList());
    List<String> chosen = chooseReplicas(old.owner(), wanted, loads(), exclude, avoid);
    if (chosen.isEmpty()) {
      return fail(
          ClusterError.CLUSTER_ERROR_NO_CAPACITY,
          "no UP member can take another replica of volume " + old.name());
    }
    List<String> syncing = new ArrayList<>(old.syncing());
    syncing.addAll(chosen);
    VolumeRecord vol = old.withPlacement(old.owner(), old.replicaSet(), syncing);
    TreeMap<String, VolumeRecord> v = new TreeMap<>(volumeMap);
    v.put(vol.name(), vol);
    return ok(new ClusterMap(memberMap, v, nextVolumeId), vol);
  }

  /**
   * Replicas a volume should still gain: requested minus in-sync members that are UP (a DRAINING
   * one is about to leave) minus those being filled.
   */
  public int replicasWanted(VolumeRecord vol) {
    if (vol.mode() != CacheMode.WRITE_BACK) {
      return 0;
    }
    long keeping =
        vol.replicaSet().stream()
            .filter(id -> members.containsKey(id) && members.get(id).isUp())
            .count();
    return (int) Math.max(0, vol.requestedReplicas() - keeping - vol.syncing().size());
  }

  private Applied replicaInSync(MapCommand.ReplicaInSync c) {
    VolumeRecord old = volumes.get(c.getVolume());
    if (old == null) {
      return notFound(c.getVolume());
    }
    if (old.epoch() != c.getExpectedEpoch()) {
      return staleEpoch(old, c.getExpectedEpoch());
    }
    if (!old.syncing().contains(c.getMember())) {
      return fail(
          ClusterError.CLUSTER_ERROR_INVALID_ARGUMENT,
          "member " + c.getMember() + " is not being filled for volume " + old.name());
    }
    List<String> syncing = new ArrayList<>(old.syncing());
    syncing.remove(c.getMember());
    List<String> set = new ArrayList<>(old.replicaSet());
    set.add(c.getMember());
    // More copies than asked for (a DRAINING member was being replaced): it leaves.
    for (String id : List.copyOf(set)) {
      Member m = members.get(id);
      if (set.size() > old.requestedReplicas() && (m == null || !m.isUp())) {
        set.remove(id);
      }
    }
    if (set.size() > old.requestedReplicas()) {
      return fail(
          ClusterError.CLUSTER_ERROR_INVALID_ARGUMENT,
          "volume " + old.name() + " already has its " + old.requestedReplicas() + " replicas");
    }
    VolumeRecord vol = old.withPlacement(old.owner(), set, syncing);
    TreeMap<String, VolumeRecord> v = new TreeMap<>(volumeMap);
    v.put(vol.name(), vol);
    return ok(new ClusterMap(memberMap, v, nextVolumeId), vol);
  }

  private Applied removeReplica(MapCommand.RemoveReplica c) {
    VolumeRecord old = volumes.get(c.getVolume());
    if (old == null) {
      return notFound(c.getVolume());
    }
    if (old.epoch() != c.getExpectedEpoch()) {
      return staleEpoch(old, c.getExpectedEpoch());
    }
    if (!old.allReplicas().contains(c.getMember())) {
      return ok(this, old); // already gone
    }
    List<String> set = new ArrayList<>(old.replicaSet());
    set.remove(c.getMember());
    List<String> syncing = new ArrayList<>(old.syncing());
    syncing.remove(c.getMember());
    VolumeRecord vol = old.withPlacement(old.owner(), set, syncing);
    TreeMap<String, VolumeRecord> v = new TreeMap<>(volumeMap);
    v.put(vol.name(), vol);
    return ok(new ClusterMap(memberMap, v, nextVolumeId), vol);
  }

  // ---------------------------------------------------------------- placement helpers

  private Map<String, Integer> loads() {
    Map<String, Integer> load = new HashMap<>();
    for (VolumeRecord v : volumes.values()) {
      load.merge(v.owner(), 1, Integer::sum);
      for (String r : v.replicaSet()) {
        load.merge(r, 1, Integer::sum);
      }
    }
    return load;
  }

  /** An empty fault domain is a domain of its own (never shared with another member). */
  private static String domainKey(Member m) {
    return m.faultDomain().isEmpty() ? "\u0000node:" + m.id() : m.faultDomain();
  }

  /**
   * Up to {@code count} distinct UP members not in {@code avoid}: first those in a fault domain not
   * yet used (by a member of {@code exclude}, i.e. the owner and current replicas, or an earlier
   * choice), then the least loaded, then by id.
   */
  private List<String> chooseReplicas(
      String owner, int count, Map<String, Integer> loads, Set<String> exclude, Set<String> avoid) {
    Set<String> usedDomains = new HashSet<>();
    for (String id : exclude) {
      Member used = members.get(id);
      if (used != null) {
        usedDomains.add(domainKey(used));
      }
    }
    List<Member> candidates = new ArrayList<>();
    for (Member m : members.values()) {
      if (m.isUp() && !m.id().equals(owner) && !avoid.contains(m.id())) {
        candidates.add(m);
      }
    }
    List<String> chosen = new ArrayList<>();
    while (chosen.size() < count && !candidates.isEmpty()) {
      Member best =
          candidates.stream()
              .min(
                  Comparator.<Member>comparingInt(x -> usedDomains.contains(domainKey(x)) ? 1 : 0)
                      .thenComparingInt(x -> loads.getOrDefault(x.id(), 0))
                      .thenComparing(Member::id))
              .orElseThrow();
      candidates.remove(best);
      chosen.add(best.id());
      usedDomains.add(domainKey(best));
    }
    return chosen;
  }

  /** Bumps the epoch of every volume {@code node} owns (its return from DOWN fences failovers). */
  private static void bumpOwned(TreeMap<String, VolumeRecord> v, String node) {
    for (VolumeRecord vol : List.copyOf(v.values())) {
      if (vol.owner().equals(node)) {
        v.put(vol.name(), vol.withPlacement(vol.owner(), vol.replicaSet()));
      }
    }
  }

  /** Removes {@code node} from every replica set (in sync or syncing), bumping those epochs. */
  private static void dropReplica(TreeMap<String, VolumeRecord> v, String node) {
    for (VolumeRecord vol : List.copyOf(v.values())) {
      if (vol.allReplicas().contains(node)) {
        List<String> set = new ArrayList<>(vol.replicaSet());
        set.remove(node);
        List<String> syncing = new ArrayList<>(vol.syncing());
        syncing.remove(node);
        v.put(vol.name(), vol.withPlacement(vol.owner(), set, syncing));
      }
    }
  }

  private static String checkPolicy(CacheMode mode, int replicas, OnPeerLoss onPeerLoss) {
    if (mode == CacheMode.CACHE_MODE_UNSPECIFIED || mode == CacheMode.UNRECOGNIZED) {
      return "cache mode is required";
    }
    if (replicas < 0 || replicas > Replicas.MAX_REPLICAS) {
      return "replicas must be 0.." + Replicas.MAX_REPLICAS;
    }
    if (onPeerLoss == OnPeerLoss.UNRECOGNIZED) {
      return "unknown on_peer_loss";
    }
    return null;
  }

  /**
   * Raft admissions are kept by each control plane, not in the map (see {@code RaftAdmissions}).
   */
  private Applied admitRaftPeer(MapCommand.AdmitRaftPeer c) {
    if (c.getNodeId().isEmpty()) {
      return fail(ClusterError.CLUSTER_ERROR_INVALID_ARGUMENT, "admit_raft_peer without a node id");
    }
    return ok(this, null);
  }

  private static OnPeerLoss onPeerLoss(OnPeerLoss p) {
    return p == OnPeerLoss.ON_PEER_LOSS_UNSPECIFIED ? OnPeerLoss.ON_PEER_LOSS_WRITE_THROUGH : p;
  }

  private Applied ok(ClusterMap next, VolumeRecord vol) {
    CommandResult.Builder r = CommandResult.newBuilder().setOk(true);
    if (vol != null) {
      r.setVolume(vol.toProto());
    }
    return new Applied(next, r.build());
  }

  private Applied fail(ClusterError error, String message) {
    return new Applied(
        this, CommandResult.newBuilder().setOk(false).setError(error).setMessage(message).build());
  }

  private Applied notFound(String name) {
    return fail(
        ClusterError.CLUSTER_ERROR_VOLUME_NOT_FOUND,
        "volume " + io.peerflash.util.Texts.quote(name) + " does not exist");
  }

  private Applied staleEpoch(VolumeRecord v, long expected) {
    Applied f =
        fail(
            ClusterError.CLUSTER_ERROR_STALE_EPOCH,
            "volume " + v.name() + " is at epoch " + v.epoch() + ", expected " + expected);
    return new Applied(this, f.result().toBuilder().setVolume(v.toProto()).build());
  }

  // ---------------------------------------------------------------- serialization

  /** The map as a snapshot message, tagged with the Raft position it reflects. */
  public ClusterMapSnapshot toSnapshot(long appliedTerm, long appliedIndex) {
    ClusterMapSnapshot.Builder b =
        ClusterMapSnapshot.newBuilder()
            .setNextVolumeId(nextVolumeId)
            .setAppliedTerm(appliedTerm)
            .setAppliedIndex(appliedIndex);
    members.values().forEach(m -> b.addMembers(m.toProto()));
    volumes.values().forEach(v -> b.addVolumes(v.toProto()));
    return b.build();
  }

  public static ClusterMap fromSnapshot(ClusterMapSnapshot s) {
    TreeMap<String, Member> m = new TreeMap<>();
    for (ClusterMember p : s.getMembersList()) {
      m.put(p.getId(), Member.fromProto(p));
    }
    TreeMap<String, VolumeRecord> v = new TreeMap<>();
    for (ClusterVolume p : s.getVolumesList()) {
      v.put(p.getName(), VolumeRecord.fromProto(p));
    }
    return new ClusterMap(m, v, Math.max(1, s.getNextVolumeId()));
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof ClusterMap other
        && nextVolumeId == other.nextVolumeId
        && members.equals(other.members)
        && volumes.equals(other.volumes);
  }

  @Override
  public int hashCode() {
    return Objects.hash(members, volumes, nextVolumeId);
  }

  @Override
  public String toString() {
    return "ClusterMap{members="
        + members.values()
        + ", volumes="
        + volumes.values()
        + ", nextVolumeId="
        + nextVolumeId
        + "}";
  }
}
