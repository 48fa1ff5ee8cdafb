package io.peerflash.replication.control;

import static io.peerflash.replication.control.ClusterMapTest.addReplicas;
import static io.peerflash.replication.control.ClusterMapTest.changeOwner;
import static io.peerflash.replication.control.ClusterMapTest.create;
import static io.peerflash.replication.control.ClusterMapTest.delete;
import static io.peerflash.replication.control.ClusterMapTest.drain;
import static io.peerflash.replication.control.ClusterMapTest.heartbeat;
import static io.peerflash.replication.control.ClusterMapTest.inSync;
import static io.peerflash.replication.control.ClusterMapTest.markDown;
import static io.peerflash.replication.control.ClusterMapTest.register;
import static io.peerflash.replication.control.ClusterMapTest.remove;
import static io.peerflash.replication.control.ClusterMapTest.removeReplica;
import static io.peerflash.replication.control.ClusterMapTest.setPolicy;
import static io.peerflash.replication.control.ClusterMapTest.setReplicas;
import static io.peerflash.replication.control.ClusterMapTest.undrain;
import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.proto.v1.ClusterEvent;
import io.peerflash.proto.v1.ClusterEventKind;
import io.peerflash.proto.v1.MapCommand;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The events each command causes, derived from the maps before and after it. */
class ClusterEventsTest {
  private ClusterMap map = ClusterMap.EMPTY;
  private long index;
  private final ClusterEventLog log = new ClusterEventLog(ClusterEventLog.DEFAULT_CAPACITY);

  /** Applies {@code command} as node n1 proposing it at time 1000 + index, returns its events. */
  private List<ClusterEvent> apply(MapCommand command) {
    index++;
    MapCommand proposed = MapCommands.proposed(command, 1000 + index, "n1");
    ClusterMap.Applied applied = map.apply(proposed);
    List<ClusterEvent> events =
        ClusterEvents.of(index, proposed, applied.result(), map, applied.map());
    map = applied.map();
    log.append(events);
    return events;
  }

  private ClusterEvent only(List<ClusterEvent> events, ClusterEventKind kind) {
    assertThat(events).extracting(ClusterEvent::getKind).containsExactly(kind);
    return events.get(0);
  }

  private void threeMembers() {
    for (String id : List.of("n1", "n2", "n3")) {
      only(apply(register(id, "rack-" + id)), ClusterEventKind.EVENT_MEMBER_JOINED);
    }
  }

  @Test
  void aFailoverNamesTheOldAndNewOwnerAndTheEpochThatFencesTheOldOne() {
    threeMembers();
    ClusterEvent created = only(apply(create("v", 1, "n1")), ClusterEventKind.EVENT_VOLUME_CREATED);
    assertThat(created.getVolume()).isEqualTo("v");
    assertThat(created.getNode()).isEqualTo("n1");
    assertThat(created.getEpoch()).isEqualTo(1);
    String replica = map.volume("v").orElseThrow().replicaSet().get(0);

    ClusterEvent down =
        only(
            apply(markDown("n1", map.member("n1").orElseThrow().heartbeats())),
            ClusterEventKind.EVENT_MEMBER_DOWN);
    assertThat(down.getNode()).isEqualTo("n1");
    assertThat(down.getDetail()).contains("member n1 DOWN: test").contains("owns v");

    ClusterEvent failover =
        only(
            apply(
                MapCommands.because(
                    changeOwner("v", replica, 1), "owner n1 is DOWN; the replica has the data")),
            ClusterEventKind.EVENT_FAILOVER);
    assertThat(failover.getVolume()).isEqualTo("v");
    assertThat(failover.getNode()).isEqualTo(replica);
    assertThat(failover.getEpoch()).isEqualTo(2);
    assertThat(failover.getDetail())
        .contains("owner n1 (DOWN) -> " + replica)
        .contains("epoch 1 -> 2 fences n1")
        .endsWith("reason: owner n1 is DOWN; the replica has the data");
    assertThat(failover.getTimeMs()).isEqualTo(1000 + index);
    assertThat(failover.getProposedBy()).isEqualTo("n1");
    assertThat(failover.getRaftIndex()).isEqualTo(index);
  }

  @Test
  void aMoveOfALiveOwnerIsNotAFailover() {
    threeMembers();
    apply(create("v", 0, "n1"));
    ClusterEvent moved =
        only(apply(changeOwner("v", "n2", 1)), ClusterEventKind.EVENT_VOLUME_MOVED);
    assertThat(moved.getDetail()).contains("move of v: owner n1 -> n2").doesNotContain("fences");
  }

  @Test
  void aReturningMemberFencesFailoversDecidedWhileItWasDown() {
    threeMembers();
    apply(create("v", 0, "n2"));
    apply(markDown("n2", map.member("n2").orElseThrow().heartbeats()));
    ClusterEvent up = only(apply(heartbeat("n2")), ClusterEventKind.EVENT_MEMBER_UP);
    assertThat(up.getDetail()).contains("member n2 UP again").contains("epochs").contains("(v)");
    // A heartbeat of an UP member is no event.
    assertThat(apply(heartbeat("n2"))).isEmpty();
    assertThat(apply(heartbeat("n3"))).isEmpty();
  }

  @Test
  void reprotectionStartsPerMemberAndEndsWhenInSync() {
    threeMembers();
    apply(create("v", 1, "n1"));
    String first = map.volume("v").orElseThrow().replicaSet().get(0);
    ClusterEvent removed =
        only(
            apply(MapCommands.because(removeReplica("v", first, 1), "it did not take a copy")),
            ClusterEventKind.EVENT_REPLICA_REMOVED);
    assertThat(removed.getNode()).isEqualTo(first);
    assertThat(removed.getDetail())
        .contains(first + " removed from the replicas of v, epoch 1 -> 2")
        .contains("left [] of 1 wanted")
        .endsWith("reason: it did not take a copy");
    // Removing it again changes nothing: no event.
    assertThat(apply(removeReplica("v", first, 2))).isEmpty();

    ClusterEvent started =
        only(apply(addReplicas("v", 2)), ClusterEventKind.EVENT_REPROTECTION_STARTED);
    String filling = map.volume("v").orElseThrow().syncing().get(0);
    assertThat(started.getNode()).isEqualTo(filling);
    ClusterEvent synced =
        only(
            apply(inSync("v", filling, map.volume("v").orElseThrow().epoch())),
            ClusterEventKind.EVENT_REPLICA_IN_SYNC);
    assertThat(synced.getDetail()).contains("in sync [" + filling + "] of 1 wanted");
    // Nothing left to add: no event.
    assertThat(apply(addReplicas("v", map.volume("v").orElseThrow().epoch()))).isEmpty();
  }

  @Test
  void membershipPolicyAndVolumeChanges() {
    threeMembers();
    apply(create("v", 1, "n1"));
    ClusterEvent policy = only(apply(setPolicy("v", 0)), ClusterEventKind.EVENT_POLICY_CHANGED);
    assertThat(policy.getDetail()).contains("replicas 1").contains("-> WRITE_BACK replicas 0");
    assertThat(policy.getDetail()).contains("epoch 1 -> 2");
    only(
        apply(setReplicas("v", map.volume("v").orElseThrow().epoch())),
        ClusterEventKind.EVENT_REPLICA_SET_CHANGED);
    only(apply(drain("n3")), ClusterEventKind.EVENT_MEMBER_DRAINING);
    only(apply(undrain("n3")), ClusterEventKind.EVENT_MEMBER_DRAIN_CANCELLED);
    only(apply(remove("n3")), ClusterEventKind.EVENT_MEMBER_REMOVED);
    only(apply(delete("v")), ClusterEventKind.EVENT_VOLUME_DELETED);
    // A refused command is no event.
    assertThat(apply(delete("v"))).isEmpty();
    assertThat(apply(changeOwner("nope", "n1", 1))).isEmpty();
  }

  @Test
  void theLogNumbersKeepsTheNewestAndFilters() {
    ClusterEventLog small = new ClusterEventLog(3);
    List<ClusterEvent> fresh = new ArrayList<>();
    for (int i = 0; i < 5; i++) {
      fresh.add(
          ClusterEvent.newBuilder()
              .setKind(ClusterEventKind.EVENT_VOLUME_CREATED)
              .setVolume(i % 2 == 0 ? "even" : "odd")
              .build());
    }
    small.append(fresh);
    assertThat(small.list(0, "", "", 0))
        .extracting(ClusterEvent::getSeq)
        .containsExactly(3L, 4L, 5L);
    assertThat(small.list(3, "", "", 0)).extracting(ClusterEvent::getSeq).containsExactly(4L, 5L);
    assertThat(small.list(0, "even", "", 0))
        .extracting(ClusterEvent::getSeq)
        .containsExactly(3L, 5L);
    assertThat(small.list(0, "", "", 1)).extracting(ClusterEvent::getSeq).containsExactly(5L);
    ClusterEventLog.Page page = small.page(5, "", "", 0);
    assertThat(page.events()).isEmpty();
    assertThat(page.lastSeq()).isEqualTo(5);

    // A snapshot keeps the numbering going.
    ClusterEventLog.Saved saved = small.save();
    ClusterEventLog restored = new ClusterEventLog(3);
    restored.restore(saved.events(), saved.nextSeq());
    assertThat(restored.list(0, "", "", 0)).isEqualTo(small.list(0, "", "", 0));
    restored.append(List.of(fresh.get(0)));
    assertThat(restored.lastSeq()).isEqualTo(6);
  }
}
