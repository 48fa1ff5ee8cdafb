package io.peerflash.node.nbd;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A node serves NBD on its shared event loops, those of gRPC and the replica link, so that a
 * replicated write crosses no thread (docs/design.md, "The NBD front end", Threads).
 */
class NbdThreadsTest {
  @TempDir Path dir;
  private NbdTestNode node;

  @AfterEach
  void stop() {
    if (node != null) {
      node.close();
    }
  }

  @Test
  void nbdConnectionsAreServedOnTheNodesSharedEventLoops() throws Exception {
    node = new NbdTestNode(dir, "8MiB", Map.of());
    node.createVolume("vol", 1 << 20);
    try (RawNbdClient c = RawNbdClient.unix(node.socket)) {
      c.greet();
      c.go("vol");
      c.request(0, NbdProtocol.CMD_WRITE, 1, 0, 4096, new byte[4096]);
      assertThat(c.simpleReply()).isEqualTo(new RawNbdClient.SimpleReply(0, 1));
      List<String> threads =
          Thread.getAllStackTraces().keySet().stream().map(Thread::getName).toList();
      // No event loop of NBD's own (Netty names a pool's threads NAME-POOL-THREAD).
      assertThat(threads)
          .noneMatch(n -> n.matches("peerflash-nbd-\\d+-\\d+"))
          .anyMatch(n -> n.startsWith("peerflash-netty-"));

      // Closing the front end closes its connections too, although the loops go on serving gRPC.
      node.node.nbd().close();
      CompletableFuture<Boolean> closed =
          CompletableFuture.supplyAsync(
              () -> {
                try {
                  return c.closedByServer();
                } catch (IOException e) {
                  return true;
                }
              });
      assertThat(closed.get(10, TimeUnit.SECONDS)).as("connection closed by the server").isTrue();
    }
  }
}
