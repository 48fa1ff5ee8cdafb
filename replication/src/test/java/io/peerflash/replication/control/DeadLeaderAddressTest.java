package io.peerflash.replication.control;

import static io.peerflash.replication.control.TestCluster.await;
import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A leader dies and its address hangs instead of refusing, as a killed host's does: every Raft
 * client of the survivors still aims at it. The new leader's own work (its heartbeats, the DOWN
 * mark of the dead node) must not wait on that guess, nor must a follower's read of the map.
 */
@Timeout(value = 90, unit = TimeUnit.SECONDS)
class DeadLeaderAddressTest {
  static final long LEASE_MS = 1500;
  static final long MARGIN_MS = 300;
  static final Duration WAIT = Duration.ofSeconds(20);

  @TempDir Path dir;

  /** Takes connections on an address and never answers (the kernel completes the handshake). */
  private static ServerSocket blackHole(String hostPort) throws IOException {
    int colon = hostPort.lastIndexOf(':');
    ServerSocket hole = new ServerSocket();
    hole.setReuseAddress(true);
    hole.bind(
        new InetSocketAddress(
            hostPort.substring(0, colon), Integer.parseInt(hostPort.substring(colon + 1))),
        512);
    return hole;
  }

  @Test
  void theNewLeaderMarksTheDeadOneDownAndAFollowerReadsTheMapWithoutWaitingOnItsAddress()
      throws Exception {
    try (TestCluster cluster = new TestCluster(dir, 3)) {
      cluster.leaseMs = LEASE_MS;
      cluster.marginMs = MARGIN_MS;
      cluster.startAll();
      ControlPlane old = cluster.awaitLeader(WAIT);
      cluster.awaitRegistered(WAIT);
      for (ControlPlane cp : cluster.running()) {
        await(WAIT, cp::leaseValid, () -> cp.nodeId() + " holds a lease");
      }
      // Registration and heartbeats went to the old leader: each client's guess is its address.
      String dead = old.nodeId();
      String deadAddress = cluster.peers.get(dead);
      cluster.stop(dead);
      try (ServerSocket hole = blackHole(deadAddress)) {
        ControlPlane leader = cluster.awaitLeader(WAIT);
        long electedNanos = System.nanoTime();
        long localBefore = leader.leaderLocalCommands();
        ControlPlane follower =
            cluster.running().stream().filter(cp -> cp != leader).findFirst().orElseThrow();

        // A follower's linearizable read goes through its own server, which knows the leader.
        long readStart = System.nanoTime();
        ClusterMap read = follower.readLinearizable().get(30, TimeUnit.SECONDS);
        long readMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - readStart);
        assertThat(read.members()).containsKey(dead);
        assertThat(readMs)
            .as("a read does not wait out an attempt at the dead address (%d ms)", readMs)
            .isLessThan(RaftCalls.COMMAND_ATTEMPT_TIMEOUT_MS);

        // The leader gives every member lease + margin from its election, then marks the silent
        // one DOWN through its own server: nothing of its client's guess in the way.
        await(
            WAIT,
            () -> leader.map().member(dead).map(m -> m.state() == Member.State.DOWN).orElse(false),
            () -> leader.nodeId() + " marks " + dead + " DOWN");
        long downMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - electedNanos);
        assertThat(downMs)
            .as("DOWN %d ms after the election; patience is %d ms", downMs, LEASE_MS + MARGIN_MS)
            .isLessThan(LEASE_MS + MARGIN_MS + 2 * RaftCalls.COMMAND_ATTEMPT_TIMEOUT_MS);
        assertThat(leader.leaderLocalCommands())
            .as("heartbeats and the DOWN mark committed through the leader's own server")
            .isGreaterThan(localBefore);
        assertThat(leader.leaseValid()).as("the new leader kept its lease").isTrue();
      }
    }
  }
}
