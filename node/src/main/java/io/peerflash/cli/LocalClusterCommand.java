package io.peerflash.cli;

import io.peerflash.cli.Converters.SizeConverter;
import io.peerflash.client.ClientSecurity;
import io.peerflash.client.PeerFlashClient;
import io.peerflash.security.CertificateIssuer;
import io.peerflash.security.CertificateIssuer.Validity;
import io.peerflash.security.Identity;
import io.peerflash.security.TlsDirectory;
import java.io.IOException;
import java.io.PrintStream;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.Collectors;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/**
 * Runs a cluster of node processes on loopback for trying things out: failover can be exercised by
 * killing a node (its pid is in DIR/cluster.txt).
 */
@Command(
    name = "local-cluster",
    sortOptions = false,
    description = {
      "Start N nodes on 127.0.0.1 as child processes, each logging to DIR/n<i>.log, and wait until"
          + " Ctrl-C or SIGTERM, which stop them all (SIGTERM, then SIGKILL after 15 s).",
      "DIR/cluster.txt lists each node: id, pid, client address, Raft address."
    })
final class LocalClusterCommand implements Callable<Integer> {
  static final int MAX_NODES = 9;
  static final Duration READY_TIMEOUT = Duration.ofSeconds(60);
  static final Duration STOP_TIMEOUT = Duration.ofSeconds(15);
  static final int LOG_TAIL_LINES = 30;

  @Option(names = "--nodes", required = true, paramLabel = "N", description = "Nodes, 1-9.")
  int nodes;

  @Option(
      names = "--dir",
      required = true,
      paramLabel = "DIR",
      description = "Holds each node's data (DIR/n<i>), the shared storage (DIR/shared) and logs.")
  Path dir;

  @Option(
      names = "--cache-size",
      paramLabel = "SIZE",
      converter = SizeConverter.class,
      description = "Cache size of each node, e.g. 64MiB (default: the node's).")
  Long cacheSize;

  @Option(names = "--sync", description = "Start the nodes with --sync.")
  boolean sync;

  @Option(
      names = "--set",
      paramLabel = "KEY=VALUE",
      description =
          "A node setting given to every node (see 'peerflash node --help'), e.g."
              + " storage-latency-us=1000; repeatable.")
  java.util.Map<String, String> settings;

  @Option(
      names = "--base-port",
      paramLabel = "PORT",
      defaultValue = "7601",
      description = "Client port of n1; n<i> uses PORT+i-1 (default: ${DEFAULT-VALUE}).")
  int basePort;

  @Option(
      names = "--raft-base-port",
      paramLabel = "PORT",
      defaultValue = "7701",
      description = "Raft port of n1; n<i> uses PORT+i-1 (default: ${DEFAULT-VALUE}).")
  int raftBasePort;

  @Option(
      names = "--http-base-port",
      paramLabel = "PORT",
      defaultValue = "7801",
      description =
          "HTTP port (metrics, health, status page) of n1; n<i> uses PORT+i-1; 0 turns the HTTP"
              + " ports off (default: ${DEFAULT-VALUE}).")
  int httpBasePort;

  @Option(
      names = "--nbd-base-port",
      paramLabel = "PORT",
      defaultValue = "10809",
      description =
          "NBD port of n1 (every volume is an export of its name); n<i> uses PORT+i-1, and serves"
              + " NBD on the Unix socket DIR/n<i>/nbd.sock too (default: ${DEFAULT-VALUE}).")
  int nbdBasePort;

  @Option(
      names = "--insecure",
      description =
          "Plaintext without authentication (default: mutual TLS with certificates made in"
              + " DIR/certs: a CA, one per node, and an admin client).")
  boolean insecure;

  @Option(names = "--log-json", description = "Start the nodes with --log-json (JSON log lines).")
  boolean logJson;

  @Spec CommandSpec spec;

  /** One started node. */
  record Node(String id, String address, String raftAddress, Process process, Path log) {}

  @Override
  public Integer call() throws IOException {
    validate();
    PeerFlashCli cli = (PeerFlashCli) spec.root().userObject();
    // Its own output is the lines below; library chatter (and the load of its admin identity for
    // the readiness checks) would only bury the line to export.
    cli.quietLibraryLogging();
    PrintStream out = cli.out();
    PrintStream err = cli.err();
    Files.createDirectories(dir.resolve("shared"));
    if (!insecure) {
      makeCertificates();
      cli.security(ClientSecurity.certs(adminCerts()));
    } else {
      cli.security(ClientSecurity.insecure());
    }
    List<String> launcher = cli.nodeLauncher() != null ? cli.nodeLauncher() : launcher();
    List<Node> started = new ArrayList<>();
    AtomicBoolean stopping = new AtomicBoolean();
    Thread hook =
        new Thread(
            () -> {
              stopping.set(true);
              out.println("stopping the cluster...");
              out.flush();
              stopAll(started, err);
            },
            "peerflash-local-cluster-stop");
    Runtime.getRuntime().addShutdownHook(hook);
    boolean hookPending = true;
    try {
      for (int i = 1; i <= nodes; i++) {
        Files.createDirectories(dir.resolve(id(i)));
        Path log = dir.resolve(id(i) + ".log");
        List<String> command = new ArrayList<>(launcher);
        command.addAll(nodeArgs(i));
        writeRestartScript(i, command, log);
        Process p =
            new ProcessBuilder(command)
                .redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()))
                .redirectInput(ProcessBuilder.Redirect.from(nullDevice()))
                .start();
        synchronized (started) {
          started.add(new Node(id(i), clientAddress(i), raftAddress(i), p, log));
        }
      }
      Files.writeString(dir.resolve("cluster.txt"), clusterFile(started), StandardCharsets.UTF_8);
      // Said before the wait, which takes a while (JVM start, Raft election, leases), so that
      // nobody calls a node that cannot answer yet; how to reach them follows once they serve.
      out.println(
          "started "
              + nodes
              + " node(s) in "
              + dir
              + " (logs: "
              + dir
              + "/n<i>.log); waiting until every node serves...");
      out.flush();
      if (!awaitReady(cli, started, err)) {
        stopAll(started, err);
        return PeerFlashCli.EXIT_FAILURE;
      }
      out.println(
          "NBD: "
              + (insecure ? "nbd" : "nbds")
              + "://127.0.0.1:"
              + nbdBasePort
              + "/VOLUME (n<i> on port "
              + nbdBasePort
              + "+i-1), or nbd+unix:///VOLUME?socket="
              + dir.resolve(id(1)).resolve("nbd.sock"));
      out.println("use: --target " + targets());
      out.println("  or: export PEERFLASH_TARGET=" + targets());
      if (insecure) {
        out.println("  and: export PEERFLASH_INSECURE=true   (plaintext: no authentication)");
      } else {
        out.println("  and: export PEERFLASH_CERTS=" + adminCerts() + "   (the admin client)");
      }
      if (httpBasePort != 0) {
        out.println(
            "status page: http://"
                + httpAddress(1)
                + "/ (metrics at /metrics; n<i> on port "
                + httpBasePort
                + "+i-1)");
      }
      out.println(
          "restart a node you stopped or killed: sh "
              + dir.resolve("n<i>.sh")
              + " (it appends to n<i>.log)");
      out.println("cluster ready; Ctrl-C stops it");
      out.flush();
      return watch(started, stopping, out, err);
    } catch (InterruptedException e) {
      // Stopped from within the JVM (tests): stop the nodes as Ctrl-C would.
      stopAll(started, err);
      Thread.currentThread().interrupt();
      return PeerFlashCli.EXIT_OK;
    } finally {
      try {
        hookPending = Runtime.getRuntime().removeShutdownHook(hook);
      } catch (IllegalStateException e) {
        hookPending = false; // The JVM is exiting and the hook is stopping the nodes.
      }
      if (hookPending) {
        stopAll(started, null);
      }
    }
  }

  private void validate() {
    if (nodes < 1 || nodes > MAX_NODES) {
      throw new ParameterException(
          spec.commandLine(), "--nodes must be between 1 and " + MAX_NODES + ", got " + nodes);
    }
    int[] bases =
        httpBasePort == 0
            ? new int[] {basePort, raftBasePort, nbdBasePort}
            : new int[] {basePort, raftBasePort, nbdBasePort, httpBasePort};
    for (int base : bases) {
      if (base < 1 || base + nodes - 1 > 65535) {
        throw new ParameterException(
            spec.commandLine(), "ports " + base + ".." + (base + nodes - 1) + " are out of range");
      }
    }
    for (int a = 0; a < bases.length; a++) {
      for (int b = a + 1; b < bases.length; b++) {
        if (Math.max(bases[a], bases[b]) <= Math.min(bases[a], bases[b]) + nodes - 1) {
          throw new ParameterException(
              spec.commandLine(),
              "--base-port, --raft-base-port, --nbd-base-port and --http-base-port ranges overlap");
        }
      }
    }
    for (int other : new int[] {basePort, raftBasePort}) {
      if (Math.max(other, nbdBasePort) <= Math.min(other, nbdBasePort) + nodes - 1) {
        throw new ParameterException(
            spec.commandLine(), "--nbd-base-port overlaps the client or Raft port range");
      }
    }
  }

  static String id(int i) {
    return "n" + i;
  }

  String clientAddress(int i) {
    return "127.0.0.1:" + (basePort + i - 1);
  }

  /** Node {@code i}'s HTTP address, or null with the HTTP ports off. */
  String httpAddress(int i) {
    return httpBasePort == 0 ? null : "127.0.0.1:" + (httpBasePort + i - 1);
  }

  String raftAddress(int i) {
    return "127.0.0.1:" + (raftBasePort + i - 1);
  }

  /** The --target list of the whole cluster. */
  String targets() {
    List<String> all = new ArrayList<>();
    for (int i = 1; i <= nodes; i++) {
      all.add(clientAddress(i));
    }
    return String.join(",", all);
  }

  /** {@code n1=127.0.0.1:7701,n2=...}: every node's Raft address. */
  String peers() {
    List<String> all = new ArrayList<>();
    for (int i = 1; i <= nodes; i++) {
      all.add(id(i) + "=" + raftAddress(i));
    }
    return String.join(",", all);
  }

  Path certsDir() {
    return dir.resolve("certs");
  }

  /** The admin client's identity directory local-cluster makes. */
  Path adminCerts() {
    return certsDir().resolve("admin");
  }

  /**
   * The cluster's CA (kept if it exists: earlier certificates stay valid), a certificate for each
   * node (for 127.0.0.1 and localhost) and an admin client, in DIR/certs; existing node and admin
   * certificates are kept.
   */
  private void makeCertificates() throws IOException {
    try {
      CertificateIssuer ca =
          CertsCommand.ensureCa(
              certsDir().resolve("ca"),
              null,
              Validity.days(CertificateIssuer.DEFAULT_CA_VALIDITY_DAYS));
      Validity v = Validity.days(CertificateIssuer.DEFAULT_VALIDITY_DAYS);
      for (int i = 1; i <= nodes; i++) {
        if (!Files.exists(certsDir().resolve(id(i)).resolve(TlsDirectory.SERVER_CERT_FILE))) {
          CertsCommand.issueNode(ca, certsDir(), id(i), List.of(), v);
        }
      }
      if (!Files.exists(adminCerts().resolve(TlsDirectory.CLIENT_CERT_FILE))) {
        CertsCommand.issueClient(
            ca, certsDir(), "admin", Identity.Role.ADMIN, List.of(), List.of(), false, v);
      }
    } catch (java.security.GeneralSecurityException e) {
      throw new IOException("cannot make certificates in " + certsDir() + ": " + e, e);
    }
  }

  /** The arguments of node {@code i} (1-based), from the {@code node} command on. */
  List<String> nodeArgs(int i) {
    List<String> args = new ArrayList<>();
    args.add("node");
    args.add("--id");
    args.add(id(i));
    args.add("--listen");
    args.add(clientAddress(i));
    args.add("--raft");
    args.add(raftAddress(i));
    args.add("--peers");
    args.add(peers());
    if (httpAddress(i) != null) {
      args.add("--http");
      args.add(httpAddress(i));
    }
    args.add("--nbd");
    args.add("127.0.0.1:" + (nbdBasePort + i - 1));
    args.add("--nbd-socket");
    args.add(dir.resolve(id(i)).resolve("nbd.sock").toString());
    args.add("--data-dir");
    args.add(dir.resolve(id(i)).toString());
    args.add("--shared-dir");
    args.add(dir.resolve("shared").toString());
    if (cacheSize != null) {
      args.add("--cache-size");
      args.add(Long.toString(cacheSize));
    }
    if (sync) {
      args.add("--sync");
    }
    if (logJson) {
      args.add("--log-json");
    }
    if (insecure) {
      args.add("--insecure");
    } else {
      args.add("--certs");
      args.add(certsDir().resolve(id(i)).toString());
    }
    if (settings != null) {
      for (java.util.Map.Entry<String, String> e : settings.entrySet()) {
        args.add("--set");
        args.add(e.getKey() + "=" + e.getValue());
      }
    }
    return args;
  }

  /**
   * How to start this program again: this JVM's java, with the same jar ({@code -jar}) or, when
   * running from class directories (IDE, tests), the same class path and main class.
   */
  static List<String> launcher() {
    return launcher(System.getenv("JDK_JAVA_OPTIONS"));
  }

  /**
   * The JVM options every node starts with: a G1 pause-time goal that fits the latency a node
   * promises. G1's default goal is 200 ms, and it sizes the young generation to use it: in a
   * sustained run of 4 KiB writes (QD32, 2 cores) a node's young pauses reached 65 ms, and writes
   * queued behind them took over 100 ms; with a 20 ms goal they stayed under 28 ms (mean 5-7 ms).
   * Left out when {@code JDK_JAVA_OPTIONS} sets its own goal, since options on the command line
   * would override it.
   */
  static List<String> nodeJvmOptions(String jdkJavaOptions) {
    if (jdkJavaOptions != null && jdkJavaOptions.contains("MaxGCPauseMillis")) {
      return List.of();
    }
    return List.of("-XX:MaxGCPauseMillis=20");
  }

  static List<String> launcher(String jdkJavaOptions) {
    String java =
        ProcessHandle.current()
            .info()
            .command()
            .orElse(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    List<String> head = new ArrayList<>();
    head.add(java);
    head.addAll(nodeJvmOptions(jdkJavaOptions));
    Path location;
    try {
      location =
          Path.of(PeerFlashCli.class.getProtectionDomain().getCodeSource().getLocation().toURI());
    } catch (URISyntaxException | NullPointerException e) {
      location = null;
    }
    if (location != null && Files.isRegularFile(location)) {
      head.addAll(List.of("-jar", location.toString()));
    } else {
      head.addAll(
          List.of("-cp", System.getProperty("java.class.path"), PeerFlashCli.class.getName()));
    }
    return List.copyOf(head);
  }

  static String clusterFile(List<Node> started) {
    StringBuilder b = new StringBuilder();
    for (Node n : started) {
      b.append(n.id())
          .append(' ')
          .append(n.process().pid())
          .append(' ')
          .append(n.address())
          .append(' ')
          .append(n.raftAddress())
          .append('\n');
    }
    return b.toString();
  }

  /** Waits until every node answers status; false (after saying why) when one exits or hangs. */
  private boolean awaitReady(PeerFlashCli cli, List<Node> started, PrintStream err)
      throws InterruptedException {
    long deadline = System.nanoTime() + READY_TIMEOUT.toNanos();
    List<Node> pending = new ArrayList<>(started);
    while (!pending.isEmpty()) {
      for (var it = pending.iterator(); it.hasNext(); ) {
        Node n = it.next();
        if (!n.process().isAlive()) {
          err.println(
              "error: node "
                  + n.id()
                  + " exited with code "
                  + n.process().exitValue()
                  + " before it was ready; last lines of "
                  + n.log()
                  + ":");
          err.println(tail(n.log()));
          err.flush();
          return false;
        }
        if (answers(cli, n.address())) {
          it.remove();
        }
      }
      if (pending.isEmpty()) {
        return true;
      }
      if (System.nanoTime() > deadline) {
        err.println(
            "error: node(s) "
                + pending.stream().map(Node::id).collect(Collectors.joining(", "))
                + " did not answer within "
                + READY_TIMEOUT.toSeconds()
                + " s; see their logs in "
                + dir);
        err.flush();
        return false;
      }
      Thread.sleep(200);
    }
    return true;
  }

  /**
   * Whether the node serves: it answers, and it is not fenced (in step with the map and holding a
   * valid lease), so that "ready" means a write sent now is served.
   */
  private static boolean answers(PeerFlashCli cli, String address) {
    try (PeerFlashClient c =
        cli.clientBuilder(address)
            .deadline(Duration.ofSeconds(2))
            .retryBudget(Duration.ZERO)
            .build()) {
      return c.status().getFencedReason().isEmpty();
    } catch (RuntimeException e) {
      return false;
    }
  }

  /** DIR/n<i>.sh: starts node {@code i} again as local-cluster did, appending to its log. */
  private void writeRestartScript(int i, List<String> command, Path log) throws IOException {
    StringBuilder sh = new StringBuilder("#!/bin/sh\n# Starts node ").append(id(i));
    sh.append(" of this local cluster again (its data and certificates stay in place).\n");
    sh.append("exec");
    for (String word : command) {
      sh.append(' ').append(shellQuote(word));
    }
    sh.append(" >>").append(shellQuote(log.toString())).append(" 2>&1 </dev/null\n");
    Path script = dir.resolve(id(i) + ".sh");
    Files.writeString(script, sh.toString(), StandardCharsets.UTF_8);
    script.toFile().setExecutable(true, true);
  }

  static String shellQuote(String word) {
    return "'" + word.replace("'", "'\\''") + "'";
  }

  /** Reports nodes that exit (e.g. killed to try failover) until all have; 1 if none is left. */
  private static int watch(
      List<Node> started, AtomicBoolean stopping, PrintStream out, PrintStream err)
      throws InterruptedException {
    List<Node> alive = new ArrayList<>(started);
    while (!alive.isEmpty()) {
      if (stopping.get()) {
        // Ctrl-C or SIGTERM: the shutdown hook is stopping the nodes; the JVM exits after it.
        Thread.sleep(Long.MAX_VALUE);
      }
      for (var it = alive.iterator(); it.hasNext(); ) {
        Node n = it.next();
        if (!n.process().isAlive()) {
          it.remove();
          out.println(
              "node "
                  + n.id()
                  + " (pid "
                  + n.process().pid()
                  + ") exited with code "
                  + n.process().exitValue());
          out.flush();
        }
      }
      Thread.sleep(500);
    }
    err.println("error: every node has exited");
    err.flush();
    return PeerFlashCli.EXIT_FAILURE;
  }

  /** SIGTERM to every node, then up to {@link #STOP_TIMEOUT} each before SIGKILL. */
  static void stopAll(List<Node> started, PrintStream err) {
    List<Node> all;
    synchronized (started) {
      all = new ArrayList<>(started);
    }
    for (Node n : all) {
      n.process().destroy();
    }
    boolean interrupted = Thread.interrupted();
    for (Node n : all) {
      try {
        if (!interrupted && !n.process().waitFor(STOP_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)) {
          if (err != null) {
            err.println("node " + n.id() + " did not stop within 15 s; killing it");
          }
          n.process().destroyForcibly();
        } else if (interrupted) {
          n.process().destroyForcibly();
        }
      } catch (InterruptedException e) {
        interrupted = true;
        n.process().destroyForcibly();
      }
    }
    if (interrupted) {
      Thread.currentThread().interrupt();
    }
  }

  static String tail(Path log) {
    try {
      List<String> lines = Files.readAllLines(log, StandardCharsets.UTF_8);
      return String.join(
          System.lineSeparator(),
          lines.subList(Math.max(0, lines.size() - LOG_TAIL_LINES), lines.size()));
    } catch (IOException e) {
      return "(cannot read " + log + ": " + Formats.describe(e) + ")";
    }
  }

  private static java.io.File nullDevice() {
    return new java.io.File(
        System.getProperty("os.name").toLowerCase(java.util.Locale.ROOT).startsWith("windows")
            ? "NUL"
            : "/dev/null");
  }
}
