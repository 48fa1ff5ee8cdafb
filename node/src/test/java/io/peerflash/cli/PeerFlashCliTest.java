package io.peerflash.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.Server;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.peerflash.client.FakeVolumeService;
import io.peerflash.node.NodeConfig;
import io.peerflash.node.PeerFlashNode;
import io.peerflash.security.Identity;
import io.peerflash.security.TlsDirectory;
import io.peerflash.testing.TestCertificates;
import io.peerflash.testing.TestPorts;
import io.peerflash.util.Sizes;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.IllegalFormatException;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

class PeerFlashCliTest {
  private final FakeVolumeService fake = new FakeVolumeService();
  private Server server;
  private String serverName;
  private ByteArrayOutputStream out;
  private ByteArrayOutputStream err;

  @TempDir Path tmp;

  @BeforeEach
  void start() throws Exception {
    serverName = InProcessServerBuilder.generateName();
    server =
        InProcessServerBuilder.forName(serverName)
            .addService(fake)
            .addService(fake.nodeService)
            .build()
            .start();
  }

  @AfterEach
  void stop() throws Exception {
    server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
  }

  /** Runs the CLI against the in-process fake, whatever --target says. */
  private int run(String... args) {
    out = new ByteArrayOutputStream();
    err = new ByteArrayOutputStream();
    PeerFlashCli cli =
        new PeerFlashCli(
            target -> InProcessChannelBuilder.forName(serverName).build(),
            new PrintStream(out, true, StandardCharsets.UTF_8),
            new PrintStream(err, true, StandardCharsets.UTF_8));
    return cli.execute(args);
  }

  /** Runs the CLI with the channels its own --certs or --insecure make, as the program does. */
  private int runReal(String... args) {
    out = new ByteArrayOutputStream();
    err = new ByteArrayOutputStream();
    return new PeerFlashCli(
            null,
            new PrintStream(out, true, StandardCharsets.UTF_8),
            new PrintStream(err, true, StandardCharsets.UTF_8))
        .execute(args);
  }

  private static String adminCerts() {
    return TestCertificates.shared().admin().toString();
  }

  private String out() {
    return out.toString(StandardCharsets.UTF_8);
  }

  private String err() {
    return err.toString(StandardCharsets.UTF_8);
  }

  @Test
  void volumeCreateListStatSetPolicyDelete() {
    assertThat(run("volume", "create", "vol1", "--size", "8MiB", "--mode", "write-through"))
        .isZero();
    assertThat(out()).contains("created volume vol1: 8.0 MiB, write-through, 0 replicas");
    assertThat(run("volume", "create", "vol2", "--size", "4096", "--replicas", "2")).isZero();

    assertThat(run("volume", "list")).isZero();
    String[] lines = out().split("\n");
    assertThat(lines[0]).startsWith("NAME").contains("SIZE", "MODE", "REPLICAS", "STATE", "DIRTY");
    assertThat(lines[1]).contains("vol1", "8.0 MiB", "write-through", "HEALTHY");
    assertThat(lines[2]).contains("vol2", "4.0 KiB", "write-back", "2");

    assertThat(run("volume", "stat", "vol1")).isZero();
    assertThat(out()).contains("size:", "8.0 MiB (8388608 B)", "mode:", "corrupt blocks:");

    // Only the mode changes; the replica count is read back and kept.
    assertThat(run("volume", "set-policy", "vol2", "--mode", "WRITE_AROUND")).isZero();
    assertThat(out()).contains("volume vol2: write-around, 2 replicas");

    assertThat(run("volume", "delete", "vol1")).isZero();
    assertThat(run("volume", "list")).isZero();
    assertThat(out()).doesNotContain("vol1");
  }

  @Test
  void writeAndReadRoundTripThroughChunksAndTheWriteStream() throws Exception {
    assertThat(run("volume", "create", "v", "--size", "8MiB")).isZero();
    byte[] data = new byte[(int) (3 * Sizes.MIB + 512)];
    new Random(42).nextBytes(data);
    Path in = tmp.resolve("in.bin");
    Files.write(in, data);

    assertThat(run("write", "v", "--offset", "4KiB", "--in", in.toString())).as(err()).isZero();
    assertThat(out()).contains("wrote 3.0 MiB to v at offset 4096");
    // The first chunk goes as a unary write (it finds the volume's owner), the rest are streamed.
    assertThat(fake.streamedWrites.get()).as("1 MiB chunks over WriteStream").isEqualTo(3);
    byte[] stored = fake.contents("v");
    assertThat(java.util.Arrays.copyOfRange(stored, 4096, 4096 + data.length)).isEqualTo(data);

    Path back = tmp.resolve("back.bin");
    int reads = fake.reads.get();
    assertThat(
            run(
                "read",
                "v",
                "--offset",
                "4k",
                "--length",
                String.valueOf(data.length),
                "--out",
                back.toString()))
        .as(err())
        .isZero();
    assertThat(fake.reads.get() - reads).as("1 MiB reads").isEqualTo(4);
    assertThat(Files.readAllBytes(back)).isEqualTo(data);
  }

  @Test
  void smallWriteIsOneUnaryCallAndReadCanGoToStdout() throws Exception {
    assertThat(run("volume", "create", "v", "--size", "1MiB")).isZero();
    byte[] data = new byte[8192];
    new Random(7).nextBytes(data);
    Path in = tmp.resolve("small.bin");
    Files.write(in, data);
    assertThat(run("write", "v", "--offset", "0", "--in", in.toString())).isZero();
    assertThat(fake.streamedWrites.get()).isZero();

    assertThat(run("read", "v", "--offset", "0", "--length", "8KiB", "--out", "-")).isZero();
    assertThat(out.toByteArray()).isEqualTo(data);
    assertThat(err()).isEmpty();
    out.reset();
    // Without --out the data goes to stdout too.
    assertThat(run("read", "v", "--offset", "0", "--length", "8KiB")).isZero();
    assertThat(out.toByteArray()).isEqualTo(data);
    assertThat(err()).isEmpty();

    assertThat(run("trim", "v", "--offset", "0", "--length", "4KiB")).isZero();
    assertThat(java.util.Arrays.copyOf(fake.contents("v"), 4096)).containsOnly(0);
  }

  @Test
  void sizeOptionsAcceptUnitsAndRejectNonsense() {
    Converters.SizeConverter sizes = new Converters.SizeConverter();
    assertThat(sizes.convert("4096")).isEqualTo(4096);
    assertThat(sizes.convert("4KiB")).isEqualTo(4096);
    assertThat(sizes.convert("1m")).isEqualTo(Sizes.MIB);
    assertThat(run("volume", "create", "v", "--size", "12XB")).isEqualTo(2);
    assertThat(err()).contains("--size").contains("unknown size unit");
    // One rule for units, fractions allowed; a size that is no multiple of 4 KiB is refused here
    // with the nearest valid sizes, not by the node with a protocol field's name.
    assertThat(sizes.convert("1.5GiB")).isEqualTo(1536 * Sizes.MIB);
    assertThat(sizes.convert("1GB")).isEqualTo(Sizes.GIB);
    assertThat(run("volume", "create", "v", "--size", "1000000")).isEqualTo(2);
    assertThat(err()).contains("nearest valid sizes are 999424 and 1003520");
    assertThat(run("volume", "create", "v", "--size", "1000")).isEqualTo(2);
    assertThat(err()).contains("the smallest valid size is 4096");
    assertThat(run("trim", "v", "--offset", "99999999999999999999", "--length", "512"))
        .isEqualTo(2);
  }

  @Test
  void usageErrorsExitWithTwo() {
    assertThat(run()).isEqualTo(2);
    assertThat(run("frobnicate")).isEqualTo(2);
    assertThat(run("volume")).isEqualTo(2);
    assertThat(run("volume", "create", "v")).isEqualTo(2);
    assertThat(err()).contains("Missing required option: '--size=SIZE'");
    assertThat(run("volume", "create", "v", "--size", "1MiB", "--mode", "write-sideways"))
        .isEqualTo(2);
    assertThat(err()).contains("unknown mode 'write-sideways'");
    assertThat(run("volume", "create", "v", "--size", "1MiB", "--replicas", "-1")).isEqualTo(2);
    assertThat(run("volume", "set-policy", "v")).isEqualTo(2);
    assertThat(err()).contains("nothing to change");
    assertThat(run("trim", "v", "--offset", "100", "--length", "512")).isEqualTo(2);
    assertThat(err()).contains("--offset must be a multiple of 512");
    assertThat(run("status", "--target", "no-port:")).isEqualTo(2);
  }

  @Test
  void certsIssueRevokeAndListIdentityDirectories() throws Exception {
    String dir = tmp.resolve("certs").toString();
    assertThat(run("certs", "init", "--dir", dir, "--cluster-name", "test")).isZero();
    assertThat(out())
        .startsWith("created the CA in " + tmp.resolve("certs/ca") + " (valid until ")
        .endsWith("); keep ca-key.pem there, off the nodes" + System.lineSeparator());
    assertThat(run("certs", "init", "--dir", dir)).isEqualTo(2);
    assertThat(err()).contains("already holds a CA; a new one would invalidate every certificate");

    assertThat(run("certs", "node", "--dir", dir, "--id", "n1", "--host", "node1.example"))
        .isZero();
    assertThat(out())
        .isEqualTo("issued node n1 in " + tmp.resolve("certs/n1") + System.lineSeparator());
    assertThat(
            run(
                "certs",
                "client",
                "--dir",
                dir,
                "--name",
                "alice",
                "--role",
                "io",
                "--volume",
                "v1",
                "--data-read-only"))
        .isZero();
    assertThat(out())
        .isEqualTo(
            "issued client alice (io) in " + tmp.resolve("certs/alice") + System.lineSeparator());
    Identity alice = TlsDirectory.open(tmp.resolve("certs/alice")).identity();
    assertThat(alice.role()).isEqualTo(Identity.Role.IO);

    assertThat(run("certs", "revoke", "--dir", dir, "--serial", alice.serialHex())).isZero();
    assertThat(out())
        .startsWith("revoked serial ")
        .endsWith(" in 1 node directories" + System.lineSeparator());
    assertThat(TlsDirectory.open(tmp.resolve("certs/n1")).revokedSerials()).hasSize(1);
    assertThat(run("certs", "revoke", "--dir", dir, "--serial", "zz")).isEqualTo(2);
    assertThat(err()).contains("--serial is not hexadecimal: zz");

    assertThat(run("certs", "list", "--dir", dir)).isZero();
    assertThat(out()).contains("alice", "client", alice.serialHex(), "n1", "node");

    assertThat(run("certs", "list", "--dir", dir, "-o", "json")).as(err()).isZero();
    assertThat(out())
        .startsWith("{\n  \"identities\": [\n")
        .contains(
            "{\"name\": \"alice\", \"kind\": \"client\", \"role\": \"io\", \"serial\": \""
                + alice.serialHex()
                + "\", \"not_after\": \"")
        .contains("\"expiry_warning\": \"\"")
        .contains("{\"name\": \"n1\", \"kind\": \"node\"");
    assertThat(run("certs", "list", "--dir", tmp.resolve("none").toString(), "-o", "json"))
        .isZero();
    assertThat(out().strip()).isEqualTo("{\n  \"identities\": []\n}");
  }

  @Test
  void certificateValuesTheCaRefusesAreUsageErrorsForNodesAsForClients() {
    String dir = tmp.resolve("certs").toString();
    assertThat(run("certs", "init", "--dir", dir)).isZero();
    assertThat(run("certs", "client", "--dir", dir, "--name", "a", "--role", "root")).isEqualTo(2);
    assertThat(err()).contains("error: --role: ");
    assertThat(
            run("certs", "client", "--dir", dir, "--name", "a", "--role", "admin", "--volume", "v"))
        .isEqualTo(2);
    assertThat(err())
        .contains("error: volume scope and data read-only are for role io only, not admin");
    assertThat(
            run("certs", "client", "--dir", dir, "--name", "a", "--role", "admin", "--days", "0"))
        .isEqualTo(2);
    assertThat(err()).contains("error: validity must be at least 1 day, got 0");

    assertThat(run("certs", "node", "--dir", dir, "--id", "n1", "--host", "not a host"))
        .isEqualTo(2);
    assertThat(err())
        .contains("error: host 'not a host' is neither an IP address nor a DNS name")
        .contains("Try 'peerflash certs node --help' for usage.");
    assertThat(run("certs", "node", "--dir", dir, "--id", "n1", "--days", "0")).isEqualTo(2);
    assertThat(err()).contains("error: validity must be at least 1 day, got 0");
    assertThat(tmp.resolve("certs/n1")).doesNotExist();

    String other = tmp.resolve("other").toString();
    assertThat(run("certs", "init", "--dir", other, "--days", "0")).isEqualTo(2);
    assertThat(err())
        .contains("error: validity must be at least 1 day, got 0")
        .contains("Try 'peerflash certs init --help' for usage.");
    assertThat(tmp.resolve("other/ca/ca-key.pem")).doesNotExist();
  }

  @Test
  void serverErrorsPrintCodeAndDescriptionAndExitWithOne() {
    assertThat(run("volume", "stat", "ghost")).isEqualTo(1);
    assertThat(err()).isEqualTo("error: NOT_FOUND: no volume named ghost" + System.lineSeparator());
    assertThat(run("volume", "create", "v", "--size", "1MiB")).isEqualTo(0);
    assertThat(run("volume", "create", "v", "--size", "1MiB")).isEqualTo(1);
    assertThat(err()).startsWith("error: ALREADY_EXISTS: ");
  }

  @Test
  void localFileErrorsAreOneLine() {
    assertThat(run("write", "v", "--offset", "0", "--in", tmp.resolve("nope").toString()))
        .isEqualTo(1);
    assertThat(err().strip()).isEqualTo("error: no such file: " + tmp.resolve("nope"));
  }

  @Test
  void unreachableTargetIsNamed() throws Exception {
    int port;
    port = TestPorts.free();
    out = new ByteArrayOutputStream();
    err = new ByteArrayOutputStream();
    int code =
        new PeerFlashCli(
                null,
                new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8))
            .execute("status", "--target", "127.0.0.1:" + port, "--certs", adminCerts());
    assertThat(code).isEqualTo(1);
    assertThat(err()).startsWith("error: cannot reach peerflash node at 127.0.0.1:" + port);
    assertThat(err().lines()).hasSize(1);
  }

  @Test
  void clientCommandsNeedCertificatesOrAnExplicitInsecure() {
    String target = "127.0.0.1:" + TestPorts.free();
    assertThat(runReal("status", "--target", target)).isEqualTo(2);
    assertThat(err())
        .contains("no client certificate: give --certs DIR")
        .contains("PEERFLASH_CERTS")
        .contains("--insecure");
    assertThat(runReal("status", "--target", target, "--certs", adminCerts(), "--insecure"))
        .isEqualTo(2);
    assertThat(err()).contains("give --certs or --insecure, not both");
    // Plaintext is never silent: the command says what it gives up before it connects.
    assertThat(runReal("status", "--target", target, "--insecure")).isEqualTo(1);
    assertThat(err())
        .startsWith(
            "warning: --insecure: plaintext, the node is not authenticated and anyone on the"
                + " network can read and change what this command sends and receives\n")
        .contains("cannot reach peerflash node at " + target);
    Path missing = tmp.resolve("no-such-identity");
    assertThat(runReal("status", "--target", target, "--certs", missing.toString())).isEqualTo(2);
    assertThat(err()).contains("--certs: ").contains(missing.toString());
  }

  /** The CLI against a real node over mutual TLS: what it may do is what its certificate says. */
  @Test
  void commandsReachARealNodeOverTlsAsTheirCertificateAllows() throws Exception {
    TestCertificates certs = TestCertificates.shared();
    int port = TestPorts.free();
    String target = "127.0.0.1:" + port;
    try (PeerFlashNode node =
        PeerFlashNode.start(
            NodeConfig.fromMap(
                Map.of(
                    "id",
                    "n1",
                    "listen",
                    target,
                    "data-dir",
                    tmp.resolve("n1").toString(),
                    "shared-dir",
                    tmp.resolve("shared").toString(),
                    "cache-size",
                    "8MiB",
                    "certs",
                    certs.node("n1").toString())))) {
      assertThat(
              runReal(
                  "volume",
                  "create",
                  "v",
                  "--size",
                  "1MiB",
                  "--target",
                  target,
                  "--certs",
                  adminCerts()))
          .as(err())
          .isZero();
      assertThat(out()).contains("created volume v");

      String readOnly = certs.client("cli-read-only", Identity.Role.READ_ONLY).toString();
      assertThat(runReal("volume", "list", "--target", target, "--certs", readOnly))
          .as(err())
          .isZero();
      assertThat(out()).contains("v ");
      assertThat(runReal("volume", "delete", "v", "--target", target, "--certs", readOnly))
          .isEqualTo(1);
      assertThat(err())
          .startsWith("error: PERMISSION_DENIED: ")
          .contains("cli-read-only")
          .contains("admin role");

      // A plaintext client gets nowhere with a node that requires TLS.
      assertThat(runReal("volume", "delete", "v", "--target", target, "--insecure")).isEqualTo(1);
      assertThat(runReal("volume", "stat", "v", "--target", target, "--certs", adminCerts()))
          .as(err())
          .isZero();
    }
  }

  @Test
  void targetTakesACommaSeparatedList() {
    assertThat(run("status", "--target", "127.0.0.1:7601, 127.0.0.1:7602,127.0.0.1:7603")).isZero();
    assertThat(out()).contains("fake-node");
    assertThat(run("status", "--target", "127.0.0.1:7601,nohost:")).isEqualTo(2);
    assertThat(err()).contains("--target must be HOST[:PORT]").contains("'nohost:'");
    assertThat(run("status", "--target", " , ")).isEqualTo(2);
    assertThat(err()).contains("no target given");
  }

  @Test
  void unreachableTargetListIsNamed() throws Exception {
    int[] ports = new int[2];
    for (int i = 0; i < 2; i++) {
      try (ServerSocket s = new ServerSocket(0)) {
        ports[i] = s.getLocalPort();
      }
    }
    String targets = "127.0.0.1:" + ports[0] + ",127.0.0.1:" + ports[1];
    out = new ByteArrayOutputStream();
    err = new ByteArrayOutputStream();
    int code =
        new PeerFlashCli(
                null,
                new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8))
            .execute("volume", "list", "--target", targets, "--certs", adminCerts());
    assertThat(code).isEqualTo(1);
    assertThat(err())
        .startsWith(
            "error: cannot reach any peerflash node of " + targets + ": connection refused");
    assertThat(err().lines()).hasSize(1);
  }

  @Test
  void statusShowsTheNodeAndItsVolumes() {
    assertThat(run("volume", "create", "v", "--size", "1MiB")).isZero();
    assertThat(run("status")).isZero();
    assertThat(out()).contains("fake-node", "75.0%", "VOLUME", "OLDEST DIRTY");
    assertThat(out().lines().filter(l -> l.startsWith("v "))).hasSize(1);
  }

  @Test
  void slowFlushShowsProgressThenTheResult() throws Exception {
    assertThat(run("volume", "create", "v", "--size", "1MiB")).isZero();
    Path in = tmp.resolve("in.bin");
    Files.write(in, new byte[65536]);
    assertThat(run("write", "v", "--offset", "0", "--in", in.toString())).isZero();
    fake.flushDelayMs = 800;
    assertThat(run("flush", "v")).as(err()).isZero();
    assertThat(err()).contains("[..........] 0% 64.0 KiB left").contains("[##########] 100%");
    assertThat(out()).contains("flushed v: destaged 64.0 KiB in").doesNotContain("nothing left");
  }

  @Test
  void quickFlushShowsNoProgress() {
    assertThat(run("volume", "create", "v", "--size", "1MiB")).isZero();
    assertThat(run("flush", "v")).isZero();
    assertThat(err()).isEmpty();
    assertThat(out())
        .contains("flushed v: destaged 0 B in")
        .contains("nothing left for it to write: shared storage holds every acknowledged write");

    assertThat(run("flush", "v", "-o", "json")).as(err()).isZero();
    assertThat(out().strip()).startsWith("{").contains("\"destaged_bytes\": \"0\"").endsWith("}");
  }

  @Test
  void progressLine() {
    assertThat(FlushCommand.progressLine(100 * Sizes.MIB, 52 * Sizes.MIB))
        .isEqualTo("[#####.....] 48% 52.0 MiB left");
    assertThat(FlushCommand.progressLine(100, 0)).isEqualTo("[##########] 100% 0 B left");
    // More dirty data than at the start (new writes) shows as no progress, not negative.
    assertThat(FlushCommand.progressLine(100, 150)).isEqualTo("[..........] 0% 150 B left");
    assertThat(FlushCommand.progressLine(0, 0)).startsWith("[##########] 100%");
  }

  @Test
  void nodeSettingsLayerFileThenSetThenFlags() throws Exception {
    Path file = tmp.resolve("node.properties");
    Files.writeString(file, "id=from-file\ncache-size=64MiB\nrpc-threads=4\ndata-dir=/file/data\n");
    NodeCommand node = new NodeCommand();
    new CommandLine(node)
        .parseArgs(
            "--config",
            file.toString(),
            "--set",
            "rpc-threads=8",
            "--set",
            "id=from-set",
            "--id",
            "from-flag",
            "--shared-dir",
            "/shared",
            "--certs",
            "/etc/peerflash/n1",
            "--sync");
    Map<String, String> settings = node.settings();
    assertThat(settings)
        .containsEntry("id", "from-flag")
        .containsEntry("cache-size", "64MiB")
        .containsEntry("rpc-threads", "8")
        .containsEntry("data-dir", "/file/data")
        .containsEntry("shared-dir", "/shared")
        .containsEntry("sync", "true")
        .containsEntry("certs", "/etc/peerflash/n1")
        .doesNotContainKey("listen")
        .doesNotContainKey("insecure");
    NodeConfig config = NodeConfig.fromMap(settings);
    assertThat(config.nodeId()).isEqualTo("from-flag");
    assertThat(config.engine().syncWrites()).isTrue();
    assertThat(config.certsDir()).isEqualTo(Path.of("/etc/peerflash/n1"));
    assertThat(config.insecure()).isFalse();
  }

  @Test
  void badNodeConfigIsOneLineAndExitsWithTwo() {
    assertThat(run("node", "--id", "n1", "--data-dir", "/d")).isEqualTo(2);
    assertThat(err())
        .isEqualTo(
            "error: bad configuration: missing required setting --shared-dir"
                + System.lineSeparator());
    assertThat(
            run("node", "--id", "n1", "--data-dir", "/d", "--shared-dir", "/s", "--set", "bogus=1"))
        .isEqualTo(2);
    assertThat(err()).contains("unknown setting 'bogus'");
    assertThat(run("node", "--config", tmp.resolve("missing.properties").toString())).isEqualTo(2);
    assertThat(err()).startsWith("error: cannot read config file");
  }

  @Test
  void nodeHelpListsEverySetting() {
    assertThat(run("node", "--help")).isZero();
    for (NodeConfig.Key<?> key : NodeConfig.keys()) {
      assertThat(out()).contains(key.name());
    }
    assertThat(out()).contains(NodeConfig.reference());
  }

  @Test
  void everyHelpTextFormats() {
    // picocli runs each description through String.format: a lone '%' (as in "70% reads") makes
    // it print a warning and the raw text instead of the help.
    List<String> broken = new ArrayList<>();
    Deque<CommandLine> commands =
        new ArrayDeque<>(List.of(PeerFlashCli.commandLine(new PeerFlashCli())));
    int checked = 0;
    while (!commands.isEmpty()) {
      CommandLine command = commands.pop();
      checked++;
      commands.addAll(command.getSubcommands().values());
      List<String> texts =
          new ArrayList<>(List.of(command.getCommandSpec().usageMessage().description()));
      for (CommandLine.Model.OptionSpec option : command.getCommandSpec().options()) {
        texts.addAll(List.of(option.description()));
      }
      for (String text : texts) {
        try {
          String.format(text);
        } catch (IllegalFormatException e) {
          broken.add(command.getCommandName() + ": " + text);
        }
      }
    }
    assertThat(broken).isEmpty();
    assertThat(checked).as("commands checked").isGreaterThan(PeerFlashCli.COMMANDS.size() * 2);
  }

  @Test
  void aCallBuildsOnlyTheCommandItNamesAndHelpListsThemAll() {
    CommandLine list = PeerFlashCli.commandLine(new PeerFlashCli(), "volume", "list", "-o", "json");
    assertThat(list.getSubcommands()).containsOnlyKeys("volume");
    assertThat(list.getSubcommands().get("volume").getSubcommands()).containsOnlyKeys("list");
    CommandLine group = PeerFlashCli.commandLine(new PeerFlashCli(), "cluster", "--help");
    assertThat(group.getSubcommands()).containsOnlyKeys("cluster");
    assertThat(group.getSubcommands().get("cluster").getSubcommands())
        .containsKeys("status", "drain", "add-node");
    CommandLine all = PeerFlashCli.commandLine(new PeerFlashCli(), "--version");
    assertThat(all.getSubcommands()).hasSize(PeerFlashCli.COMMANDS.size());
    assertThat(all.getSubcommands().get("certs").getSubcommands()).containsKeys("init", "client");
    assertThat(run("--help")).isZero();
    for (Class<?> command : PeerFlashCli.COMMANDS) {
      assertThat(out()).contains(command.getAnnotation(CommandLine.Command.class).name());
    }
    assertThat(run("volum", "list")).isEqualTo(PeerFlashCli.EXIT_USAGE);
    assertThat(err()).contains("volume");
    // A subcommand misspelt: the group's subcommands are all there to suggest from.
    assertThat(run("volume", "lst")).isEqualTo(PeerFlashCli.EXIT_USAGE);
    assertThat(err()).contains("Did you mean: volume stat").contains("peerflash volume --help");
  }
}
