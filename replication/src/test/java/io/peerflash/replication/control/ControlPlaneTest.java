package io.peerflash.replication.control;

import static io.peerflash.replication.control.ClusterMapTest.changeOwner;
import static io.peerflash.replication.control.ClusterMapTest.create;
import static io.peerflash.replication.control.TestCluster.await;
import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.proto.v1.ClusterError;
import io.peerflash.proto.v1.ClusterEvent;
import io.peerflash.proto.v1.ClusterEventKind;
import io.peerflash.proto.v1.CommandResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.SortedMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

@Timeout(value = 60, unit = TimeUnit.SECONDS)
class ControlPlaneTest {
  static final Duration WAIT = Duration.ofSeconds(15);

  @TempDir Path dir;

  static CommandResult ok(CommandResult r) {
    assertThat(r.getOk()).as(r.toString()).isTrue();
    return r;
  }

  static CommandResult submit(ControlPlane cp, io.peerflash.proto.v1.MapCommand c)
      throws Exception {
    return cp.submit(c).get(20, TimeUnit.SECONDS);
  }

  static void awaitVolumes(List<ControlPlane> nodes, SortedMap<String, VolumeRecord> expected) {
    for (ControlPlane cp : nodes) {
      await(
          WAIT,
          () -> cp.map().volumes().equals(expected),
          () -> cp.nodeId() + " has volumes " + expected.keySet() + ", has " + cp.map().volumes());
    }
  }

  @Test
  void electsALeaderReplicatesFromAnyNodeAndSurvivesLosingTheLeader() throws Exception {
    try (TestCluster cluster = new TestCluster(dir, 3)) {
      cluster.startAll();
      Map<String, List<Optional<String>>> leaderEvents = new java.util.HashMap<>();
      for (ControlPlane cp : cluster.running()) {
        List<Optional<String>> events = new CopyOnWriteArrayList<>();
        leaderEvents.put(cp.nodeId(), events);
        cp.addLeaderListener(events::add);
      }
      ControlPlane leader = cluster.awaitLeader(WAIT);
      cluster.awaitRegistered(WAIT);
      assertThat(cluster.running().stream().filter(ControlPlane::isLeader)).hasSize(1);

      // A command submitted on each node is applied everywhere, in the same order.
      for (ControlPlane cp : cluster.running()) {
        CommandResult r = ok(submit(cp, create("vol-" + cp.nodeId(), 2, cp.nodeId())));
        assertThat(r.getVolume().getOwner()).isEqualTo(cp.nodeId());
        assertThat(r.getVolume().getReplicaSetCount()).isEqualTo(2);
      }
      SortedMap<String, VolumeRecord> volumes = leader.map().volumes();
      assertThat(volumes).containsOnlyKeys("vol-n1", "vol-n2", "vol-n3");
      awaitVolumes(cluster.running(), volumes);
      for (ControlPlane cp : cluster.running()) {
        assertThat(cp.map().members()).containsOnlyKeys("n1", "n2", "n3");
        assertThat(cp.map().member(cp.nodeId()).orElseThrow().grpcAddress())
            .isEqualTo(cp.config().grpcAddress());
      }
      // The linearizable read sees at least what was committed.
      assertThat(cluster.nodes.get("n2").readLinearizable().get(10, TimeUnit.SECONDS).volumes())
          .isEqualTo(volumes);
      // A CAS with a stale epoch is a result, not an exception.
      CommandResult stale = submit(leader, changeOwner("vol-n1", "n2", 99));
      assertThat(stale.getError()).isEqualTo(ClusterError.CLUSTER_ERROR_STALE_EPOCH);
      for (ControlPlane cp : cluster.running()) {
        await(
            WAIT,
            () -> leaderEvents.get(cp.nodeId()).contains(Optional.of(leader.nodeId())),
            () -> cp.nodeId() + " told who leads");
      }

      // Lose the leader: another is elected and commands keep working.
      String old = leader.nodeId();
      cluster.stop(old);
      ControlPlane next = cluster.awaitLeader(WAIT);
      assertThat(next.nodeId()).isNotEqualTo(old);
      ControlPlane follower =
          cluster.running().stream().filter(cp -> cp != next).findFirst().orElseThrow();
      CommandResult r = ok(submit(follower, create("after-failover", 1, follower.nodeId())));
      assertThat(r.getVolume().getOwner()).isEqualTo(follower.nodeId());
      awaitVolumes(cluster.running(), next.map().volumes());
      assertThat(next.map().volumes()).containsKey("after-failover");
      await(
          WAIT,
          () -> leaderEvents.get(follower.nodeId()).contains(Optional.of(next.nodeId())),
          () -> follower.nodeId() + " told about the new leader: " + leaderEvents);
    }
  }

  @Test
  void fullRestartOfAllNodesRestoresTheMapFromSnapshotAndLog() throws Exception {
    SortedMap<String, VolumeRecord> before;
    long nextId;
    Map<String, String> peers;
    List<ClusterEvent> history;
    try (TestCluster cluster = new TestCluster(dir, 3)) {
      peers = Map.copyOf(cluster.peers);
      cluster.snapshotThreshold = 8;
      cluster.startAll();
      ControlPlane leader = cluster.awaitLeader(WAIT);
      cluster.awaitRegistered(WAIT);
      for (int i = 0; i < 12; i++) {
        ControlPlane cp = cluster.running().get(i % 3);
        ok(submit(cp, create("v" + i, i % 3, "")));
      }
      CommandResult moved = ok(submit(leader, changeOwner("v0", "n3", 1)));
      assertThat(moved.getVolume().getEpoch()).isEqualTo(2);
      before = leader.map().volumes();
      nextId = leader.map().nextVolumeId();
      awaitVolumes(cluster.running(), before);
      history = leader.events().list(0, "", "", 0);
      for (ControlPlane cp : cluster.running()) {
        List<ClusterEvent> same = history;
        await(
            WAIT,
            () -> {
              List<ClusterEvent> kept = cp.events().list(0, "", "", 0);
              return kept.size() >= same.size() && kept.subList(0, same.size()).equals(same);
            },
            () -> cp.nodeId() + " has the leader's event history");
      }
    }
    // Every node derived the same history from the log, stamped by the proposers.
    assertThat(history)
        .filteredOn(e -> e.getKind() == ClusterEventKind.EVENT_VOLUME_CREATED)
        .hasSize(12)
        .allSatisfy(
            e -> {
              assertThat(e.getTimeMs()).isPositive();
              assertThat(e.getProposedBy()).isIn("n1", "n2", "n3");
            });
    assertThat(history)
        .filteredOn(e -> e.getKind() == ClusterEventKind.EVENT_VOLUME_MOVED)
        .singleElement()
        .satisfies(e -> assertThat(e.getDetail()).contains("move of v0").contains("-> n3"));
    // Every node took snapshots (automatic ones, and one on stop).
    for (String id : List.of("n1", "n2", "n3")) {
      try (Stream<Path> files = Files.walk(dir.resolve(id))) {
        assertThat(files.map(p -> p.getFileName().toString()))
            .as("snapshot of %s", id)
            .anyMatch(name -> name.matches("snapshot\\.\\d+_\\d+\\.md5"));
      }
    }

    // Same ids, addresses and storage: everything comes back.
    try (TestCluster cluster = new TestCluster(dir, peers)) {
      cluster.snapshotThreshold = 8;
      cluster.startAll();
      ControlPlane leader = cluster.awaitLeader(WAIT);
      for (ControlPlane cp : cluster.running()) {
        // The map is back before anything new was submitted (snapshot + log replay).
        await(WAIT, () -> cp.map().volumes().equals(before), () -> cp.nodeId() + " restored");
        assertThat(cp.map().nextVolumeId()).isEqualTo(nextId);
        // The event history comes back with it (from the snapshot, then the log).
        assertThat(cp.events().list(0, "", "", 0)).startsWith(history.toArray(ClusterEvent[]::new));
      }
      assertThat(leader.map().volume("v0").orElseThrow().owner()).isEqualTo("n3");
      CommandResult r = ok(submit(leader, create("after-restart", 1, "")));
      assertThat(r.getVolume().getId()).isEqualTo(nextId);
      awaitVolumes(cluster.running(), leader.map().volumes());
    }
  }

  @Test
  void aNodeBehindAPurgedLogCatchesUpThroughAnInstalledSnapshot() throws Exception {
    try (TestCluster cluster = new TestCluster(dir, 3)) {
      cluster.snapshotThreshold = 8;
      // Small log segments, purged up to each snapshot: a lagging node cannot get the entries.
      cluster.raftOverrides =
          Map.of(
              "raft.server.log.segment.size.max", "2KB",
              "raft.server.log.preallocated.size", "2KB",
              "raft.server.log.purge.upto.snapshot.index", "true",
              "raft.server.log.purge.gap", "1");
      cluster.startAll();
      ControlPlane leader = cluster.awaitLeader(WAIT);
      cluster.awaitRegistered(WAIT);
      ControlPlane lagging =
          cluster.running().stream().filter(cp -> cp != leader).findFirst().orElseThrow();
      String id = lagging.nodeId();
      cluster.stop(id);
      for (int i = 0; i < 40; i++) {
        ok(submit(leader, create("v" + i, 1, "")));
      }
      ControlPlane back = cluster.start(id);
      await(
          WAIT,
          () -> back.map().volumes().equals(leader.map().volumes()),
          () -> id + " caught up, has " + back.map().volumes().keySet());
      assertThat(back.stateMachine().snapshotInstalls()).isGreaterThanOrEqualTo(1);
      // The events of the purged entries came with the snapshot.
      await(
          WAIT,
          () -> back.events().list(0, "", "", 0).equals(leader.events().list(0, "", "", 0)),
          () -> id + " has the leader's event history: " + back.events().lastSeq());
      assertThat(back.events().list(0, "", "", 0))
          .filteredOn(e -> e.getKind() == ClusterEventKind.EVENT_VOLUME_CREATED)
          .hasSize(40);
      // And it keeps applying new entries after the install.
      ok(submit(back, create("after-install", 0, id)));
      awaitVolumes(cluster.running(), leader.map().volumes());
    }
  }

  @Test
  void addsAFourthVoterOnline() throws Exception {
    try (TestCluster cluster = new TestCluster(dir, 3)) {
      cluster.startAll();
      ControlPlane leader = cluster.awaitLeader(WAIT);
      cluster.awaitRegistered(WAIT);
      ok(submit(leader, create("before-join", 2, "")));

      // n4 starts empty (not in initialPeers); it registers only once it has been added as a
      // voter, so it never takes placements while it cannot follow the map.
      String address = "127.0.0.1:" + TestCluster.freePort();
      ControlPlane n4 = cluster.start("n4", address);
      await(
          WAIT,
          () -> n4.registrationsPutOff() >= 3,
          () -> "n4 to look for itself in the Raft group 3 times");
      assertThat(n4.registered().isDone()).isFalse();
      assertThat(leader.map().member("n4")).isEmpty();
      cluster.nodes.get("n2").addPeer("n4", address);
      await(WAIT, () -> n4.registered().isDone(), () -> "n4 registered");
      ok(n4.registered().join());

      for (ControlPlane cp : cluster.running()) {
        await(
            WAIT,
            () -> cp.raftPeers().keySet().equals(java.util.Set.of("n1", "n2", "n3", "n4")),
            () -> cp.nodeId() + " sees 4 voters, sees " + cp.raftPeers());
      }
      await(WAIT, () -> n4.map().volume("before-join").isPresent(), () -> "n4 caught up");
      // Its own registration is a later entry than the volume: wait until n4 has applied it too.
      await(
          WAIT,
          () -> n4.map().members().keySet().equals(java.util.Set.of("n1", "n2", "n3", "n4")),
          () -> "n4 sees 4 members, sees " + n4.map().members().keySet());
      assertThat(n4.map().members()).containsOnlyKeys("n1", "n2", "n3", "n4");
      assertThat(n4.leaderId()).isEqualTo(Optional.of(leader.nodeId()));

      CommandResult r = ok(submit(n4, create("from-n4", 1, "n4")));
      assertThat(r.getVolume().getOwner()).isEqualTo("n4");
      awaitVolumes(cluster.running(), leader.map().volumes());

      // The 4-voter group tolerates losing one of the original voters (3 of 4 remain).
      ControlPlane victim =
          cluster.running().stream()
              .filter(cp -> cp != leader && cp != n4)
              .findFirst()
              .orElseThrow();
      cluster.stop(victim.nodeId());
      ok(submit(n4, create("after-stop", 0, "")));
      awaitVolumes(cluster.running(), leader.map().volumes());

      // And a voter can be removed online.
      leader.removePeer(victim.nodeId());
      await(
          WAIT,
          () -> !leader.raftPeers().containsKey(victim.nodeId()),
          () -> "victim removed from the configuration");
    }
  }
}
