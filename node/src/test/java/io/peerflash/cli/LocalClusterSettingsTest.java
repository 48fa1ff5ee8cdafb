package io.peerflash.cli;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;
import picocli.CommandLine;

class LocalClusterSettingsTest {
  @Test
  void passesSettingsToEveryNode() {
    LocalClusterCommand cmd = new LocalClusterCommand();
    new CommandLine(cmd)
        .parseArgs(
            "--nodes",
            "2",
            "--dir",
            "/tmp/c",
            "--set",
            "storage-latency-us=1000",
            "--set",
            "rpc-threads=8");
    for (int i = 1; i <= 2; i++) {
      assertThat(cmd.nodeArgs(i))
          .containsSubsequence("--set", "storage-latency-us=1000")
          .containsSubsequence("--set", "rpc-threads=8");
    }
    LocalClusterCommand none = new LocalClusterCommand();
    new CommandLine(none).parseArgs("--nodes", "1", "--dir", "/tmp/c");
    assertThat(none.nodeArgs(1)).doesNotContain("--set");
  }
}
