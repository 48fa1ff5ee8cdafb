package io.peerflash.node.nbd;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Runs the Debian NBD clients (nbdinfo, nbdcopy, qemu-img, qemu-io, fio). A missing tool fails the
 * test with the package to install (.ci/run installs them); it never skips.
 */
final class ClientTools {
  private ClientTools() {}

  record Result(int exit, String out) {}

  static Result run(long timeoutSeconds, String... command)
      throws IOException, InterruptedException {
    return run(Map.of(), timeoutSeconds, command);
  }

  static Result run(Map<String, String> env, long timeoutSeconds, String... command)
      throws IOException, InterruptedException {
    requireTool(command[0]);
    int wrapped = java.util.Arrays.asList(command).indexOf("--"); // setpriv ... -- TOOL
    if (wrapped >= 0 && wrapped + 1 < command.length) {
      requireTool(command[wrapped + 1]);
    }
    Path log = Files.createTempFile("nbd-tool", ".log");
    try {
      ProcessBuilder b =
          new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile());
      b.environment().putAll(env);
      Process p = b.start();
      if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
        p.destroyForcibly().waitFor();
        fail(
            "%s did not end within %d s; output:%n%s",
            String.join(" ", command), timeoutSeconds, Files.readString(log));
      }
      return new Result(p.exitValue(), Files.readString(log, StandardCharsets.UTF_8));
    } finally {
      Files.deleteIfExists(log);
    }
  }

  /** Runs a command that must exit 0; returns its output. */
  static String ok(long timeoutSeconds, String... command)
      throws IOException, InterruptedException {
    return ok(Map.of(), timeoutSeconds, command);
  }

  static String ok(Map<String, String> env, long timeoutSeconds, String... command)
      throws IOException, InterruptedException {
    Result r = run(env, timeoutSeconds, command);
    assertThat(r.exit())
        .as("%s exited %d; output:%n%s", String.join(" ", command), r.exit(), r.out())
        .isZero();
    return r.out();
  }

  private static final List<String[]> PACKAGES =
      List.of(
          new String[] {"nbdinfo", "libnbd-bin"},
          new String[] {"nbdcopy", "libnbd-bin"},
          new String[] {"nbdsh", "python3-libnbd"},
          new String[] {"qemu-img", "qemu-utils"},
          new String[] {"qemu-io", "qemu-utils"},
          new String[] {"fio", "fio"},
          new String[] {"nbdkit", "nbdkit"});

  static void requireTool(String tool) {
    for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin:/bin").split(":")) {
      if (Files.isExecutable(Path.of(dir, tool))) {
        return;
      }
    }
    String pkg =
        PACKAGES.stream().filter(p -> p[0].equals(tool)).map(p -> p[1]).findFirst().orElse("?");
    fail(
        "the NBD client tool '%s' is not installed: apt-get install -y %s (the real-client tests"
            + " need fio qemu-utils libnbd-bin python3-libnbd nbdkit)",
        tool, pkg);
  }
}
