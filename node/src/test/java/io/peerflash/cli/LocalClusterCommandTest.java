package io.peerflash.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.client.ClientSecurity;
import io.peerflash.client.PeerFlashClient;
import io.peerflash.security.Identity;
import io.peerflash.security.TlsDirectory;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

@Timeout(60)
class LocalClusterCommandTest {
  @TempDir Path tmp;

  private final ByteArrayOutputStream out = new ByteArrayOutputStream();
  private final ByteArrayOutputStream err = new ByteArrayOutputStream();

  /** A CLI whose connections follow local-cluster's own certificates (or --insecure). */
  private PeerFlashCli cli(List<String> launcher) {
    PeerFlashCli cli =
        new PeerFlashCli(
            null,
            new PrintStream(out, true, StandardCharsets.UTF_8),
            new PrintStream(err, true, StandardCharsets.UTF_8));
    cli.nodeLauncher(launcher);
    return cli;
  }

  private String out() {
    return out.toString(StandardCharsets.UTF_8);
  }

  private String err() {
    return err.toString(StandardCharsets.UTF_8);
  }

  private static List<String> fakeLauncher(String... jvmOptions) {
    List<String> l = new ArrayList<>();
    l.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    l.add("-Xmx64m");
    l.addAll(List.of(jvmOptions));
    l.add("-cp");
    l.add(System.getProperty("java.class.path"));
    l.add(FakeNodeMain.class.getName());
    return l;
  }

  /** A port p such that p and p+1 are free (for now). */
  private static int twoFreePorts() throws IOException {
    for (int attempt = 0; attempt < 50; attempt++) {
      int p;
      try (ServerSocket s = new ServerSocket(0)) {
        p = s.getLocalPort();
      }
      if (p >= 65535) {
        continue;
      }
      try (ServerSocket s = new ServerSocket(p + 1)) {
        return p;
      } catch (IOException e) {
        // Taken; try another.
      }
    }
    throw new IOException("no two consecutive free ports");
  }

  @Test
  void buildsEachNodesCommandLine() {
    LocalClusterCommand cmd = new LocalClusterCommand();
    new CommandLine(cmd)
        .parseArgs("--nodes", "3", "--dir", "/tmp/c", "--cache-size", "64MiB", "--sync");
    assertThat(cmd.nodeArgs(2))
        .containsExactly(
            "node",
            "--id",
            "n2",
            "--listen",
            "127.0.0.1:7602",
            "--raft",
            "127.0.0.1:7702",
            "--peers",
            "n1=127.0.0.1:7701,n2=127.0.0.1:7702,n3=127.0.0.1:7703",
            "--http",
            "127.0.0.1:7802",
            "--nbd",
            "127.0.0.1:10810",
            "--nbd-socket",
            Path.of("/tmp/c", "n2", "nbd.sock").toString(),
            "--data-dir",
            Path.of("/tmp/c", "n2").toString(),
            "--shared-dir",
            Path.of("/tmp/c", "shared").toString(),
            "--cache-size",
            Long.toString(64L << 20),
            "--sync",
            "--certs",
            Path.of("/tmp/c", "certs", "n2").toString());
    assertThat(cmd.targets()).isEqualTo("127.0.0.1:7601,127.0.0.1:7602,127.0.0.1:7603");

    LocalClusterCommand ports = new LocalClusterCommand();
    new CommandLine(ports)
        .parseArgs(
            "--nodes",
            "1",
            "--dir",
            "d",
            "--base-port",
            "9000",
            "--raft-base-port",
            "9100",
            "--nbd-base-port",
            "9200");
    assertThat(ports.nodeArgs(1))
        .containsSubsequence("--nbd", "127.0.0.1:9200")
        .containsSubsequence("--listen", "127.0.0.1:9000")
        .containsSubsequence("--raft", "127.0.0.1:9100", "--peers", "n1=127.0.0.1:9100")
        .containsSubsequence("--certs", Path.of("d", "certs", "n1").toString())
        .doesNotContain("--sync", "--cache-size", "--insecure");

    LocalClusterCommand noHttp = new LocalClusterCommand();
    new CommandLine(noHttp).parseArgs("--nodes", "1", "--dir", "d", "--http-base-port", "0");
    assertThat(noHttp.nodeArgs(1)).doesNotContain("--http");

    LocalClusterCommand plaintext = new LocalClusterCommand();
    new CommandLine(plaintext).parseArgs("--nodes", "2", "--dir", "d", "--insecure");
    assertThat(plaintext.nodeArgs(2)).contains("--insecure").doesNotContain("--certs");
  }

  @Test
  void everyArgumentItPassesIsAnOptionOfTheNodeCommand() {
    LocalClusterCommand cmd = new LocalClusterCommand();
    new CommandLine(cmd).parseArgs("--nodes", "3", "--dir", "/tmp/c", "--sync", "--insecure");
    List<String> args = cmd.nodeArgs(3);
    // The node command parses them all (an option it lacks fails here, not in a node's log).
    new CommandLine(new NodeCommand())
        .parseArgs(args.subList(1, args.size()).toArray(String[]::new));
  }

  @Test
  void restartScriptsQuoteForTheShell() {
    assertThat(LocalClusterCommand.shellQuote("/tmp/a b")).isEqualTo("'/tmp/a b'");
    assertThat(LocalClusterCommand.shellQuote("it's")).isEqualTo("'it'\\''s'");
  }

  @Test
  void launcherRerunsThisProgramWithThisJava() {
    List<String> l = LocalClusterCommand.launcher();
    assertThat(Path.of(l.get(0)).getFileName().toString()).startsWith("java");
    // Tests run from class directories, so the class path and main class are passed.
    assertThat(l).containsSubsequence("-cp", System.getProperty("java.class.path"));
    assertThat(l.get(l.size() - 1)).isEqualTo(PeerFlashCli.class.getName());
  }

  @Test
  void nodesStartWithAPauseGoalUnlessTheUserSetsOne() {
    assertThat(LocalClusterCommand.launcher(null)).contains("-XX:MaxGCPauseMillis=20");
    assertThat(LocalClusterCommand.launcher("-Xmx1g")).contains("-XX:MaxGCPauseMillis=20");
    assertThat(LocalClusterCommand.launcher("-XX:MaxGCPauseMillis=50"))
        .noneMatch(o -> o.contains("MaxGCPauseMillis"));
  }

  @Test
  void rejectsBadNodeCountsAndPorts() {
    PeerFlashCli cli = cli(null);
    String dir = tmp.toString();
    assertThat(cli.execute("local-cluster", "--nodes", "0", "--dir", dir)).isEqualTo(2);
    assertThat(err()).contains("--nodes must be between 1 and 9");
    assertThat(cli.execute("local-cluster", "--nodes", "10", "--dir", dir)).isEqualTo(2);
    assertThat(
            cli.execute("local-cluster", "--nodes", "3", "--dir", dir, "--raft-base-port", "7603"))
        .isEqualTo(2);
    assertThat(err()).contains("overlap");
    assertThat(cli.execute("local-cluster", "--nodes", "3", "--dir", dir, "--base-port", "65534"))
        .isEqualTo(2);
    assertThat(tmp.resolve("cluster.txt")).doesNotExist();
  }

  @Test
  void aNodeExitingEarlyStopsTheOthersAndShowsItsLog() throws Exception {
    int base = twoFreePorts();
    int code =
        cli(fakeLauncher("-Dfakenode.exit=3"))
            .execute(
                "local-cluster",
                "--nodes",
                "2",
                "--dir",
                tmp.toString(),
                "--base-port",
                Integer.toString(base),
                "--raft-base-port",
                Integer.toString(base + 100));
    assertThat(code).as(err()).isEqualTo(1);
    assertThat(err()).contains("exited with code 3 before it was ready").contains("--raft");
    List<String> lines = Files.readAllLines(tmp.resolve("cluster.txt"));
    assertThat(lines).hasSize(2);
    assertThat(lines.get(0)).matches("n1 \\d+ 127\\.0\\.0\\.1:" + base + " 127\\.0\\.0\\.1:\\d+");
    // The node that exited first wrote its log (the other may be stopped before it starts).
    java.util.regex.Matcher exited =
        java.util.regex.Pattern.compile("(n[12]) exited with code 3").matcher(err());
    assertThat(exited.find()).as(err()).isTrue();
    int index = Integer.parseInt(exited.group(1).substring(1)) - 1;
    assertThat(Files.readString(tmp.resolve(exited.group(1) + ".log")))
        .contains(
            "fake node args: node --id "
                + exited.group(1)
                + " --listen 127.0.0.1:"
                + (base + index));
    assertThat(tmp.resolve("n1")).isDirectory();
    assertThat(tmp.resolve("shared")).isDirectory();
    for (String line : lines) {
      long pid = Long.parseLong(line.split(" ")[1]);
      assertThat(ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false)).isFalse();
    }
  }

  /**
   * DIR/certs as local-cluster leaves it: the CA (its key only under ca/), one node directory per
   * node and an admin client; keys readable by the owner only.
   */
  private static void assertCertificates(Path certs, int nodes) throws Exception {
    Set<PosixFilePermission> ownerOnly = PosixFilePermissions.fromString("rw-------");
    assertThat(certs.resolve("ca").resolve(TlsDirectory.CA_CERT_FILE)).isRegularFile();
    assertThat(Files.getPosixFilePermissions(certs.resolve("ca").resolve(TlsDirectory.CA_KEY_FILE)))
        .isEqualTo(ownerOnly);
    List<String> names = new ArrayList<>();
    try (var dirs = Files.list(certs)) {
      dirs.forEach(d -> names.add(d.getFileName().toString()));
    }
    List<String> expected = new ArrayList<>(List.of("ca", "admin"));
    for (int i = 1; i <= nodes; i++) {
      expected.add("n" + i);
    }
    assertThat(names).containsExactlyInAnyOrderElementsOf(expected);
    for (String name : expected) {
      Path d = certs.resolve(name);
      if (!name.equals("ca")) {
        assertThat(d.resolve(TlsDirectory.CA_KEY_FILE)).as("CA key in " + d).doesNotExist();
        assertThat(d.resolve(TlsDirectory.CA_CERT_FILE)).isRegularFile();
        assertThat(Files.getPosixFilePermissions(d.resolve(TlsDirectory.CLIENT_KEY_FILE)))
            .isEqualTo(ownerOnly);
      }
      if (name.startsWith("n")) {
        assertThat(Files.getPosixFilePermissions(d.resolve(TlsDirectory.SERVER_KEY_FILE)))
            .isEqualTo(ownerOnly);
        Identity node = TlsDirectory.open(d).identity();
        assertThat(node.kind()).isEqualTo(Identity.Kind.NODE);
        assertThat(node.name()).isEqualTo(name);
      }
    }
    TlsDirectory admin = TlsDirectory.open(certs.resolve("admin"));
    assertThat(admin.isNode()).isFalse();
    assertThat(admin.identity().role()).isEqualTo(Identity.Role.ADMIN);
    assertThat(admin.identity().volumeNames()).isEmpty();
    assertThat(admin.identity().volumePrefixes()).isEmpty();
  }

  @Test
  void insecureStartsPlaintextNodesAndSaysSo() throws Exception {
    int base = twoFreePorts();
    PeerFlashCli cli = cli(fakeLauncher());
    AtomicInteger code = new AtomicInteger(-1);
    Thread runner =
        new Thread(
            () ->
                code.set(
                    cli.execute(
                        "local-cluster",
                        "--nodes",
                        "2",
                        "--dir",
                        tmp.toString(),
                        "--base-port",
                        Integer.toString(base),
                        "--raft-base-port",
                        Integer.toString(base + 100),
                        "--insecure")),
            "test-local-cluster");
    runner.start();
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(45);
    while (!out().contains("cluster ready")) {
      assertThat(runner.isAlive()).as(out() + err()).isTrue();
      assertThat(System.nanoTime()).as("cluster ready in time").isLessThan(deadline);
      Thread.sleep(50);
    }
    assertThat(out()).contains("export PEERFLASH_INSECURE=true").doesNotContain("PEERFLASH_CERTS");
    assertThat(tmp.resolve("certs")).doesNotExist();
    for (int i = 1; i <= 2; i++) {
      assertThat(Files.readString(tmp.resolve("n" + i + ".log")))
          .contains(" --insecure")
          .doesNotContain("--certs");
    }
    String targets = "127.0.0.1:" + base + ",127.0.0.1:" + (base + 1);
    try (PeerFlashClient c =
        PeerFlashClient.builder()
            .target(targets)
            .security(ClientSecurity.insecure())
            .deadline(Duration.ofSeconds(5))
            .build()) {
      assertThat(c.status().getNodeId()).isEqualTo("fake-node");
    }
    runner.interrupt();
    runner.join(30_000);
    assertThat(runner.isAlive()).isFalse();
    assertThat(code.get()).isZero();
  }

  /**
   * Runs local-cluster with {@code nodes} nodes on a thread of its own (its exit code into {@code
   * code}) and returns that thread once the cluster says it is ready.
   */
  private Thread startUntilReady(PeerFlashCli cli, int nodes, int base, AtomicInteger code)
      throws InterruptedException {
    Thread runner = start(cli, nodes, base, code);
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(45);
    while (!out().contains("cluster ready")) {
      assertThat(runner.isAlive()).as(out() + err()).isTrue();
      assertThat(System.nanoTime()).as("cluster ready in time").isLessThan(deadline);
      Thread.sleep(20);
    }
    return runner;
  }

  /** Runs local-cluster with {@code nodes} nodes on a thread of its own, started. */
  private Thread start(PeerFlashCli cli, int nodes, int base, AtomicInteger code) {
    Thread runner =
        new Thread(
            () ->
                code.set(
                    cli.execute(
                        "local-cluster",
                        "--nodes",
                        Integer.toString(nodes),
                        "--dir",
                        tmp.toString(),
                        "--base-port",
                        Integer.toString(base),
                        "--raft-base-port",
                        Integer.toString(base + 100))),
            "test-local-cluster");
    runner.start();
    return runner;
  }

  @Test
  void readyOnlyOnceEveryNodeServesNotWhenItFirstAnswersFenced() throws Exception {
    int base = twoFreePorts();
    PeerFlashCli cli = cli(fakeLauncher("-Dfakenode.fencedStatusCalls=3"));
    AtomicInteger code = new AtomicInteger(-1);
    Thread runner = start(cli, 1, base, code);
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(45);
    while (!out().contains("use: --target")) {
      assertThat(runner.isAlive()).as(out() + err()).isTrue();
      assertThat(System.nanoTime()).as("connection hints in time").isLessThan(deadline);
      Thread.sleep(2);
    }
    // How to reach the nodes is printed only once they serve: a user who acts on it at once is
    // not refused.
    assertThat(Files.readString(tmp.resolve("n1.log")))
        .as("the node's log when local-cluster printed how to reach it")
        .contains("fake node: serving after 3 fenced status answers");
    assertThat(out()).contains("waiting until every node serves");
    while (!out().contains("cluster ready")) {
      assertThat(System.nanoTime()).as("cluster ready in time").isLessThan(deadline);
      Thread.sleep(20);
    }
    // The node said it was fenced three times; "ready" came only after it said it serves.
    assertThat(Files.readString(tmp.resolve("n1.log")))
        .contains("fake node: serving after 3 fenced status answers");
    runner.interrupt();
    runner.join(30_000);
    assertThat(runner.isAlive()).isFalse();
    assertThat(code.get()).isZero();
  }

  @Test
  void startsWaitsUntilReadyAndStopsEveryNode() throws Exception {
    int base = twoFreePorts();
    PeerFlashCli cli = cli(fakeLauncher());
    AtomicInteger code = new AtomicInteger(-1);
    Thread runner = startUntilReady(cli, 2, base, code);
    String targets = "127.0.0.1:" + base + ",127.0.0.1:" + (base + 1);
    Path certs = tmp.resolve("certs");
    assertThat(out())
        .contains("--target " + targets)
        .contains("export PEERFLASH_CERTS=" + certs.resolve("admin"))
        .doesNotContain("PEERFLASH_INSECURE");
    List<String> lines = Files.readAllLines(tmp.resolve("cluster.txt"));
    assertThat(lines).hasSize(2);
    assertThat(out())
        .contains("restart a node you stopped or killed: sh " + tmp.resolve("n<i>.sh"));
    assertThat(Files.readString(tmp.resolve("n2.sh")))
        .startsWith("#!/bin/sh")
        .contains("'--id' 'n2'")
        .contains(" >>'" + tmp.resolve("n2.log") + "' 2>&1");
    // Each node got its own identity directory.
    for (int i = 1; i <= 2; i++) {
      assertThat(Files.readString(tmp.resolve("n" + i + ".log")))
          .contains(" --certs " + certs.resolve("n" + i))
          .doesNotContain("--insecure");
    }
    assertCertificates(certs, 2);
    // The fake nodes serve mutual TLS: the admin directory local-cluster printed gets through.
    try (PeerFlashClient c =
        PeerFlashClient.builder()
            .target(targets)
            .security(ClientSecurity.certs(certs.resolve("admin")))
            .deadline(Duration.ofSeconds(5))
            .build()) {
      assertThat(c.status().getNodeId()).isEqualTo("fake-node");
    }

    runner.interrupt(); // As Ctrl-C would, minus the JVM exit.
    runner.join(30_000);
    assertThat(runner.isAlive()).isFalse();
    assertThat(code.get()).isZero();
    for (String line : lines) {
      long pid = Long.parseLong(line.split(" ")[1]);
      assertThat(ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false)).isFalse();
    }
  }
}
