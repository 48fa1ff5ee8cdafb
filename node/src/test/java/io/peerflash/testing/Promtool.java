package io.peerflash.testing;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

/** Prometheus' own checker (Debian's prometheus package), for what nodes serve on /metrics. */
public final class Promtool {
  private Promtool() {}

  /** Fails unless {@code promtool check metrics} accepts {@code metrics} without a word. */
  public static void checkMetrics(String metrics) throws Exception {
    Path promtool = Path.of("/usr/bin/promtool");
    assertThat(Files.isExecutable(promtool))
        .as("promtool is missing: install Debian's prometheus package (.ci/run does)")
        .isTrue();
    Process p =
        new ProcessBuilder(promtool.toString(), "check", "metrics")
            .redirectErrorStream(true)
            .start();
    p.getOutputStream().write(metrics.getBytes(StandardCharsets.UTF_8));
    p.getOutputStream().close();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertThat(p.waitFor(30, TimeUnit.SECONDS)).isTrue();
    assertThat(p.exitValue()).as("promtool check metrics said:%n%s", out).isZero();
    assertThat(out.trim()).as("promtool check metrics said:%n%s", out).isEmpty();
  }
}
