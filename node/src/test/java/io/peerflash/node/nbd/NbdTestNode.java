package io.peerflash.node.nbd;

import io.peerflash.node.NodeConfig;
import io.peerflash.node.PeerFlashNode;
import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.testing.TestCertificates;
import java.io.IOException;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

/** A real node (TLS on its ports) serving NBD on loopback TCP and on a Unix socket, for tests. */
final class NbdTestNode implements AutoCloseable {
  final PeerFlashNode node;
  final Path socket;
  final TestCertificates certs;

  NbdTestNode(Path dir, String cacheSize, Map<String, String> extra) throws IOException {
    this(dir, cacheSize, extra, TestCertificates.shared());
  }

  /** A node whose identity comes from {@code certs} (a CA of the test's own, to change files). */
  NbdTestNode(Path dir, String cacheSize, Map<String, String> extra, TestCertificates certs)
      throws IOException {
    this.certs = certs;
    socket = dir.resolve("nbd.sock");
    Map<String, String> s = new HashMap<>();
    s.put("id", "n1");
    s.put("listen", "127.0.0.1:0");
    s.put("data-dir", dir.resolve("data").toString());
    s.put("shared-dir", dir.resolve("shared").toString());
    s.put("cache-size", cacheSize);
    s.put("nbd", "127.0.0.1:0");
    s.put("nbd-socket", socket.toString());
    s.putAll(certs.nodeSettings("n1"));
    s.putAll(extra);
    node = PeerFlashNode.start(NodeConfig.fromMap(s));
  }

  void createVolume(String name, long bytes) throws Exception {
    node.engine().createVolume(name, bytes, CacheMode.WRITE_BACK, 0);
  }

  int tcpPort() {
    return node.nbd().tcpPort();
  }

  /** libnbd URI of a volume over the Unix socket. */
  String unixUri(String volume) {
    return "nbd+unix:///" + volume + "?socket=" + socket;
  }

  /** libnbd URI of a volume over TCP with TLS, as client {@code clientDir}. */
  String tlsUri(String volume, Path clientDir) {
    return "nbds://localhost:" + tcpPort() + "/" + volume + "?tls-certificates=" + clientDir;
  }

  @Override
  public void close() {
    node.close();
  }
}
