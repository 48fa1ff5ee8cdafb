package io.peerflash.replication.control;

import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.ClusterError;
import io.peerflash.proto.v1.CommandResult;
import io.peerflash.proto.v1.MapCommand;
import io.peerflash.proto.v1.OnPeerLoss;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

class ClusterMapTest {

  // ------------------------------------------------------------------ command builders

  static MapCommand register(String id, String domain) {
    return MapCommand.newBuilder()
        .setRegisterMember(
            MapCommand.RegisterMember.newBuilder()
                .setId(id)
                .setGrpcAddress(id + ":7000")
                .setRaftAddress(id + ":7001")
                .setFaultDomain(domain))
        .build();
  }

  static MapCommand heartbeat(String id) {
    return MapCommand.newBuilder()
        .setHeartbeat(MapCommand.Heartbeat.newBuilder().setNodeId(id))
        .build();
  }

  static MapCommand markDown(String id, long expectedHeartbeats) {
    return MapCommand.newBuilder()
        .setMarkDown(
            MapCommand.MarkDown.newBuilder()
                .setNodeId(id)
                .setReason("test")
                .setExpectedHeartbeats(expectedHeartbeats))
        .build();
  }

  static MapCommand drain(String id) {
    return MapCommand.newBuilder().setDrain(MapCommand.Drain.newBuilder().setNodeId(id)).build();
  }

  static MapCommand remove(String id) {
    return MapCommand.newBuilder()
        .setRemoveMember(MapCommand.RemoveMember.newBuilder().setNodeId(id))
        .build();
  }

  static MapCommand create(String name, int replicas, String preferred) {
    return MapCommand.newBuilder()
        .setCreateVolume(
            MapCommand.CreateVolume.newBuilder()
                .setName(name)
                .setSizeBytes(1 << 20)
                .setMode(CacheMode.WRITE_BACK)
                .setReplicas(replicas)
                .setOnPeerLoss(OnPeerLoss.ON_PEER_LOSS_WRITE_THROUGH)
                .setPreferredOwner(preferred))
        .build();
  }

  static MapCommand delete(String name) {
    return MapCommand.newBuilder()
        .setDeleteVolume(MapCommand.DeleteVolume.newBuilder().setName(name))
        .build();
  }

  static MapCommand setPolicy(String name, int replicas) {
    return MapCommand.newBuilder()
        .setSetPolicy(
            MapCommand.SetPolicy.newBuilder()
                .setName(name)
                .setMode(CacheMode.WRITE_BACK)
                .setReplicas(replicas)
                .setOnPeerLoss(OnPeerLoss.ON_PEER_LOSS_BLOCK))
        .build();
  }

  static MapCommand changeOwner(String volume, String owner, long expectedEpoch) {
    return MapCommands.changeOwner(volume, owner, expectedEpoch);
  }

  static MapCommand setReplicas(String volume, long expectedEpoch, String... replicas) {
    return MapCommands.setReplicaSet(volume, expectedEpoch, List.of(replicas));
  }

  static MapCommand addReplicas(String volume, long expectedEpoch) {
    return MapCommands.addReplicas(volume, expectedEpoch, List.of());
  }

  static MapCommand inSync(String volume, String member, long expectedEpoch) {
    return MapCommands.replicaInSync(volume, member, expectedEpoch);
  }

  static MapCommand removeReplica(String volume, String member, long expectedEpoch) {
    return MapCommands.removeReplica(volume, member, expectedEpoch);
  }

  static MapCommand setMode(String name, CacheMode mode, int replicas) {
    return MapCommand.newBuilder()
        .setSetPolicy(
            MapCommand.SetPolicy.newBuilder()
                .setName(name)
                .setMode(mode)
                .setReplicas(replicas)
                .setOnPeerLoss(OnPeerLoss.ON_PEER_LOSS_WRITE_THROUGH))
        .build();
  }

  /** Applies commands that must succeed. */
  static ClusterMap applyOk(ClusterMap map, MapCommand... commands) {
    for (MapCommand c : commands) {
      ClusterMap.Applied a = map.apply(c);
      assertThat(a.result().getOk()).as("%s -> %s", c, a.result()).isTrue();
      map = a.map();
    }
    return map;
  }

  /** a and b share domain d1, c is in d2, d in d3. */
  static ClusterMap fourNodes() {
    return applyOk(
        ClusterMap.EMPTY,
        register("a", "d1"),
        register("b", "d1"),
        register("c", "d2"),
        register("d", "d3"));
  }

  static VolumeRecord vol(ClusterMap m, String name) {
    return m.volume(name).orElseThrow();
  }

  // ------------------------------------------------------------------ placement

  @Test
  void placementPrefersOtherFaultDomainsThenLoadThenId() {
    ClusterMap m = applyOk(fourNodes(), create("v1", 2, "a"));
    VolumeRecord v1 = vol(m, "v1");
    assertThat(v1.owner()).isEqualTo("a");
    assertThat(v1.id()).isEqualTo(1);
    assertThat(v1.epoch()).isEqualTo(1);
    // b shares a's domain: c (d2) and d (d3) are taken first.
    assertThat(v1.replicaSet()).containsExactly("c", "d");

    // One replica for a volume owned by a: c and d are both in other domains with load 1: id wins.
    m = applyOk(m, create("v2", 1, "a"));
    assertThat(vol(m, "v2").replicaSet()).containsExactly("c");

    // No preferred owner: the least loaded (b: 0) owns; replicas avoid d1 (b's domain) -> d (load
    // 1)
    // before c (load 2).
    m = applyOk(m, create("v3", 2, ""));
    assertThat(vol(m, "v3").owner()).isEqualTo("b");
    assertThat(vol(m, "v3").replicaSet()).containsExactly("d", "c");
    assertThat(m.nextVolumeId()).isEqualTo(4);
    assertThat(m.volumesOwnedBy("a")).extracting(VolumeRecord::name).containsExactly("v1", "v2");
    assertThat(m.volumesReplicatedOn("c"))
        .extracting(VolumeRecord::name)
        .containsExactly("v1", "v2", "v3");
    assertThat(m.load("c")).isEqualTo(3);
  }

  @Test
  void sameDomainIsUsedWhenNoOtherIsLeft() {
    ClusterMap m =
        applyOk(ClusterMap.EMPTY, register("a", "z"), register("b", "z"), register("c", "z"));
    m = applyOk(m, create("v", 2, "b"));
    assertThat(vol(m, "v").owner()).isEqualTo("b");
    assertThat(vol(m, "v").replicaSet()).containsExactly("a", "c");
  }

  @Test
  void fewerReplicasThanRequestedWhenMembersAreMissing() {
    ClusterMap m = applyOk(ClusterMap.EMPTY, register("a", ""), register("b", ""));
    m = applyOk(m, create("v", 2, "a"));
    VolumeRecord v = vol(m, "v");
    assertThat(v.replicaSet()).containsExactly("b");
    assertThat(v.requestedReplicas()).isEqualTo(2);
    assertThat(v.effectiveReplicas()).isEqualTo(1);
    assertThat(v.underReplicated()).isTrue();
  }

  @Test
  void downAndDrainingMembersGetNoNewPlacements() {
    ClusterMap m = fourNodes();
    m = applyOk(m, markDown("c", 0), drain("d"));
    m = applyOk(m, create("v", 2, "c")); // preferred owner is DOWN: least loaded UP owns
    VolumeRecord v = vol(m, "v");
    assertThat(v.owner()).isEqualTo("a");
    assertThat(v.replicaSet()).containsExactly("b");
    assertThat(m.apply(changeOwner("v", "d", v.epoch())).result().getError())
        .isEqualTo(ClusterError.CLUSTER_ERROR_MEMBER_NOT_UP);
    assertThat(m.apply(setReplicas("v", v.epoch(), "c")).result().getError())
        .isEqualTo(ClusterError.CLUSTER_ERROR_MEMBER_NOT_UP);
  }

  @Test
  void noUpMemberMeansNoCapacity() {
    ClusterMap m = applyOk(ClusterMap.EMPTY, register("a", ""), markDown("a", 0));
    CommandResult r = m.apply(create("v", 0, "")).result();
    assertThat(r.getOk()).isFalse();
    assertThat(r.getError()).isEqualTo(ClusterError.CLUSTER_ERROR_NO_CAPACITY);
  }

  // ------------------------------------------------------------------ epochs and CAS

  @Test
  void everyOwnerOrReplicaChangeIncrementsTheEpoch() {
    ClusterMap m = applyOk(fourNodes(), create("v", 2, "a"));
    assertThat(vol(m, "v").epoch()).isEqualTo(1);

    m = applyOk(m, changeOwner("v", "c", 1));
    VolumeRecord v = vol(m, "v");
    assertThat(v.owner()).isEqualTo("c");
    assertThat(v.replicaSet()).containsExactly("d"); // the new owner left the replica set
    assertThat(v.epoch()).isEqualTo(2);

    m = applyOk(m, setReplicas("v", 2, "d", "a"));
    assertThat(vol(m, "v").replicaSet()).containsExactly("d", "a");
    assertThat(vol(m, "v").epoch()).isEqualTo(3);

    m = applyOk(m, setPolicy("v", 1)); // shrink: trimmed, epoch + 1
    assertThat(vol(m, "v").replicaSet()).containsExactly("d");
    assertThat(vol(m, "v").epoch()).isEqualTo(4);
    assertThat(vol(m, "v").onPeerLoss()).isEqualTo(OnPeerLoss.ON_PEER_LOSS_BLOCK);

    m = applyOk(m, setPolicy("v", 2)); // grow: placement kept, epoch unchanged
    assertThat(vol(m, "v").replicaSet()).containsExactly("d");
    assertThat(vol(m, "v").epoch()).isEqualTo(4);
    assertThat(vol(m, "v").underReplicated()).isTrue();
  }

  @Test
  void staleExpectedEpochFailsAndLeavesTheMapUnchanged() {
    ClusterMap m = applyOk(fourNodes(), create("v", 1, "a"), changeOwner("v", "b", 1));
    ClusterMap.Applied a = m.apply(changeOwner("v", "c", 1));
    assertThat(a.result().getOk()).isFalse();
    assertThat(a.result().getError()).isEqualTo(ClusterError.CLUSTER_ERROR_STALE_EPOCH);
    assertThat(a.result().getVolume().getEpoch()).isEqualTo(2);
    assertThat(a.map()).isSameAs(m);

    a = m.apply(setReplicas("v", 7, "c"));
    assertThat(a.result().getError()).isEqualTo(ClusterError.CLUSTER_ERROR_STALE_EPOCH);
    assertThat(a.map()).isSameAs(m);
  }

  @Test
  void errorsAreResultsNotExceptions() {
    ClusterMap m = applyOk(fourNodes(), create("v", 1, "a"));
    assertThat(m.apply(create("v", 1, "a")).result().getError())
        .isEqualTo(ClusterError.CLUSTER_ERROR_VOLUME_EXISTS);
    assertThat(m.apply(delete("nope")).result().getError())
        .isEqualTo(ClusterError.CLUSTER_ERROR_VOLUME_NOT_FOUND);
    assertThat(m.apply(changeOwner("nope", "a", 1)).result().getError())
        .isEqualTo(ClusterError.CLUSTER_ERROR_VOLUME_NOT_FOUND);
    assertThat(m.apply(changeOwner("v", "zz", 1)).result().getError())
        .isEqualTo(ClusterError.CLUSTER_ERROR_UNKNOWN_MEMBER);
    assertThat(m.apply(heartbeat("zz")).result().getError())
        .isEqualTo(ClusterError.CLUSTER_ERROR_UNKNOWN_MEMBER);
    assertThat(m.apply(setReplicas("v", 1, "a")).result().getError())
        .isEqualTo(ClusterError.CLUSTER_ERROR_INVALID_ARGUMENT); // the owner
    assertThat(m.apply(setReplicas("v", 1, "b", "b")).result().getError())
        .isEqualTo(ClusterError.CLUSTER_ERROR_INVALID_ARGUMENT); // too many and duplicate
    assertThat(m.apply(remove("a")).result().getError())
        .isEqualTo(ClusterError.CLUSTER_ERROR_MEMBER_IN_USE);
    assertThat(m.apply(setPolicy("v", 3)).result().getError())
        .isEqualTo(ClusterError.CLUSTER_ERROR_INVALID_ARGUMENT);
    MapCommand badSize =
        create("w", 1, "a").toBuilder()
            .setCreateVolume(create("w", 1, "a").getCreateVolume().toBuilder().setSizeBytes(1000))
            .build();
    assertThat(m.apply(badSize).result().getError())
        .isEqualTo(ClusterError.CLUSTER_ERROR_INVALID_ARGUMENT);
    assertThat(m.apply(MapCommand.getDefaultInstance()).result().getError())
        .isEqualTo(ClusterError.CLUSTER_ERROR_INVALID_ARGUMENT);
  }

  @Test
  void deletedNameGetsANewIdWhenCreatedAgain() {
    ClusterMap m = applyOk(fourNodes(), create("v", 1, "a"), delete("v"), create("v", 1, "a"));
    assertThat(vol(m, "v").id()).isEqualTo(2);
    assertThat(m.volumeById(2)).contains(vol(m, "v"));
  }

  // ------------------------------------------------------------------ liveness

  @Test
  void markDownRemovesReplicasButKeepsOwnership() {
    ClusterMap m = applyOk(fourNodes(), create("v1", 2, "a"), create("v2", 1, "c"));
    assertThat(vol(m, "v1").replicaSet()).containsExactly("c", "d");
    long c = m.member("c").orElseThrow().heartbeats();
    m = applyOk(m, markDown("c", c));
    assertThat(m.member("c").orElseThrow().state()).isEqualTo(Member.State.DOWN);
    assertThat(vol(m, "v1").replicaSet()).containsExactly("d");
    assertThat(vol(m, "v1").epoch()).isEqualTo(2);
    assertThat(vol(m, "v2").owner()).isEqualTo("c"); // failover is decided outside
    assertThat(vol(m, "v2").epoch()).isEqualTo(1);
    assertThat(m.volumesReplicatedOn("c")).isEmpty();

    // Marking down again is a no-op.
    assertThat(m.apply(markDown("c", 0)).map()).isEqualTo(m);

    // It comes back: UP, owns nothing new, and the epoch of what it owns is bumped (fences a
    // failover decided while it was down).
    m = applyOk(m, heartbeat("c"));
    assertThat(m.member("c").orElseThrow().state()).isEqualTo(Member.State.UP);
    assertThat(m.volumesReplicatedOn("c")).isEmpty();
    assertThat(vol(m, "v2").epoch()).isEqualTo(2);
    assertThat(m.apply(changeOwner("v2", "a", 1)).result().getError())
        .isEqualTo(ClusterError.CLUSTER_ERROR_STALE_EPOCH);
  }

  @Test
  void markDownIsACompareAndSetOnHeartbeats() {
    ClusterMap m = fourNodes();
    long seen = m.member("b").orElseThrow().heartbeats();
    m = applyOk(m, heartbeat("b")); // heard from after the leader's decision
    ClusterMap.Applied a = m.apply(markDown("b", seen));
    assertThat(a.result().getError()).isEqualTo(ClusterError.CLUSTER_ERROR_STALE_HEARTBEAT);
    assertThat(a.map().member("b").orElseThrow().state()).isEqualTo(Member.State.UP);
    m = applyOk(m, markDown("b", seen + 1));
    assertThat(m.member("b").orElseThrow().state()).isEqualTo(Member.State.DOWN);
  }

  @Test
  void drainThenRemove() {
    ClusterMap m = applyOk(fourNodes(), create("v", 2, "a"));
    m = applyOk(m, drain("d"));
    assertThat(m.member("d").orElseThrow().state()).isEqualTo(Member.State.DRAINING);
    assertThat(vol(m, "v").replicaSet()).contains("d"); // drain moves nothing by itself
    m = applyOk(m, heartbeat("d"));
    assertThat(m.member("d").orElseThrow().state()).isEqualTo(Member.State.DRAINING);
    // A draining replica may be kept in a new replica set, but not added.
    m = applyOk(m, setReplicas("v", 1, "d"));
    m = applyOk(m, remove("d"));
    assertThat(m.member("d")).isEmpty();
    assertThat(vol(m, "v").replicaSet()).isEmpty();
    assertThat(vol(m, "v").epoch()).isEqualTo(3);
  }

  @Test
  void undrainMakesADrainingMemberUpAndTakePlacementsAgain() {
    ClusterMap m = applyOk(fourNodes(), drain("d"));
    m = applyOk(m, undrain("d"));
    assertThat(m.member("d").orElseThrow().state()).isEqualTo(Member.State.UP);
    assertThat(applyOk(m, undrain("d"))).isEqualTo(m); // UP already: no change

    m = applyOk(m, markDown("d", 0));
    ClusterMap.Applied refused = m.apply(undrain("d"));
    assertThat(refused.result().getOk()).isFalse();
    assertThat(refused.result().getError()).isEqualTo(ClusterError.CLUSTER_ERROR_MEMBER_NOT_UP);
    assertThat(m.apply(undrain("zz")).result().getError())
        .isEqualTo(ClusterError.CLUSTER_ERROR_UNKNOWN_MEMBER);
  }

  static MapCommand undrain(String id) {
    return MapCommand.newBuilder()
        .setUndrain(MapCommand.Undrain.newBuilder().setNodeId(id))
        .build();
  }

  // ------------------------------------------------------------------ determinism and invariants

  // ------------------------------------------------------------------ re-protection

  @Test
  void lostReplicaIsReplacedBySyncingPeerThatCountsOnlyOnceInSync() {
    ClusterMap m = applyOk(fourNodes(), create("v", 1, "a"));
    // a in d1 owns; c (d2) and d (d3) are the other-domain candidates; c is first by id.
    assertThat(vol(m, "v").replicaSet()).containsExactly("c");
    m = applyOk(m, markDown("c", 0));
    VolumeRecord lost = vol(m, "v");
    assertThat(lost.replicaSet()).isEmpty();
    assertThat(lost.underReplicated()).isTrue();
    assertThat(m.replicasWanted(lost)).isEqualTo(1);

    m = applyOk(m, addReplicas("v", lost.epoch()));
    VolumeRecord syncing = vol(m, "v");
    assertThat(syncing.syncing()).containsExactly("d"); // another domain than the owner's
    assertThat(syncing.replicaSet()).isEmpty();
    assertThat(syncing.underReplicated()).as("a syncing peer is not a copy yet").isTrue();
    assertThat(syncing.allReplicas()).containsExactly("d");
    assertThat(syncing.epoch()).isEqualTo(lost.epoch() + 1);
    assertThat(m.replicasWanted(syncing)).isZero();
    // Nothing more to add: ok and unchanged (no epoch bump).
    ClusterMap.Applied again = m.apply(addReplicas("v", syncing.epoch()));
    assertThat(again.result().getOk()).isTrue();
    assertThat(again.map()).isSameAs(m);

    // Any change since the copy began fails the in-sync commit (compare-and-set).
    assertThat(m.apply(inSync("v", "d", syncing.epoch() - 1)).result().getError())
        .isEqualTo(ClusterError.CLUSTER_ERROR_STALE_EPOCH);
    m = applyOk(m, inSync("v", "d", syncing.epoch()));
    VolumeRecord done = vol(m, "v");
    assertThat(done.replicaSet()).containsExactly("d");
    assertThat(done.syncing()).isEmpty();
    assertThat(done.underReplicated()).isFalse();
    assertThat(done.epoch()).isEqualTo(syncing.epoch() + 1);
  }

  @Test
  void addReplicasAvoidsPeersThatJustFailed() {
    ClusterMap m = applyOk(fourNodes(), create("v", 1, "a"));
    m = applyOk(m, markDown("c", 0));
    MapCommand avoidD =
        addReplicas("v", vol(m, "v").epoch()).toBuilder()
            .setAddReplicas(
                addReplicas("v", vol(m, "v").epoch()).getAddReplicas().toBuilder().addExclude("d"))
            .build();
    m = applyOk(m, avoidD);
    // d (another domain) would come first; it just failed, so b (the owner's domain) is taken.
    assertThat(vol(m, "v").syncing()).containsExactly("b");
  }

  @Test
  void syncingPeerCanBeRemovedAndLeavesOnDownOrOwnerChange() {
    ClusterMap m = applyOk(fourNodes(), create("v", 2, "a"));
    VolumeRecord v = vol(m, "v");
    String lostPeer = v.replicaSet().get(0);
    m = applyOk(m, markDown(lostPeer, 0));
    m = applyOk(m, addReplicas("v", vol(m, "v").epoch()));
    String filling = vol(m, "v").syncing().get(0);
    // It missed a copy: removed (compare-and-set), then chosen again later.
    m = applyOk(m, removeReplica("v", filling, vol(m, "v").epoch()));
    assertThat(vol(m, "v").allReplicas()).doesNotContain(filling);
    m = applyOk(m, addReplicas("v", vol(m, "v").epoch()));
    assertThat(vol(m, "v").syncing()).containsExactly(filling);
    // A DOWN member leaves syncing too.
    m = applyOk(m, markDown(filling, 0));
    assertThat(vol(m, "v").syncing()).isEmpty();
    m = applyOk(m, heartbeat(filling), addReplicas("v", vol(m, "v").epoch()));
    assertThat(vol(m, "v").syncing()).containsExactly(filling);
    // A new owner starts re-protection afresh: the old owner's syncing peers are dropped.
    String stays = vol(m, "v").replicaSet().get(0);
    m = applyOk(m, changeOwner("v", stays, vol(m, "v").epoch()));
    assertThat(vol(m, "v").syncing()).isEmpty();
    assertThat(vol(m, "v").replicaSet()).isEmpty();
  }

  @Test
  void drainingReplicaIsReplacedThenLeaves() {
    ClusterMap m = applyOk(fourNodes(), create("v", 1, "a"));
    String old = vol(m, "v").replicaSet().get(0);
    m = applyOk(m, drain(old));
    VolumeRecord v = vol(m, "v");
    assertThat(v.underReplicated()).as("a draining replica still holds every copy").isFalse();
    assertThat(m.replicasWanted(v)).isEqualTo(1);
    m = applyOk(m, addReplicas("v", v.epoch()));
    String fresh = vol(m, "v").syncing().get(0);
    assertThat(fresh).isNotEqualTo(old);
    m = applyOk(m, inSync("v", fresh, vol(m, "v").epoch()));
    assertThat(vol(m, "v").replicaSet()).containsExactly(fresh);
  }

  @Test
  void leavingWriteBackDropsSyncingPeersAndAddsNone() {
    ClusterMap m = applyOk(fourNodes(), create("v", 1, "a"));
    m = applyOk(m, markDown(vol(m, "v").replicaSet().get(0), 0));
    m = applyOk(m, addReplicas("v", vol(m, "v").epoch()));
    assertThat(vol(m, "v").syncing()).hasSize(1);
    m = applyOk(m, setMode("v", CacheMode.WRITE_THROUGH, 1));
    assertThat(vol(m, "v").syncing()).isEmpty();
    assertThat(m.replicasWanted(vol(m, "v"))).isZero();
    assertThat(m.apply(addReplicas("v", vol(m, "v").epoch())).result().getError())
        .isEqualTo(ClusterError.CLUSTER_ERROR_INVALID_ARGUMENT);
  }

  @Test
  void theSameCommandsGiveEqualMaps() {
    List<MapCommand> commands = randomCommands(new Random(7), 2000);
    ClusterMap x = ClusterMap.EMPTY;
    ClusterMap y = ClusterMap.EMPTY;
    for (MapCommand c : commands) {
      ClusterMap.Applied ax = x.apply(c);
      ClusterMap.Applied ay = y.apply(c);
      assertThat(ax.result()).isEqualTo(ay.result());
      x = ax.map();
      y = ay.map();
    }
    assertThat(x).isEqualTo(y);
    assertThat(ClusterMap.fromSnapshot(x.toSnapshot(3, 99))).isEqualTo(x);
    assertThat(x.toSnapshot(3, 99)).isEqualTo(y.toSnapshot(3, 99));
  }

  @Test
  void randomCommandsNeverBreakTheInvariants() {
    for (long seed = 1; seed <= 20; seed++) {
      Random random = new Random(seed);
      ClusterMap m = ClusterMap.EMPTY;
      Map<Long, Long> epochs = new HashMap<>();
      int ok = 0;
      for (MapCommand c : randomCommands(random, 1500)) {
        ClusterMap.Applied a = m.apply(c);
        if (a.result().getOk()) {
          ok++;
        } else {
          assertThat(a.map()).isSameAs(m);
        }
        m = a.map();
        checkInvariants(m, epochs, "seed " + seed + " after " + c);
      }
      assertThat(ok).as("seed %d: enough successful commands", seed).isGreaterThan(300);
    }
  }

  private static void checkInvariants(ClusterMap m, Map<Long, Long> epochs, String where) {
    for (VolumeRecord v : m.volumes().values()) {
      assertThat(v.replicaSet()).as(where).doesNotContain(v.owner());
      assertThat(new HashSet<>(v.replicaSet())).as(where).hasSameSizeAs(v.replicaSet());
      assertThat(v.replicaSet().size()).as(where).isLessThanOrEqualTo(v.requestedReplicas());
      assertThat(v.syncing()).as(where).doesNotContain(v.owner());
      assertThat(new HashSet<>(v.allReplicas())).as(where).hasSameSizeAs(v.allReplicas());
      long upInSync =
          v.replicaSet().stream()
              .filter(id -> m.member(id).map(Member::isUp).orElse(false))
              .count();
      assertThat(upInSync + v.syncing().size())
          .as(where + ": UP in-sync replicas plus syncing ones")
          .isLessThanOrEqualTo(v.requestedReplicas());
      if (v.mode() != CacheMode.WRITE_BACK) {
        assertThat(v.syncing()).as(where).isEmpty();
      }
      assertThat(m.members()).as(where).containsKey(v.owner());
      for (String r : v.allReplicas()) {
        Member member = m.member(r).orElse(null);
        assertThat(member).as(where + ": replica " + r + " is a member").isNotNull();
        assertThat(member.state()).as(where).isNotEqualTo(Member.State.DOWN);
      }
      Long before = epochs.put(v.id(), v.epoch());
      if (before != null) {
        assertThat(v.epoch()).as(where + ": epoch of " + v.name()).isGreaterThanOrEqualTo(before);
      }
      assertThat(v.id()).as(where).isLessThan(m.nextVolumeId());
    }
  }

  static List<MapCommand> randomCommands(Random r, int n) {
    String[] nodes = {"n1", "n2", "n3", "n4", "n5", "n6"};
    String[] domains = {"", "rack1", "rack2", "rack3"};
    String[] names = {"v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7"};
    List<MapCommand> out = new ArrayList<>();
    for (String node : nodes) {
      out.add(register(node, domains[r.nextInt(domains.length)]));
    }
    for (int i = 0; i < n; i++) {
      String node = nodes[r.nextInt(nodes.length)];
      String name = names[r.nextInt(names.length)];
      long epoch = 1 + r.nextInt(8);
      MapCommand c =
          switch (r.nextInt(17)) {
            case 0 -> register(node, domains[r.nextInt(domains.length)]);
            case 1, 2 -> heartbeat(node);
            case 3 -> markDown(node, r.nextBoolean() ? 0 : 1 + r.nextInt(20));
            case 4 -> r.nextInt(4) == 0 ? drain(node) : heartbeat(node);
            case 5 -> remove(node);
            case 6, 7 -> create(name, r.nextInt(3), r.nextBoolean() ? node : "");
            case 8 -> delete(name);
            case 9 -> setPolicy(name, r.nextInt(3));
            case 10 -> changeOwner(name, node, epoch);
            case 11, 12 -> addReplicas(name, epoch);
            case 13 -> inSync(name, node, epoch);
            case 14 -> removeReplica(name, node, epoch);
            case 15 ->
                setMode(
                    name,
                    r.nextBoolean() ? CacheMode.WRITE_BACK : CacheMode.WRITE_THROUGH,
                    r.nextInt(3));
            default -> {
              List<String> set = new ArrayList<>();
              for (int k = r.nextInt(3); k > 0; k--) {
                set.add(nodes[r.nextInt(nodes.length)]);
              }
              yield setReplicas(name, epoch, set.toArray(String[]::new));
            }
          };
      out.add(c);
    }
    return out;
  }
}
