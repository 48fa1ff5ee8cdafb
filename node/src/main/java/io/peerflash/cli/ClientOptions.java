package io.peerflash.cli;

import io.peerflash.client.PeerFlashClient;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/** The options every command that talks to a node shares. */
final class ClientOptions {
  @Option(
      names = "--target",
      paramLabel = "HOST:PORT[,HOST:PORT...]",
      defaultValue = "${env:PEERFLASH_TARGET:-127.0.0.1:7601}",
      description = {
        "Node to talk to, or several nodes of a cluster separated by commas: calls go to the"
            + " volume's owner and fail over to the others (default: ${DEFAULT-VALUE}, or"
            + " $PEERFLASH_TARGET)."
      })
  String target;

  @Spec(Spec.Target.MIXEE)
  CommandSpec command;

  PeerFlashCli cli() {
    return (PeerFlashCli) command.root().userObject();
  }

  PeerFlashClient connect() {
    try {
      PeerFlashClient.parseTargets(target);
    } catch (IllegalArgumentException e) {
      throw new ParameterException(
          command.commandLine(),
          "--target must be HOST:PORT or HOST:PORT,HOST:PORT,...: " + e.getMessage());
    }
    return cli().connect(target);
  }
}
