package io.peerflash.cli;

import io.peerflash.bench.Echo;
import io.peerflash.security.TlsDirectory;
import java.io.IOException;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.ParentCommand;
import picocli.CommandLine.Spec;

/** {@code peerflash bench echo-server}: the floor's server side. */
@Command(
    name = "echo-server",
    sortOptions = false,
    description = {
      "Serve a 4 KiB gRPC echo the way a node serves writes and cache hits (Netty, answered on"
          + " the transport thread, mutual TLS with a node identity), as the floor for"
          + " 'peerflash bench --workload echo' and 'bench --floor'. Runs until SIGTERM or"
          + " Ctrl-C."
    })
final class BenchEchoServerCommand implements Callable<Integer> {
  @ParentCommand BenchCommand parent;

  @Option(
      names = "--listen",
      paramLabel = "HOST:PORT",
      defaultValue = "127.0.0.1:7690",
      description = "Address to serve on (default: ${DEFAULT-VALUE}; port 0 picks one).")
  String listen;

  @Option(
      names = "--rpc-threads",
      paramLabel = "N",
      defaultValue = "0",
      description =
          "Request threads; 0 answers on the transport thread, as a node answers a write or a"
              + " cache hit that needs no wait (default: ${DEFAULT-VALUE}).")
  int rpcThreads;

  @Option(
      names = "--certs",
      paramLabel = "DIR",
      description =
          "A node identity directory (e.g. made by 'peerflash certs node --id echo'): mutual TLS"
              + " as a node's client port has it; clients need a certificate of the same CA.")
  Path certs;

  @Option(names = "--insecure", description = "Plaintext, for clients run with --insecure.")
  boolean insecure;

  @Spec CommandSpec spec;

  /** The identity to serve as, or null for plaintext; exactly one of the two options is given. */
  private TlsDirectory identity() {
    if (insecure == (certs != null)) {
      throw new ParameterException(
          spec.commandLine(),
          "give --certs DIR (a node identity directory: 'peerflash certs node --id echo') or"
              + " --insecure (plaintext)");
    }
    if (insecure) {
      return null;
    }
    TlsDirectory dir;
    try {
      dir = TlsDirectory.open(certs);
    } catch (IOException | GeneralSecurityException e) {
      throw new ParameterException(spec.commandLine(), "--certs " + certs + ": " + e.getMessage());
    }
    if (!dir.isNode()) {
      throw new ParameterException(
          spec.commandLine(),
          "--certs "
              + certs
              + " holds "
              + dir.identity().describe()
              + ", not a node identity (server-cert.pem, server-key.pem)");
    }
    return dir;
  }

  @Override
  public Integer call() throws IOException, InterruptedException {
    int colon = listen.lastIndexOf(':');
    int port;
    try {
      port = Integer.parseInt(listen.substring(colon + 1));
    } catch (NumberFormatException | IndexOutOfBoundsException e) {
      port = -1;
    }
    if (colon <= 0 || port < 0 || port > 65535) {
      throw new ParameterException(
          spec.commandLine(), "--listen must be HOST:PORT, got '" + listen + "'");
    }
    if (rpcThreads < 0) {
      throw new ParameterException(spec.commandLine(), "--rpc-threads must be 0 or more");
    }
    TlsDirectory tls = identity();
    PeerFlashCli cli = (PeerFlashCli) spec.root().userObject();
    if (tls == null) {
      cli.err()
          .println(
              "warning: --insecure: plaintext, anyone who reaches the port may call the echo"
                  + " server and read what its clients send");
    }
    Echo.Running server = Echo.start(listen.substring(0, colon), port, rpcThreads, tls);
    Thread hook = new Thread(server::close, "peerflash-echo-stop");
    Runtime.getRuntime().addShutdownHook(hook);
    cli.out()
        .println(
            "echo server listening on "
                + listen.substring(0, colon)
                + ":"
                + server.port()
                + (tls == null
                    ? " (plaintext)"
                    : " (mutual TLS as " + tls.identity().describe() + ")"));
    cli.out().flush();
    try {
      server.server().awaitTermination();
    } finally {
      // Also when the command's thread is interrupted (an embedding program stopping it).
      server.close();
      try {
        Runtime.getRuntime().removeShutdownHook(hook);
      } catch (IllegalStateException shuttingDown) {
        // The hook is running or has run.
      }
    }
    return PeerFlashCli.EXIT_OK;
  }
}
