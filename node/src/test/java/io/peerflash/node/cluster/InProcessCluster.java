package io.peerflash.node.cluster;

import io.peerflash.client.PeerFlashClient;
import io.peerflash.node.NodeConfig;
import io.peerflash.node.PeerFlashNode;
import io.peerflash.proto.v1.Volume;
import io.peerflash.testing.TestCertificates;
import io.peerflash.testing.TestPorts;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.apache.ratis.util.ExitUtils;

/**
 * N real nodes in one JVM (real Raft, real gRPC over loopback, real RocksDB and files), each with
 * its fault points, that tests stop, crash and restart. Short leases so failures resolve quickly.
 * Mutual TLS on every port (client, peers, Raft) with the JVM's {@link TestCertificates} (or a
 * test's own); clients connect as its admin.
 */
public final class InProcessCluster implements AutoCloseable {
  static {
    // A Raft server that cannot start (its port taken) must fail its test, not exit the test JVM.
    ExitUtils.disableSystemExit();
  }

  final Path dir;
  final Map<String, PeerFlashNode> nodes = new LinkedHashMap<>();
  final Map<String, NodeConfig> configs = new LinkedHashMap<>();
  public final Map<String, String> clientAddress = new LinkedHashMap<>();
  public final TestCertificates certs;

  public InProcessCluster(Path dir, int n, Map<String, String> extra) throws Exception {
    this(dir, n, extra, TestCertificates.shared());
  }

  /** A cluster whose nodes take their identities from {@code certs} (a CA of the test's own). */
  public InProcessCluster(Path dir, int n, Map<String, String> extra, TestCertificates certs)
      throws Exception {
    this.dir = dir;
    this.certs = certs;
    Map<String, String> raft = new LinkedHashMap<>();
    for (int i = 1; i <= n; i++) {
      raft.put("n" + i, "127.0.0.1:" + freePort());
      clientAddress.put("n" + i, "127.0.0.1:" + freePort());
    }
    String peers =
        String.join(
            ",", raft.entrySet().stream().map(e -> e.getKey() + "=" + e.getValue()).toList());
    for (String id : raft.keySet()) {
      Map<String, String> c = new HashMap<>();
      c.put("id", id);
      c.put("listen", clientAddress.get(id));
      c.put("raft", raft.get(id));
      c.put("peers", peers);
      c.put("fault-domain", "rack-" + id);
      c.put("data-dir", dir.resolve(id).toString());
      c.put("shared-dir", dir.resolve("shared").toString());
      c.put("cache-size", "16MiB");
      c.put("lease-timeout-ms", "1500");
      c.put("clock-skew-margin-ms", "300");
      c.put("replication-ack-timeout-ms", "1000");
      c.putAll(certs.nodeSettings(id));
      // "{id}" in a value stands for the node's id (a setting each node needs its own of).
      extra.forEach((k, v) -> c.put(k, v.replace("{id}", id)));
      configs.put(id, NodeConfig.fromMap(c));
    }
    for (String id : configs.keySet()) {
      nodes.put(id, PeerFlashNode.start(configs.get(id)));
    }
    awaitReady();
  }

  static int freePort() throws Exception {
    return TestPorts.free();
  }

  public PeerFlashNode node(String id) {
    return nodes.get(id);
  }

  void awaitReady() throws InterruptedException {
    await(() -> nodes.values().stream().allMatch(n -> n.cluster().ready()), 60, "cluster ready");
  }

  /** Stops a node cleanly (dirty data stays on its flash). */
  void stop(String id) {
    PeerFlashNode n = nodes.remove(id);
    if (n != null) {
      n.close();
    }
  }

  /** Stops a node abruptly, as a crash would. */
  public void crash(String id) {
    PeerFlashNode n = nodes.remove(id);
    if (n != null) {
      n.crash();
    }
  }

  void restart(String id) throws Exception {
    stop(id);
    nodes.put(id, PeerFlashNode.start(configs.get(id)));
  }

  /** A client that knows every node and follows owners. */
  PeerFlashClient client() {
    return PeerFlashClient.builder()
        .target(String.join(",", clientAddress.values()))
        .security(certs.adminSecurity())
        .deadline(Duration.ofSeconds(20))
        .build();
  }

  public PeerFlashClient client(String id) {
    return PeerFlashClient.builder()
        .target(clientAddress.get(id))
        .security(certs.adminSecurity())
        .deadline(Duration.ofSeconds(20))
        .build();
  }

  /** The volume as a live node's map has it. */
  public Volume volume(String name) {
    for (PeerFlashNode n : nodes.values()) {
      try {
        return n.cluster().routing().getVolume(name);
      } catch (Exception e) {
        // try the next
      }
    }
    throw new AssertionError("no live node knows " + name);
  }

  /** The volume as its owner reports it (with dirty bytes and replica status). */
  Volume volumeFromOwner(String name) throws Exception {
    String owner = volume(name).getOwner();
    return nodes.get(owner).cluster().routing().getVolume(name);
  }

  public static void await(BooleanSupplier condition, int seconds, String what)
      throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("timed out waiting for " + what);
      }
      Thread.sleep(20);
    }
  }

  @Override
  public void close() {
    nodes.values().forEach(PeerFlashNode::close);
    nodes.clear();
  }
}
