package io.peerflash.replication.control;

import static io.peerflash.replication.control.TestCluster.await;
import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** Leases and liveness with real control planes (lease 1500 ms, margin 300 ms). */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class LivenessTest {
  static final long LEASE_MS = 1500;
  static final long MARGIN_MS = 300;
  static final Duration WAIT = Duration.ofSeconds(15);

  @TempDir Path dir;

  @Test
  void aStoppedNodeIsMarkedDownAfterItsLeaseExpiredAndACutOffNodeLosesItsLease() {
    try (TestCluster cluster = new TestCluster(dir, 3)) {
      cluster.leaseMs = LEASE_MS;
      cluster.marginMs = MARGIN_MS;
      cluster.startAll();
      ControlPlane leader = cluster.awaitLeader(WAIT);
      cluster.awaitRegistered(WAIT);
      for (ControlPlane cp : cluster.running()) {
        await(WAIT, cp::leaseValid, () -> cp.nodeId() + " holds a lease");
      }
      assertThat(leader.map().members().values()).allMatch(Member::isUp);

      // Stop a follower: the leader marks it DOWN once its lease has surely expired.
      ControlPlane victim =
          cluster.running().stream().filter(cp -> cp != leader).findFirst().orElseThrow();
      String id = victim.nodeId();
      AtomicLong markedDownAt = new AtomicLong();
      leader.addListener(
          m -> {
            if (m.member(id).map(x -> x.state() == Member.State.DOWN).orElse(false)) {
              markedDownAt.compareAndSet(0, System.nanoTime());
            }
          });
      cluster.stop(id);
      LeaseKeeper victimLease = victim.leaseKeeper();

      await(
          Duration.ofMillis(LEASE_MS + MARGIN_MS + 5000),
          () -> markedDownAt.get() != 0,
          () -> "leader marks " + id + " DOWN");
      // Not before lease + margin after the leader last applied a heartbeat of it.
      long lastHeard = leader.livenessMonitor().lastHeardNanos(id).orElseThrow();
      assertThat(markedDownAt.get() - lastHeard)
          .as("marked down after lease + margin of silence, not before")
          .isGreaterThan(TimeUnit.MILLISECONDS.toNanos(LEASE_MS + MARGIN_MS));
      // The invariant: the node's own lease had expired when the leader applied the MarkDown.
      assertThat(victimLease.leaseValidUntilNanos()).isLessThan(markedDownAt.get());
      assertThat(victimLease.leaseValid()).isFalse();
      // And its lease lasted lease - margin from the send of its last committed heartbeat.
      assertThat(
              victimLease.leaseValidUntilNanos() - victimLease.lastSuccessfulHeartbeatSentNanos())
          .isEqualTo(TimeUnit.MILLISECONDS.toNanos(LEASE_MS - MARGIN_MS));
      for (ControlPlane cp : cluster.running()) {
        await(
            WAIT,
            () -> cp.map().member(id).map(m -> m.state() == Member.State.DOWN).orElse(false),
            () -> cp.nodeId() + " sees " + id + " DOWN");
      }
      assertThat(leader.map().members().values().stream().filter(Member::isUp)).hasSize(2);

      // Cut the last follower off from the majority by stopping the leader: it loses its lease
      // within LEASE_MS of its last successful heartbeat, although it keeps trying.
      ControlPlane survivor =
          cluster.running().stream().filter(cp -> cp != leader).findFirst().orElseThrow();
      await(WAIT, survivor::leaseValid, () -> survivor.nodeId() + " holds a lease");
      long failuresBefore = survivor.leaseKeeper().failedHeartbeats();
      cluster.stop(leader.nodeId());
      LeaseKeeper lease = survivor.leaseKeeper();
      await(
          Duration.ofMillis(LEASE_MS + 2000),
          () -> !lease.leaseValid(),
          () -> survivor.nodeId() + " loses its lease");
      long lostAt = System.nanoTime();
      long lastSent = lease.lastSuccessfulHeartbeatSentNanos();
      // Exactly lease - margin after the send of the last committed heartbeat (so < LEASE_MS) ...
      assertThat(lease.leaseValidUntilNanos() - lastSent)
          .isEqualTo(TimeUnit.MILLISECONDS.toNanos(LEASE_MS - MARGIN_MS));
      // ... and observed as lost soon after (loose bound: polling on a busy 2-core machine).
      assertThat(lostAt - lastSent).isLessThan(TimeUnit.MILLISECONDS.toNanos(LEASE_MS + 1000));
      // It is still running and still trying; it just cannot commit.
      await(
          WAIT,
          () -> lease.failedHeartbeats() > failuresBefore,
          () -> survivor.nodeId() + " keeps heartbeating");
      assertThat(lease.leaseValid()).isFalse();
      assertThat(lease.lastSuccessfulHeartbeatSentNanos()).isEqualTo(lastSent);
    }
  }
}
