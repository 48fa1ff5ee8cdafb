package io.peerflash.node.rpc;

import static org.assertj.core.api.Assertions.fail;

import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.peerflash.node.NodeConfig;
import io.peerflash.node.PeerFlashNode;
import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.CreateVolumeRequest;
import io.peerflash.proto.v1.DescribeCopiesRequest;
import io.peerflash.proto.v1.GetVolumeRequest;
import io.peerflash.proto.v1.OnPeerLoss;
import io.peerflash.proto.v1.ReplicaServiceGrpc;
import io.peerflash.proto.v1.VolumePolicy;
import io.peerflash.proto.v1.VolumeServiceGrpc;
import io.peerflash.security.GrpcTls;
import io.peerflash.security.TlsDirectory;
import io.peerflash.testing.TestCertificates;
import io.peerflash.testing.TestPorts;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.apache.ratis.util.ExitUtils;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Fuzzes the whole gRPC API of a real node (loopback sockets with mutual TLS, RocksDB, files) with
 * a seeded generator, as the admin client and, for replica calls, as a peer node: see {@link
 * ApiFuzzer} for the properties. Each test stops after -Dfuzz.calls calls or -Dfuzz.seconds
 * seconds, whichever comes first (defaults: 20,000 calls on a single node, 5,000 on a cluster
 * member, 120 s); -Dfuzz.seed replays a run, and a failure names the seed and call to replay.
 * Afterwards the node is restarted on the same directories and the model volume must read back. The
 * run ends with "API fuzz: N calls in S s (seed X)", calls per RPC and per status code.
 */
class ApiFuzzTest {
  static {
    // A Raft server that cannot start must fail the test, not exit the test JVM.
    ExitUtils.disableSystemExit();
  }

  // The single node takes the CI budget of the fuzz (20,000 calls or 120 s, whichever comes first);
  // the cluster member, whose calls go through Raft, adds a shorter run of its own.
  private static final long DEFAULT_CALLS = 20_000;
  private static final long DEFAULT_CLUSTER_CALLS = 5_000;
  private static final long DEFAULT_SECONDS = 120;
  private static final long MODEL_SIZE = 4 << 20;
  private static final long PEER_SIZE = 1 << 20;

  /**
   * A flush gives up on failing shared storage well inside the client's deadline, so a volume whose
   * destage is stuck answers UNAVAILABLE instead of hanging each call for 30 s.
   */
  private static final String FLUSH_GIVE_UP_MS = "5000";

  @TempDir Path dir;
  private final TestCertificates certs = TestCertificates.shared();
  private final Map<String, PeerFlashNode> nodes = new LinkedHashMap<>();
  private final List<ManagedChannel> channels = new ArrayList<>();

  @AfterEach
  void stop() {
    channels.forEach(ManagedChannel::shutdownNow);
    nodes.values().forEach(PeerFlashNode::close);
  }

  /** A single node (no --raft): the cluster and replica services answer UNIMPLEMENTED. */
  @Test
  void singleNode() throws Exception {
    ApiFuzzer.Settings settings =
        ApiFuzzer.Settings.fromSystemProperties(DEFAULT_CALLS, DEFAULT_SECONDS);
    int port = TestPorts.free();
    Map<String, String> c = new HashMap<>();
    c.put("id", "n1");
    c.put("listen", "127.0.0.1:" + port);
    c.put("data-dir", dir.resolve("n1").toString());
    c.put("shared-dir", dir.resolve("shared").toString());
    c.put("cache-size", "64MiB");
    c.put("flush-storage-failure-timeout-ms", FLUSH_GIVE_UP_MS);
    c.putAll(certs.nodeSettings("n1"));
    NodeConfig config = NodeConfig.fromMap(c);
    nodes.put("n1", PeerFlashNode.start(config));
    ManagedChannel channel = channel(port);
    createModel(channel, 0);

    ApiFuzzer fuzzer =
        new ApiFuzzer(
            settings,
            new ApiFuzzer.Target(
                "single node",
                false,
                null,
                List.of(),
                Map.of(),
                null,
                0,
                null,
                MODEL_SIZE,
                2,
                dir.resolve("shared"),
                TestPorts.free()),
            channel,
            null);
    fuzzer.run();
    String summary = fuzzer.summary();
    fuzzer.verifyModel("before a restart", true);

    nodes.remove("n1").close();
    try {
      nodes.put("n1", PeerFlashNode.start(config));
      fuzzer.retarget(channel(port));
      fuzzer.verifyModel("after a restart", false);
    } catch (Exception e) {
      fuzzer.recordFailure("(restart)", "the node did not start again on its directories", e);
    }
    finish(fuzzer, summary, "singleNode");
  }

  /**
   * Two members with real Raft; the fuzzed node owns the model volume (one replica on the other)
   * and holds a replica of a volume the other owns, the target of fuzzed replica copies.
   */
  @Test
  void clusterMember() throws Exception {
    ApiFuzzer.Settings settings =
        ApiFuzzer.Settings.fromSystemProperties(DEFAULT_CLUSTER_CALLS, DEFAULT_SECONDS);
    Map<String, String> raft = new LinkedHashMap<>();
    Map<String, Integer> clientPorts = new LinkedHashMap<>();
    for (String id : List.of("n1", "n2")) {
      raft.put(id, "127.0.0.1:" + TestPorts.free());
      clientPorts.put(id, TestPorts.free());
    }
    String peers =
        String.join(
            ",", raft.entrySet().stream().map(e -> e.getKey() + "=" + e.getValue()).toList());
    Map<String, NodeConfig> configs = new LinkedHashMap<>();
    for (String id : raft.keySet()) {
      Map<String, String> c = new HashMap<>();
      c.put("id", id);
      c.put("listen", "127.0.0.1:" + clientPorts.get(id));
      c.put("raft", raft.get(id));
      c.put("peers", peers);
      c.put("fault-domain", "rack-" + id);
      c.put("data-dir", dir.resolve(id).toString());
      c.put("shared-dir", dir.resolve("shared").toString());
      c.put("cache-size", "64MiB");
      c.put("flush-storage-failure-timeout-ms", FLUSH_GIVE_UP_MS);
      c.putAll(certs.nodeSettings(id));
      configs.put(id, NodeConfig.fromMap(c));
    }
    startCluster(configs);
    ManagedChannel n1 = channel(clientPorts.get("n1"));
    ManagedChannel n2 = channel(clientPorts.get("n2"));
    // Replica calls to n1 come from n2, the owner of the peer volume, with its certificate.
    ManagedChannel n1FromN2 = peerChannel(clientPorts.get("n1"), "n2", "n1");
    createModel(n1, 1);
    VolumeServiceGrpc.newBlockingStub(n2)
        .withDeadlineAfter(30, TimeUnit.SECONDS)
        .createVolume(
            CreateVolumeRequest.newBuilder()
                .setName("peer")
                .setSizeBytes(PEER_SIZE)
                .setPolicy(VolumePolicy.newBuilder().setMode(CacheMode.WRITE_BACK).setReplicas(1))
                .build());
    await(
        () -> {
          try {
            ReplicaServiceGrpc.newBlockingStub(n1FromN2)
                .withDeadlineAfter(5, TimeUnit.SECONDS)
                .describeCopies(DescribeCopiesRequest.newBuilder().setVolume("peer").build());
            return true;
          } catch (RuntimeException e) {
            return false;
          }
        },
        "n1 holding a replica of the peer volume");

    ApiFuzzer fuzzer =
        new ApiFuzzer(
            settings,
            new ApiFuzzer.Target(
                "cluster member",
                true,
                "n1",
                List.of("n1", "n2"),
                raft,
                "peer",
                PEER_SIZE,
                "n2",
                MODEL_SIZE,
                1,
                dir.resolve("shared"),
                TestPorts.free()),
            n1,
            n1FromN2);
    fuzzer.run();
    String summary = fuzzer.summary();
    fuzzer.verifyModel("before a restart", true);

    // n2 first: without it n1 cannot renew its lease, so nothing fails the model over to n2.
    nodes.remove("n2").close();
    nodes.remove("n1").close();
    try {
      startCluster(configs);
      String owner =
          VolumeServiceGrpc.newBlockingStub(channel(clientPorts.get("n1")))
              .withDeadlineAfter(30, TimeUnit.SECONDS)
              .getVolume(GetVolumeRequest.newBuilder().setName(ApiFuzzer.MODEL).build())
              .getOwner();
      fuzzer.retarget(channel(clientPorts.get(owner)));
      fuzzer.verifyModel("after a restart of both members", false);
    } catch (Exception e) {
      fuzzer.recordFailure("(restart)", "the members did not start again on their directories", e);
    }
    finish(fuzzer, summary, "clusterMember");
  }

  private void startCluster(Map<String, NodeConfig> configs) throws Exception {
    for (Map.Entry<String, NodeConfig> e : configs.entrySet()) {
      nodes.put(e.getKey(), PeerFlashNode.start(e.getValue()));
    }
    await(() -> nodes.values().stream().allMatch(n -> n.cluster().ready()), "the cluster serving");
  }

  /** A channel as the admin client. */
  private ManagedChannel channel(int port) {
    ManagedChannel c =
        certs.adminSecurity().apply(NettyChannelBuilder.forAddress("127.0.0.1", port)).build();
    channels.add(c);
    return c;
  }

  /** A channel as node {@code fromId} to node {@code toId}, the way nodes call their peers. */
  private ManagedChannel peerChannel(int port, String fromId, String toId) throws Exception {
    ManagedChannel c =
        NettyChannelBuilder.forAddress("127.0.0.1", port)
            .sslContext(GrpcTls.peerClientContext(TlsDirectory.open(certs.node(fromId)), toId))
            .build();
    channels.add(c);
    return c;
  }

  private static void createModel(ManagedChannel channel, int replicas) {
    VolumeServiceGrpc.newBlockingStub(channel)
        .withDeadlineAfter(30, TimeUnit.SECONDS)
        .createVolume(
            CreateVolumeRequest.newBuilder()
                .setName(ApiFuzzer.MODEL)
                .setSizeBytes(MODEL_SIZE)
                .setPolicy(
                    VolumePolicy.newBuilder()
                        .setMode(CacheMode.WRITE_BACK)
                        .setReplicas(replicas)
                        .setOnPeerLoss(OnPeerLoss.ON_PEER_LOSS_WRITE_THROUGH))
                .build());
  }

  private static void finish(ApiFuzzer fuzzer, String summary, String method) {
    String report = fuzzer.report(method);
    System.out.println(summary);
    System.out.println(report);
    if (!fuzzer.violations().isEmpty()) {
      fail(summary + "\n" + report);
    }
  }

  private static void await(BooleanSupplier condition, String what) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("timed out waiting for " + what);
      }
      Thread.sleep(20);
    }
  }
}
