package io.peerflash.replication.control;

import io.peerflash.util.Time;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;

/** N real control planes on loopback in one JVM, with free ports and their own storage dirs. */
final class TestCluster implements AutoCloseable {
  final Path root;
  final Map<String, String> peers = new TreeMap<>();
  final Map<String, ControlPlane> nodes = new LinkedHashMap<>();
  long leaseMs = ControlPlaneConfig.DEFAULT_LEASE_TIMEOUT_MS;
  long marginMs = ControlPlaneConfig.DEFAULT_CLOCK_SKEW_MARGIN_MS;
  long snapshotThreshold = ControlPlaneConfig.DEFAULT_SNAPSHOT_THRESHOLD;
  Map<String, String> raftOverrides = Map.of();

  /** Each node's Raft TLS setting by id; null: plaintext. */
  java.util.function.Function<String, RaftTls> tls;

  TestCluster(Path root, int voters) {
    this.root = root;
    for (int i = 1; i <= voters; i++) {
      peers.put("n" + i, "127.0.0.1:" + freePort());
    }
  }

  /** Over existing storage: the same ids and addresses as a previous run. */
  TestCluster(Path root, Map<String, String> peers) {
    this.root = root;
    this.peers.putAll(peers);
  }

  static int freePort() {
    try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      s.setReuseAddress(true);
      return s.getLocalPort();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  ControlPlaneConfig config(String id, String raftAddress) {
    ControlPlaneConfig config = plaintextConfig(id, raftAddress);
    if (tls == null) {
      return config;
    }
    RaftTls t = tls.apply(id);
    return config.withTls(t.keyManager(), t.trustManager());
  }

  private ControlPlaneConfig plaintextConfig(String id, String raftAddress) {
    return new ControlPlaneConfig(
        id,
        raftAddress,
        "127.0.0.1:" + (10000 + Math.floorMod(id.hashCode(), 1000)),
        "domain-" + id,
        peers,
        root.resolve(id),
        leaseMs,
        marginMs,
        snapshotThreshold,
        ControlPlaneConfig.DEFAULT_ELECTION_TIMEOUT_MIN_MS,
        Time.SYSTEM,
        raftOverrides);
  }

  ControlPlane start(String id) {
    return start(id, peers.get(id));
  }

  ControlPlane start(String id, String raftAddress) {
    try {
      ControlPlane cp = ControlPlane.start(config(id, raftAddress));
      nodes.put(id, cp);
      return cp;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  void startAll() {
    for (String id : peers.keySet()) {
      start(id);
    }
  }

  List<ControlPlane> running() {
    return new ArrayList<>(nodes.values());
  }

  void stop(String id) {
    ControlPlane cp = nodes.remove(id);
    if (cp != null) {
      cp.close();
    }
  }

  /** Waits until exactly one running node leads and every running node names it. */
  ControlPlane awaitLeader(Duration timeout) {
    await(
        timeout,
        () -> {
          List<ControlPlane> leaders =
              running().stream().filter(ControlPlane::isLeaderReady).toList();
          if (leaders.size() != 1) {
            return false;
          }
          String id = leaders.get(0).nodeId();
          return running().stream().allMatch(cp -> cp.leaderId().equals(Optional.of(id)));
        },
        () -> "a single leader among " + nodes.keySet());
    return running().stream().filter(ControlPlane::isLeaderReady).findFirst().orElseThrow();
  }

  void awaitRegistered(Duration timeout) {
    for (ControlPlane cp : running()) {
      await(timeout, () -> cp.registered().isDone(), () -> cp.nodeId() + " registered");
      cp.registered().join();
    }
  }

  static void await(Duration timeout, BooleanSupplier condition, Supplier<String> what) {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() - deadline > 0) {
        throw new AssertionError("timed out after " + timeout + " waiting for " + what.get());
      }
      try {
        Thread.sleep(20);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new AssertionError("interrupted", e);
      }
    }
  }

  @Override
  public void close() {
    for (String id : new ArrayList<>(nodes.keySet())) {
      stop(id);
    }
  }
}
