package io.peerflash.node.nbd;

import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.security.Identity;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Debian's NBD clients against a real node, over TLS on TCP and over the Unix socket. */
class NbdClientToolsTest {
  @TempDir Path dir;
  NbdTestNode node;
  Path client;

  @BeforeEach
  void start() throws Exception {
    node = new NbdTestNode(dir, "512MiB", Map.of());
    client = node.certs.client("nbd-io", Identity.Role.IO);
  }

  @AfterEach
  void stop() {
    node.close();
  }

  @Test
  void nbdinfoShowsSizeAndBlockSizes() throws Exception {
    node.createVolume("disk", 64L << 20);
    for (String uri : new String[] {node.unixUri("disk"), node.tlsUri("disk", client)}) {
      String json = ClientTools.ok(30, "nbdinfo", "--json", uri);
      System.out.println(json);
      assertThat(json).contains("\"export-size\": " + (64L << 20));
    }
  }
}
