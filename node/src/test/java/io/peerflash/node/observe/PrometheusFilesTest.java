package io.peerflash.node.observe;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The Prometheus files shipped in deploy/prometheus pass Prometheus' own checks: the scrape
 * configuration, the alert rules, and the rules' unit tests (alerts fire on the series they are
 * about, with the annotations an operator reads).
 */
class PrometheusFilesTest {
  private static final Path DIR = Path.of("..", "deploy", "prometheus").toAbsolutePath();

  @Test
  void configRulesAndRuleTestsPass() throws Exception {
    promtool("check", "config", DIR.resolve("prometheus.yml").toString());
    promtool("check", "rules", DIR.resolve("peerflash-alerts.yml").toString());
    promtool("test", "rules", DIR.resolve("peerflash-alerts.test.yml").toString());
  }

  private static void promtool(String... args) throws Exception {
    Path promtool = Path.of("/usr/bin/promtool");
    assertThat(Files.isExecutable(promtool))
        .as("promtool is missing: install Debian's prometheus package (.ci/run does)")
        .isTrue();
    List<String> cmd = new java.util.ArrayList<>(List.of(promtool.toString()));
    cmd.addAll(List.of(args));
    Process p = new ProcessBuilder(cmd).directory(DIR.toFile()).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertThat(p.waitFor(60, TimeUnit.SECONDS)).isTrue();
    assertThat(p.exitValue()).as("promtool %s said:%n%s", String.join(" ", args), out).isZero();
  }
}
