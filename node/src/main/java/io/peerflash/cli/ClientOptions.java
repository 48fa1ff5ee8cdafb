package io.peerflash.cli;

import io.peerflash.client.ClientSecurity;
import io.peerflash.client.PeerFlashClient;
import java.nio.file.Path;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/** The options every command that talks to a node shares. */
final class ClientOptions {
  @Option(
      names = "--target",
      paramLabel = "HOST[:PORT][,HOST[:PORT]...]",
      defaultValue = "${env:PEERFLASH_TARGET:-127.0.0.1:7601}",
      description = {
        "Node to talk to, or several nodes of a cluster separated by commas: calls go to the"
            + " volume's owner and fail over to the others (default: ${DEFAULT-VALUE}, or"
            + " $PEERFLASH_TARGET); a host without a port means port 7601."
      })
  String target;

  @Option(
      names = "--certs",
      paramLabel = "DIR",
      defaultValue = "${env:PEERFLASH_CERTS}",
      description = {
        "Client identity directory (ca-cert.pem, client-cert.pem, client-key.pem): made by"
            + " 'peerflash certs client', or DIR/certs/admin by local-cluster (default:"
            + " $PEERFLASH_CERTS)."
      })
  Path certs;

  @Option(
      names = "--insecure",
      defaultValue = "${env:PEERFLASH_INSECURE:-false}",
      description = {
        "Plaintext, to a cluster whose nodes run with --insecure (default: $PEERFLASH_INSECURE)."
      })
  boolean insecure;

  @Spec(Spec.Target.MIXEE)
  CommandSpec command;

  private boolean warnedInsecure;

  /** Whether --insecure was given on the command line (not only through the environment). */
  private boolean insecureGivenAsOption() {
    return command.commandLine().getParseResult() != null
        && command.commandLine().getParseResult().hasMatchedOption("--insecure");
  }

  PeerFlashCli cli() {
    return (PeerFlashCli) command.root().userObject();
  }

  PeerFlashClient connect() {
    try {
      PeerFlashClient.parseTargets(target);
    } catch (IllegalArgumentException e) {
      throw new ParameterException(
          command.commandLine(),
          "--target must be HOST[:PORT] or HOST[:PORT],HOST[:PORT],...: " + e.getMessage());
    }
    applySecurity();
    return cli().connect(target);
  }

  /** Makes the command's connections use --certs or --insecure; one of them is required. */
  void applySecurity() {
    ClientSecurity security = security();
    if (security == null && cli().needsSecurity()) {
      throw new ParameterException(
          command.commandLine(),
          "no client certificate: give --certs DIR (an identity directory with ca-cert.pem,"
              + " client-cert.pem and client-key.pem; local-cluster prints the line to export) or"
              + " set PEERFLASH_CERTS; --insecure connects to a plaintext cluster");
    }
    cli().security(security);
  }

  /** The connection security the options ask for; null when they name none. */
  ClientSecurity security() {
    cli().quietLibraryLogging();
    if (insecure && certs != null) {
      throw new ParameterException(command.commandLine(), "give --certs or --insecure, not both");
    }
    if (insecure) {
      if (!warnedInsecure) {
        warnedInsecure = true;
        cli()
            .err()
            .println(
                "warning: --insecure"
                    + (insecureGivenAsOption() ? "" : " (PEERFLASH_INSECURE)")
                    + ": plaintext, the node is not authenticated and anyone on the network can"
                    + " read and change what this command sends and receives");
      }
      return ClientSecurity.insecure();
    }
    if (certs == null) {
      return null;
    }
    try {
      return ClientSecurity.certs(certs);
    } catch (java.io.IOException e) {
      throw new ParameterException(command.commandLine(), "--certs: " + e.getMessage());
    }
  }
}
