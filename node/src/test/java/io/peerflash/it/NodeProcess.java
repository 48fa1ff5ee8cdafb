package io.peerflash.it;

import io.peerflash.client.ClientSecurity;
import io.peerflash.client.PeerFlashClient;
import io.peerflash.testing.TestCertificates;
import io.peerflash.testing.TestPorts;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A node running as a real JVM process from the built jar, for crash tests: with mutual TLS (its
 * identity directory from the JVM's {@link TestCertificates}), unless its arguments say {@code
 * --insecure}.
 */
final class NodeProcess implements AutoCloseable {
  private final String id;
  private final Path dataDir;
  private final Path sharedDir;
  private final List<String> extraArgs;
  private final Path log;
  private int port;
  private Process process;

  NodeProcess(Path workDir, List<String> extraArgs) {
    this("crash-node", workDir.resolve("data"), workDir.resolve("shared"), 0, extraArgs);
  }

  /** A node of a cluster: its own data dir, the cluster's shared dir, a fixed client port. */
  NodeProcess(String id, Path dataDir, Path sharedDir, int port, List<String> extraArgs) {
    this.id = id;
    this.dataDir = dataDir;
    this.sharedDir = sharedDir;
    this.port = port;
    this.extraArgs = extraArgs;
    this.log = dataDir.resolveSibling(id + ".log");
  }

  String id() {
    return id;
  }

  boolean alive() {
    return process != null && process.isAlive();
  }

  Path sharedDir() {
    return sharedDir;
  }

  String target() {
    return "127.0.0.1:" + port;
  }

  /** How tests connect to these nodes: as the admin client of the test certificates. */
  static ClientSecurity adminSecurity() {
    return TestCertificates.shared().adminSecurity();
  }

  /** A client of this node as the admin (plaintext when the node runs with --insecure). */
  PeerFlashClient connect() {
    return PeerFlashClient.connect(target(), security());
  }

  private ClientSecurity security() {
    return extraArgs.contains("--insecure") ? ClientSecurity.insecure() : adminSecurity();
  }

  static Path jar() {
    String jar = System.getProperty("peerflash.jar", "target/peerflash.jar");
    Path p = Path.of(jar);
    if (!Files.exists(p)) {
      throw new IllegalStateException("node jar not built: " + p.toAbsolutePath());
    }
    return p;
  }

  /** Starts the process and waits until it answers status calls. */
  void start() throws IOException, InterruptedException {
    Files.createDirectories(dataDir.getParent());
    if (port == 0) {
      port = TestPorts.free();
    }
    List<String> cmd = new ArrayList<>();
    cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    cmd.add("-Xmx512m");
    cmd.add("-jar");
    cmd.add(jar().toString());
    cmd.add("node");
    cmd.addAll(
        List.of(
            "--id", id,
            "--listen", target(),
            "--data-dir", dataDir.toString(),
            "--shared-dir", sharedDir.toString()));
    if (!extraArgs.contains("--insecure")) {
      cmd.addAll(List.of("--certs", TestCertificates.shared().node(id).toString()));
    }
    cmd.addAll(extraArgs);
    process =
        new ProcessBuilder(cmd)
            .redirectErrorStream(true)
            .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()))
            .start();
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    while (true) {
      if (!process.isAlive()) {
        throw new IllegalStateException(
            "node exited with " + process.exitValue() + ":\n" + Files.readString(log));
      }
      try (PeerFlashClient c =
          PeerFlashClient.builder()
              .target(target())
              .security(security())
              .deadline(Duration.ofSeconds(2))
              .build()) {
        c.status();
        return;
      } catch (RuntimeException e) {
        if (System.nanoTime() > deadline) {
          throw new IllegalStateException("node did not come up:\n" + Files.readString(log), e);
        }
        Thread.sleep(100);
      }
    }
  }

  /** SIGSTOP: the process freezes (like a very long GC pause) until {@link #unfreeze}. */
  void freeze() throws IOException, InterruptedException {
    signal("STOP");
  }

  /** SIGCONT. */
  void unfreeze() throws IOException, InterruptedException {
    signal("CONT");
  }

  private void signal(String name) throws IOException, InterruptedException {
    Process p = new ProcessBuilder("kill", "-" + name, Long.toString(process.pid())).start();
    if (p.waitFor() != 0) {
      throw new IOException("kill -" + name + " " + process.pid() + " failed");
    }
  }

  /** SIGKILL: no shutdown hook runs, nothing is flushed. */
  void kill() throws InterruptedException {
    process.destroyForcibly();
    process.waitFor(30, TimeUnit.SECONDS);
  }

  /** SIGTERM; returns the exit code. */
  int terminate(Duration timeout) throws InterruptedException {
    process.destroy();
    if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
      throw new IllegalStateException("node did not stop within " + timeout + " after SIGTERM");
    }
    return process.exitValue();
  }

  String logText() throws IOException {
    return Files.exists(log) ? Files.readString(log) : "";
  }

  @Override
  public void close() {
    if (process != null && process.isAlive()) {
      process.destroyForcibly();
    }
  }
}
