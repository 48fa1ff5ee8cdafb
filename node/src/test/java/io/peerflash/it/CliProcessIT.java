package io.peerflash.it;

import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.testing.TestCertificates;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The command line as users run it: a process from the built jar, and through {@code
 * deploy/peerflash} (whose first call makes the class-data sharing archive and whose later calls
 * map it), against a node process with mutual TLS. Standard output holds the answer and nothing
 * else, standard error nothing at all, and the process ends once it has answered.
 */
class CliProcessIT {
  private static final Path LAUNCHER = Path.of("../deploy/peerflash");

  @TempDir Path dir;
  private NodeProcess node;

  @AfterEach
  void stop() {
    if (node != null) {
      node.close();
    }
  }

  /** What a finished command left: its exit code, standard output and standard error. */
  record Result(int code, String out, String err) {}

  private Result run(List<String> command) throws IOException, InterruptedException {
    Path out = dir.resolve("out.txt");
    Path err = dir.resolve("err.txt");
    ProcessBuilder b =
        new ProcessBuilder(command).redirectOutput(out.toFile()).redirectError(err.toFile());
    b.environment().put("PEERFLASH_TARGET", node.target());
    b.environment().put("PEERFLASH_CERTS", TestCertificates.shared().admin().toString());
    b.environment().put("PEERFLASH_JAR", NodeProcess.jar().toAbsolutePath().toString());
    b.environment().put("XDG_CACHE_HOME", dir.resolve("cache").toString());
    Process p = b.start();
    assertThat(p.waitFor(60, TimeUnit.SECONDS)).as("%s ended", command).isTrue();
    return new Result(
        p.exitValue(),
        Files.readString(out, StandardCharsets.UTF_8),
        Files.readString(err, StandardCharsets.UTF_8));
  }

  private static List<String> java(String... args) {
    List<String> cmd = new ArrayList<>();
    cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    cmd.add("-jar");
    cmd.add(NodeProcess.jar().toString());
    cmd.addAll(List.of(args));
    return cmd;
  }

  private static List<String> launcher(String... args) {
    List<String> cmd = new ArrayList<>(List.of("sh", LAUNCHER.toString()));
    cmd.addAll(List.of(args));
    return cmd;
  }

  @Test
  void aNodeStartedWithLogJsonWritesOneJsonObjectPerLineNamingItself() throws Exception {
    node = new NodeProcess(dir.resolve("node"), List.of("--log-json"));
    node.start();
    Result create = run(java("volume", "create", "vm1", "--size", "16MiB", "--replicas", "0"));
    assertThat(create.code()).as("create: %s", create.err()).isZero();
    Path log = dir.resolve("node/crash-node.log"); // beside its data directory
    String audit = "\"formattedMessage\":\"client 'admin' CreateVolume 'vm1': OK\"";
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    while (!Files.readString(log).contains(audit)) {
      assertThat(System.nanoTime()).as("the audit line in %s", log).isLessThan(deadline);
      Thread.sleep(50);
    }
    List<String> lines = Files.readAllLines(log);
    for (String line : lines) {
      if (line.startsWith("peerflash node crash-node listening on ")) {
        continue; // the one line the node prints on standard output (the log is standard error)
      }
      com.google.gson.JsonObject json =
          com.google.gson.JsonParser.parseString(line).getAsJsonObject();
      assertThat(json.has("level")).as(line).isTrue();
      assertThat(json.has("formattedMessage")).as(line).isTrue();
    }
    assertThat(lines)
        .anyMatch(l -> l.contains("\"peerflash.node\":\"crash-node\"") && l.contains(audit));
  }

  @Test
  void commandsAnswerOnStandardOutputAloneAndEnd() throws Exception {
    node = new NodeProcess(dir.resolve("node"), List.of());
    node.start();

    Result create = run(java("volume", "create", "vm1", "--size", "16MiB", "--replicas", "0"));
    assertThat(create.code()).as("create: %s", create.err()).isZero();
    assertThat(create.err()).isEmpty();

    Result plain = run(java("volume", "list", "-o", "json"));
    assertThat(plain.code()).as("list: %s", plain.err()).isZero();
    assertThat(plain.err()).isEmpty();
    assertThat(plain.out().strip()).startsWith("{").endsWith("}").contains("\"vm1\"");

    // The launcher: the first call makes the archive, the next ones use it; same answers.
    Path archive = dir.resolve("cache/peerflash/cli.jsa");
    for (int call = 1; call <= 2; call++) {
      Result viaLauncher = run(launcher("volume", "list", "-o", "json"));
      assertThat(viaLauncher.code()).as("launcher call %d: %s", call, viaLauncher.err()).isZero();
      assertThat(viaLauncher.err()).as("launcher call %d", call).isEmpty();
      assertThat(viaLauncher.out()).isEqualTo(plain.out());
      assertThat(archive).as("the archive after call %d", call).isNotEmptyFile();
    }

    // A refused command says why on standard error, and nothing on standard output.
    Result missing = run(launcher("volume", "stat", "no-such-volume"));
    assertThat(missing.code()).isEqualTo(1);
    assertThat(missing.out()).isEmpty();
    assertThat(missing.err()).contains("no-such-volume").doesNotContain("Exception");
  }
}
