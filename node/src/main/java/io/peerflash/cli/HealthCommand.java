package io.peerflash.cli;

import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.peerflash.cli.Converters.DurationConverter;
import io.peerflash.client.PeerFlashClient;
import java.io.PrintStream;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;

/**
 * Asks each node given by --target whether it serves, through the standard gRPC health service
 * ({@code grpc.health.v1.Health/Check}). Unlike status, it is open to every certificate of the
 * cluster, a node's own included: a container's health check runs it with the node's identity
 * directory, which holds no client role.
 */
@Command(
    name = "health",
    description =
        "Ask each target node's gRPC health service whether it serves (exit 0 when every one"
            + " answers SERVING). Any certificate of the cluster may ask, a node's own included."
            + " With -o json: {\"nodes\": [{\"target\", \"status\"}]}.")
final class HealthCommand implements Callable<Integer> {
  @Mixin ClientOptions client;
  @Mixin OutputOption output;

  @Option(
      names = "--timeout",
      paramLabel = "DURATION",
      defaultValue = "10s",
      converter = DurationConverter.class,
      description = "Longest wait for each node's answer (default: ${DEFAULT-VALUE}).")
  Duration timeout;

  @Override
  public Integer call() {
    PrintStream out = client.cli().out();
    List<String> targets;
    try {
      targets = PeerFlashClient.parseTargets(client.target);
    } catch (IllegalArgumentException e) {
      throw new ParameterException(
          client.command.commandLine(),
          "--target must be HOST[:PORT] or HOST[:PORT],HOST[:PORT],...: " + e.getMessage());
    }
    client.applySecurity();
    boolean allServing = true;
    StringBuilder json = new StringBuilder("{\n\"nodes\": [");
    for (String target : targets) {
      HealthCheckResponse.ServingStatus status;
      // One target per client: each node is asked itself, never redirected elsewhere.
      try (PeerFlashClient c = client.cli().connect(target)) {
        status =
            HealthGrpc.newBlockingStub(c.channel())
                .withDeadlineAfter(timeout.toMillis(), TimeUnit.MILLISECONDS)
                .check(HealthCheckRequest.getDefaultInstance())
                .getStatus();
      }
      if (output.json()) {
        json.append(json.charAt(json.length() - 1) == '[' ? "\n" : ",\n")
            .append("{\"target\": ")
            .append(Formats.jsonString(target))
            .append(", \"status\": ")
            .append(Formats.jsonString(status.name()))
            .append('}');
      } else {
        out.println(target + ": " + status);
      }
      allServing &= status == HealthCheckResponse.ServingStatus.SERVING;
    }
    if (output.json()) {
      out.println(json.append("\n]\n}"));
    }
    return allServing ? PeerFlashCli.EXIT_OK : PeerFlashCli.EXIT_FAILURE;
  }
}
