package io.peerflash.node.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import io.peerflash.node.engine.CacheException;
import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.index.VolumeInfo;
import io.peerflash.node.index.VolumeInfo.Role;
import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.MapCommand;
import io.peerflash.proto.v1.OnPeerLoss;
import io.peerflash.replication.control.ControlPlane;
import io.peerflash.replication.control.MapCommands;
import io.peerflash.replication.control.VolumeRecord;
import io.peerflash.util.ManualTime;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.ratis.util.ExitUtils;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * An owner's handling of lost replicas on a real control plane: node n1 is the single voter of a
 * Raft group whose map also registers n2 and n3; each test's volume has two replicas among them.
 * Eviction takes a replica that failed to take a copy out of the map and says so; it does nothing
 * for a volume this node does not own, and answers by epoch for a replica already gone. Admission
 * under on-peer-loss block holds a write of an under-replicated volume for peer-loss-wait-ms on the
 * node's clock, then refuses it as UNAVAILABLE; other policies and fully replicated volumes pass at
 * once.
 *
 * <p>The control plane's clock is stopped, so the leader never marks the registered-only members n2
 * and n3 DOWN; the clock of the class under test is stopped too, and moves only by its own sleeps.
 */
class ReplicaLossTest {
  static {
    ExitUtils.disableSystemExit(); // a Raft server that cannot start fails the test, not the JVM
  }

  private static final String SELF = "n1";
  private static final long LEASE_MS = 3_000;
  private static final long PEER_LOSS_WAIT_MS = 2_000;

  @TempDir static Path dir;
  private static ControlPlane cp;
  private static final AtomicInteger volumes = new AtomicInteger();

  private final ManualTime time = new ManualTime();
  private final List<String> failedPeers = new CopyOnWriteArrayList<>();
  private final ReplicaLoss loss =
      new ReplicaLoss(SELF, cp, failedPeers::add, time, LEASE_MS, PEER_LOSS_WAIT_MS);

  @BeforeAll
  static void start() throws Exception {
    cp = OneVoterControlPlane.start(dir, SELF, List.of("n2", "n3"));
  }

  @AfterAll
  static void stop() {
    if (cp != null) {
      cp.close();
    }
  }

  @AfterEach
  void closeLoss() {
    loss.close();
  }

  private static void commit(MapCommand command) throws Exception {
    OneVoterControlPlane.commit(cp, command);
  }

  private static VolumeRecord rec(String name) {
    return cp.map().volume(name).orElseThrow();
  }

  /** A new write-back volume owned by {@code owner} with two replicas. */
  private static VolumeRecord newVolume(String owner, OnPeerLoss onPeerLoss) throws Exception {
    String name = "v" + volumes.incrementAndGet();
    commit(
        MapCommand.newBuilder()
            .setCreateVolume(
                MapCommand.CreateVolume.newBuilder()
                    .setName(name)
                    .setSizeBytes(1 << 20)
                    .setMode(CacheMode.WRITE_BACK)
                    .setReplicas(2)
                    .setOnPeerLoss(onPeerLoss)
                    .setPreferredOwner(owner))
            .build());
    VolumeRecord rec = rec(name);
    assertThat(rec.owner()).isEqualTo(owner);
    assertThat(rec.replicaSet()).hasSize(2);
    return rec;
  }

  private static VolumeInfo info(VolumeRecord rec) {
    return new VolumeInfo(
        rec.id(), rec.name(), rec.sizeBytes(), VolumeInfo.CacheMode.WRITE_BACK, 2, Role.OWNER);
  }

  /** A replica other than {@code SELF} the map names for the volume. */
  private static String aReplica(VolumeRecord rec) {
    return rec.replicaSet().stream().filter(id -> !id.equals(SELF)).findFirst().orElseThrow();
  }

  @Test
  void aReplicaThatFailedToTakeACopyIsTakenOutOfTheMapAndAvoided() throws Exception {
    VolumeRecord v = newVolume(SELF, OnPeerLoss.ON_PEER_LOSS_UNSPECIFIED);
    String peer = aReplica(v);

    assertThat(loss.evict(v.name(), peer, v.epoch()).get(60, TimeUnit.SECONDS)).isTrue();

    VolumeRecord after = rec(v.name());
    assertThat(after.allReplicas()).doesNotContain(peer).hasSize(1);
    assertThat(after.epoch()).isGreaterThan(v.epoch());
    assertThat(failedPeers).containsExactly(peer);
  }

  @Test
  void aReplicaAlreadyGoneCountsAsEvictedOnlyAtALaterEpoch() throws Exception {
    VolumeRecord v = newVolume(SELF, OnPeerLoss.ON_PEER_LOSS_UNSPECIFIED);
    String peer = aReplica(v);
    commit(MapCommands.removeReplica(v.name(), peer, v.epoch()));
    VolumeRecord after = rec(v.name());

    // The write that failed at the old epoch may be acknowledged: the map has moved past it.
    assertThat(loss.evict(v.name(), peer, v.epoch()).get(60, TimeUnit.SECONDS)).isTrue();
    // At the map's own epoch nothing newer removed it: not evicted by this call.
    assertThat(loss.evict(v.name(), peer, after.epoch()).get(60, TimeUnit.SECONDS)).isFalse();
    assertThat(failedPeers).isEmpty();
  }

  @Test
  void aVolumeThisNodeDoesNotOwnIsLeftAlone() throws Exception {
    VolumeRecord v = newVolume("n2", OnPeerLoss.ON_PEER_LOSS_UNSPECIFIED);
    String peer = v.replicaSet().stream().filter(id -> !id.equals("n2")).findFirst().orElseThrow();

    assertThat(loss.evict(v.name(), peer, v.epoch()).get(60, TimeUnit.SECONDS)).isFalse();

    assertThat(rec(v.name())).isEqualTo(v);
    assertThat(failedPeers).isEmpty();
  }

  @Test
  void underBlockAFullyReplicatedVolumeAdmitsAtOnce() throws Exception {
    VolumeRecord v = newVolume(SELF, OnPeerLoss.ON_PEER_LOSS_BLOCK);
    long t0 = time.nowMs();

    loss.admit(info(v));

    assertThat(time.nowMs()).as("no wait").isEqualTo(t0);
    assertThat(ReplicaLoss.admits(v)).isTrue();
    assertThat(ReplicaLoss.admits(null)).as("a volume the map does not know").isTrue();
  }

  @Test
  void underBlockAnUnderReplicatedVolumeHoldsTheWriteThenRefusesItAsUnavailable() throws Exception {
    VolumeRecord v = newVolume(SELF, OnPeerLoss.ON_PEER_LOSS_BLOCK);
    commit(MapCommands.removeReplica(v.name(), aReplica(v), v.epoch()));
    assertThat(ReplicaLoss.admits(rec(v.name()))).isFalse();
    long t0 = time.nowMs();

    Throwable t = catchThrowable(() -> loss.admit(info(v)));

    assertThat(t).isInstanceOf(CacheException.class);
    CacheException e = (CacheException) t;
    assertThat(e.reason()).isEqualTo(Reason.UNAVAILABLE);
    assertThat(e.getMessage()).contains("1 of 2 replicas in sync", "peer-loss-wait-ms");
    assertThat(time.nowMs() - t0).isBetween(PEER_LOSS_WAIT_MS, PEER_LOSS_WAIT_MS + 10);
  }

  @Test
  void otherPoliciesAdmitAnUnderReplicatedVolumeAtOnce() throws Exception {
    for (OnPeerLoss policy :
        List.of(OnPeerLoss.ON_PEER_LOSS_ACCEPT, OnPeerLoss.ON_PEER_LOSS_UNSPECIFIED)) {
      VolumeRecord v = newVolume(SELF, policy);
      commit(MapCommands.removeReplica(v.name(), aReplica(v), v.epoch()));
      long t0 = time.nowMs();

      loss.admit(info(v));

      assertThat(time.nowMs()).as(policy + ": no wait").isEqualTo(t0);
    }
  }
}
