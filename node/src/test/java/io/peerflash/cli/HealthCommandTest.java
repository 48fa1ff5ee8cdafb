package io.peerflash.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.Server;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.grpc.protobuf.services.HealthStatusManager;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class HealthCommandTest {
  private final HealthStatusManager health = new HealthStatusManager();
  private Server server;
  private String serverName;
  private final ByteArrayOutputStream out = new ByteArrayOutputStream();
  private final ByteArrayOutputStream err = new ByteArrayOutputStream();

  @BeforeEach
  void start() throws Exception {
    serverName = InProcessServerBuilder.generateName();
    server =
        InProcessServerBuilder.forName(serverName)
            .addService(health.getHealthService())
            .build()
            .start();
  }

  @AfterEach
  void stop() throws Exception {
    server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
  }

  private int run(String... args) {
    out.reset();
    err.reset();
    PeerFlashCli cli =
        new PeerFlashCli(
            target -> InProcessChannelBuilder.forName(serverName).build(),
            new PrintStream(out, true, StandardCharsets.UTF_8),
            new PrintStream(err, true, StandardCharsets.UTF_8));
    return cli.execute(args);
  }

  @Test
  void exitsZeroOnlyWhileEveryTargetServes() {
    health.setStatus("", ServingStatus.SERVING);
    assertThat(run("health", "--target", "10.0.0.1:7601,10.0.0.2:7601"))
        .as(err.toString())
        .isZero();
    assertThat(out.toString(StandardCharsets.UTF_8))
        .contains("10.0.0.1:7601: SERVING", "10.0.0.2:7601: SERVING");

    health.setStatus("", ServingStatus.NOT_SERVING);
    assertThat(run("health", "--target", "10.0.0.1:7601")).isEqualTo(PeerFlashCli.EXIT_FAILURE);
    assertThat(out.toString(StandardCharsets.UTF_8)).contains("10.0.0.1:7601: NOT_SERVING");

    // A stopping node (terminal state) is not healthy either.
    health.enterTerminalState();
    assertThat(run("health", "--target", "10.0.0.1:7601")).isEqualTo(PeerFlashCli.EXIT_FAILURE);
  }

  @Test
  void jsonNamesEachTargetAndItsStatus() throws Exception {
    health.setStatus("", ServingStatus.SERVING);
    assertThat(run("health", "--target", "10.0.0.1:7601,10.0.0.2:7601", "-o", "json"))
        .as(err.toString())
        .isZero();
    com.google.gson.JsonObject json =
        com.google.gson.JsonParser.parseString(out.toString(StandardCharsets.UTF_8))
            .getAsJsonObject();
    com.google.gson.JsonArray nodes = json.getAsJsonArray("nodes");
    assertThat(nodes).hasSize(2);
    assertThat(nodes.get(0).getAsJsonObject().get("target").getAsString())
        .isEqualTo("10.0.0.1:7601");
    assertThat(nodes.get(1).getAsJsonObject().get("status").getAsString()).isEqualTo("SERVING");
    health.setStatus("", ServingStatus.NOT_SERVING);
    assertThat(run("health", "--target", "10.0.0.1:7601", "-o", "json"))
        .isEqualTo(PeerFlashCli.EXIT_FAILURE);
    assertThat(
            com.google.gson.JsonParser.parseString(out.toString(StandardCharsets.UTF_8))
                .getAsJsonObject()
                .getAsJsonArray("nodes")
                .get(0)
                .getAsJsonObject()
                .get("status")
                .getAsString())
        .isEqualTo("NOT_SERVING");
  }

  @Test
  void anUnreachableNodeFails() throws Exception {
    server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    assertThat(run("health", "--target", "10.0.0.1:7601", "--timeout", "2s"))
        .isEqualTo(PeerFlashCli.EXIT_FAILURE);
    assertThat(err.toString(StandardCharsets.UTF_8)).contains("error:");
  }

  @Test
  void aMalformedTargetIsAUsageError() {
    assertThat(run("health", "--target", "no-port:")).isEqualTo(PeerFlashCli.EXIT_USAGE);
    assertThat(err.toString(StandardCharsets.UTF_8)).contains("--target must be HOST[:PORT]");
  }
}
