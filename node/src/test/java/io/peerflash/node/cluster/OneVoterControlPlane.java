package io.peerflash.node.cluster;

import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.proto.v1.CommandResult;
import io.peerflash.proto.v1.MapCommand;
import io.peerflash.replication.control.ControlPlane;
import io.peerflash.replication.control.ControlPlaneConfig;
import io.peerflash.util.ManualTime;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * A real control plane of one Raft voter on loopback, for the tests of what a node decides from its
 * map: its clock is stopped, so the members registered beside it are never marked DOWN.
 */
final class OneVoterControlPlane {
  private OneVoterControlPlane() {}

  /** Starts {@code self} as the only voter and registers {@code others} as UP members. */
  static ControlPlane start(Path dir, String self, List<String> others) throws Exception {
    String raft = "127.0.0.1:" + freePort();
    ControlPlane cp =
        ControlPlane.start(
            new ControlPlaneConfig(
                self,
                raft,
                "127.0.0.1:1",
                "",
                Map.of(self, raft),
                dir.resolve("raft"),
                ControlPlaneConfig.DEFAULT_LEASE_TIMEOUT_MS,
                ControlPlaneConfig.DEFAULT_CLOCK_SKEW_MARGIN_MS,
                ControlPlaneConfig.DEFAULT_SNAPSHOT_THRESHOLD,
                ControlPlaneConfig.DEFAULT_ELECTION_TIMEOUT_MIN_MS,
                new ManualTime(),
                Map.of()));
    cp.registered().get(60, TimeUnit.SECONDS);
    for (String id : others) {
      commit(
          cp,
          MapCommand.newBuilder()
              .setRegisterMember(
                  MapCommand.RegisterMember.newBuilder()
                      .setId(id)
                      .setGrpcAddress(id + ":1")
                      .setRaftAddress(id + ":2")
                      .setFaultDomain(id))
              .build());
    }
    return cp;
  }

  /** Commits {@code command} and checks that it applied. */
  static void commit(ControlPlane cp, MapCommand command) throws Exception {
    CommandResult r = cp.submit(command).get(60, TimeUnit.SECONDS);
    assertThat(r.getOk()).as(r.toString()).isTrue();
  }

  private static int freePort() throws Exception {
    try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      return s.getLocalPort();
    }
  }
}
