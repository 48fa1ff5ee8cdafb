package io.peerflash.replication.control;

import static io.peerflash.replication.control.ClusterMapTest.create;
import static io.peerflash.replication.control.ControlPlaneTest.ok;
import static io.peerflash.replication.control.ControlPlaneTest.submit;
import static io.peerflash.replication.control.TestCluster.await;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.peerflash.proto.v1.CommandResult;
import io.peerflash.proto.v1.MapCommand;
import io.peerflash.replication.control.RaftConnectionRefusal.Direction;
import io.peerflash.replication.control.RaftConnectionRefusal.Stage;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import javax.net.ssl.X509ExtendedTrustManager;
import javax.net.ssl.X509KeyManager;
import org.apache.ratis.client.RaftClient;
import org.apache.ratis.client.RaftClientConfigKeys;
import org.apache.ratis.conf.Parameters;
import org.apache.ratis.conf.RaftProperties;
import org.apache.ratis.grpc.GrpcConfigKeys;
import org.apache.ratis.grpc.GrpcTlsConfig;
import org.apache.ratis.protocol.ClientId;
import org.apache.ratis.protocol.Message;
import org.apache.ratis.protocol.RaftClientReply;
import org.apache.ratis.protocol.RaftGroup;
import org.apache.ratis.retry.RetryPolicies;
import org.apache.ratis.thirdparty.com.google.protobuf.UnsafeByteOperations;
import org.apache.ratis.util.TimeDuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Raft over mutual TLS, members only: real control planes and real Ratis gRPC over loopback
 * sockets, certificates made per test by {@link TestPki}.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class RaftTlsTest {
  static final Duration WAIT = Duration.ofSeconds(20);

  @TempDir Path dir;

  final TestPki pki = new TestPki("PeerFlash CA");

  /** A refusal and the node that refused. */
  record Observed(String by, RaftConnectionRefusal refusal) {}

  final List<Observed> refusals = new CopyOnWriteArrayList<>();

  TestCluster tlsCluster(int voters) {
    TestCluster cluster = new TestCluster(dir, voters);
    cluster.tls = pki::raftTls;
    return cluster;
  }

  void startWatched(TestCluster cluster) {
    cluster.startAll();
    cluster.running().forEach(this::watch);
  }

  void watch(ControlPlane cp) {
    cp.addRaftRefusalListener(r -> refusals.add(new Observed(cp.nodeId(), r)));
  }

  void awaitRefusal(String what, Predicate<Observed> match) {
    await(WAIT, () -> refusals.stream().anyMatch(match), () -> what + "; refusals: " + refusals);
  }

  /** A bare Raft client of the cluster's group with the given credentials and few retries. */
  /** A Raft client of the group {@code peers}; plaintext when {@code trust} is null. */
  static RaftClient rawClient(
      Map<String, String> peers, X509KeyManager keyManager, X509ExtendedTrustManager trust) {
    Parameters parameters = new Parameters();
    if (trust != null) {
      GrpcConfigKeys.TLS.setConf(parameters, new GrpcTlsConfig(keyManager, trust, true));
    }
    RaftProperties properties = new RaftProperties();
    RaftClientConfigKeys.Rpc.setRequestTimeout(
        properties, TimeDuration.valueOf(3, TimeUnit.SECONDS));
    return RaftClient.newBuilder()
        .setParameters(parameters)
        .setProperties(properties)
        .setRaftGroup(
            RaftGroup.valueOf(
                ControlPlane.GROUP_ID,
                peers.entrySet().stream()
                    .map(e -> RaftWiring.peer(e.getKey(), e.getValue()))
                    .toList()))
        .setClientId(ClientId.randomId())
        .setRetryPolicy(
            RetryPolicies.retryUpToMaximumCountWithFixedSleep(
                3, TimeDuration.valueOf(100, TimeUnit.MILLISECONDS)))
        .build();
  }

  static CommandResult sendRaw(RaftClient client, MapCommand command) throws IOException {
    RaftClientReply reply =
        client.io().send(Message.valueOf(UnsafeByteOperations.unsafeWrap(command.toByteArray())));
    if (!reply.isSuccess()) {
      throw reply.getException() != null
          ? reply.getException()
          : new IOException("command failed: " + reply);
    }
    return CommandResult.parseFrom(reply.getMessage().getContent().toByteArray());
  }

  static boolean hasVolume(ControlPlane cp, String name) throws Exception {
    return cp.readLinearizable().get(20, TimeUnit.SECONDS).volume(name).isPresent();
  }

  @Test
  void threeNodesOverMutualTlsElectALeaderAndCommit() throws Exception {
    try (TestCluster cluster = tlsCluster(3)) {
      startWatched(cluster);
      ControlPlane leader = cluster.awaitLeader(WAIT);
      cluster.awaitRegistered(WAIT);
      for (ControlPlane cp : cluster.running()) {
        CommandResult r = ok(submit(cp, create("vol-" + cp.nodeId(), 2, cp.nodeId())));
        assertThat(r.getVolume().getOwner()).isEqualTo(cp.nodeId());
      }
      ControlPlaneTest.awaitVolumes(cluster.running(), leader.map().volumes());
      assertThat(cluster.nodes.get("n2").readLinearizable().get(10, TimeUnit.SECONDS).volumes())
          .containsOnlyKeys("vol-n1", "vol-n2", "vol-n3");
      for (ControlPlane cp : cluster.running()) {
        assertThat(cp.config().tls()).isNotNull();
        assertThat(cp.allowedRaftPeers()).containsOnlyKeys("n1", "n2", "n3");
      }
      // Members admitted one another on every connection made so far.
      assertThat(refusals).isEmpty();

      // Failover works over TLS as well.
      cluster.stop(leader.nodeId());
      ControlPlane next = cluster.awaitLeader(WAIT);
      ok(submit(next, create("after-failover", 1, "")));
      ControlPlaneTest.awaitVolumes(cluster.running(), next.map().volumes());
    }
  }

  @Test
  void aCertificateFromAnotherCaIsRefusedAndCommitsNothing() throws Exception {
    try (TestCluster cluster = tlsCluster(3)) {
      startWatched(cluster);
      ControlPlane leader = cluster.awaitLeader(WAIT);
      cluster.awaitRegistered(WAIT);
      // A node certificate naming a member, signed by another CA; the outsider trusts the real CA,
      // so it is the cluster that refuses, not the outsider.
      TestPki rogue = new TestPki("PeerFlash CA");
      TestPki.Identity impostor = rogue.node("n1");
      try (RaftClient outsider =
          rawClient(
              cluster.peers,
              impostor.keyManager(),
              TestPki.trusting(pki.caCertificate, rogue.caCertificate))) {
        assertThatThrownBy(() -> sendRaw(outsider, create("from-rogue-ca", 0, "")))
            .isInstanceOf(IOException.class);
      }
      awaitRefusal(
          "a member refused the rogue certificate at the handshake",
          o ->
              o.refusal().direction() == Direction.INBOUND
                  && o.refusal().stage() == Stage.HANDSHAKE
                  && o.refusal().nodeId().isEmpty()
                  && o.refusal().peerSubject().contains("CN=n1"));
      assertThat(hasVolume(leader, "from-rogue-ca")).isFalse();
    }
  }

  /** A key manager that has no key: its TLS client presents no certificate. */
  private static X509KeyManager noCertificate() {
    return new javax.net.ssl.X509ExtendedKeyManager() {
      @Override
      public String[] getClientAliases(String keyType, java.security.Principal[] issuers) {
        return null;
      }

      @Override
      public String chooseClientAlias(
          String[] keyType, java.security.Principal[] issuers, java.net.Socket socket) {
        return null;
      }

      @Override
      public String chooseEngineClientAlias(
          String[] keyType, java.security.Principal[] issuers, javax.net.ssl.SSLEngine engine) {
        return null;
      }

      @Override
      public String[] getServerAliases(String keyType, java.security.Principal[] issuers) {
        return null;
      }

      @Override
      public String chooseServerAlias(
          String keyType, java.security.Principal[] issuers, java.net.Socket socket) {
        return null;
      }

      @Override
      public java.security.cert.X509Certificate[] getCertificateChain(String alias) {
        return null;
      }

      @Override
      public java.security.PrivateKey getPrivateKey(String alias) {
        return null;
      }
    };
  }

  @Test
  void aClientWithoutACertificateOrWithoutTlsCommitsNothing() throws Exception {
    try (TestCluster cluster = tlsCluster(3)) {
      startWatched(cluster);
      ControlPlane leader = cluster.awaitLeader(WAIT);
      cluster.awaitRegistered(WAIT);
      // TLS that trusts the cluster's CA but presents no certificate.
      try (RaftClient anonymous = rawClient(cluster.peers, noCertificate(), pki.trustManager())) {
        assertThatThrownBy(() -> sendRaw(anonymous, create("from-anonymous", 0, "")))
            .isInstanceOf(IOException.class);
      }
      // No TLS at all.
      try (RaftClient plaintext = rawClient(cluster.peers, null, null)) {
        assertThatThrownBy(() -> sendRaw(plaintext, create("from-plaintext", 0, "")))
            .isInstanceOf(IOException.class);
      }
      assertThat(hasVolume(leader, "from-anonymous")).isFalse();
      assertThat(hasVolume(leader, "from-plaintext")).isFalse();
      // The members still commit among themselves.
      ok(submit(leader, create("after-the-refusals", 0, "")));
      assertThat(hasVolume(leader, "after-the-refusals")).isTrue();
    }
  }

  @Test
  void aNodeCertificateOutsideTheConfigurationCannotSubmitOrJoin() throws Exception {
    try (TestCluster cluster = tlsCluster(3)) {
      startWatched(cluster);
      ControlPlane leader = cluster.awaitLeader(WAIT);
      cluster.awaitRegistered(WAIT);
      TestPki.Identity n9 = pki.node("n9");

      // Submitting with a valid node certificate of a node that is no voter: refused.
      try (RaftClient outsider = rawClient(cluster.peers, n9.keyManager(), pki.trustManager())) {
        assertThatThrownBy(() -> sendRaw(outsider, create("from-n9", 0, "")))
            .isInstanceOf(IOException.class);
      }
      awaitRefusal(
          "a member refused n9",
          o ->
              o.refusal().nodeId().equals("n9")
                  && o.refusal().reason().contains("not in the Raft configuration"));
      assertThat(hasVolume(leader, "from-n9")).isFalse();

      // Joining by claiming to be a voter: n9 starts as one of a group {n1, n2, n3, n9} and asks
      // the members for votes; every member refuses it.
      Map<String, String> claimed = new java.util.TreeMap<>(cluster.peers);
      String n9Address = "127.0.0.1:" + TestCluster.freePort();
      claimed.put("n9", n9Address);
      ControlPlaneConfig n9Config =
          ControlPlaneConfig.of(
                  "n9", n9Address, "127.0.0.1:1", "", claimed, dir.resolve("n9-storage"))
              .withTls(n9.keyManager(), pki.trustManager());
      try (ControlPlane claimer = ControlPlane.start(n9Config)) {
        for (String member : cluster.peers.keySet()) {
          awaitRefusal(
              member + " refused n9's connection",
              o -> o.by().equals(member) && o.refusal().nodeId().equals("n9"));
        }
        for (ControlPlane cp : cluster.running()) {
          assertThat(cp.raftPeers()).containsOnlyKeys("n1", "n2", "n3");
          assertThat(cp.leaderId()).isEqualTo(Optional.of(leader.nodeId()));
        }
        assertThat(claimer.isLeader()).isFalse();
        assertThat(claimer.registered().isDone()).isFalse();
      }
      ok(submit(leader, create("members-still-commit", 0, "")));
      assertThat(leader.map().members()).containsOnlyKeys("n1", "n2", "n3");
    }
  }

  @Test
  void aServerMustBeTheNodeAtTheAddressDialled() throws Exception {
    try (TestCluster cluster = tlsCluster(3)) {
      // n2's certificate does not name 127.0.0.1, where it listens; n3 holds n1's certificate
      // (a node key in the wrong place): the others refuse both as servers.
      cluster.tls =
          id ->
              switch (id) {
                case "n2" -> new RaftTls(pki.nodeElsewhere("n2").keyManager(), pki.trustManager());
                case "n3" -> pki.raftTls("n1");
                default -> pki.raftTls(id);
              };
      startWatched(cluster);
      awaitRefusal(
          "n1 refused n2's server: its certificate does not name the address dialled",
          o ->
              o.by().equals("n1")
                  && o.refusal().direction() == Direction.OUTBOUND
                  && o.refusal().remoteAddress().equals(cluster.peers.get("n2"))
                  && o.refusal().reason().contains("127.0.0.1"));
      awaitRefusal(
          "n1 refused the server at n3's address presenting n1's certificate",
          o ->
              o.by().equals("n1")
                  && o.refusal().direction() == Direction.OUTBOUND
                  && o.refusal().nodeId().equals("n1")
                  && o.refusal().reason().contains("is the Raft address of node n3"));
    }
  }

  @Test
  void aClientCertificateIsNeverAdmittedToRaft() throws Exception {
    try (TestCluster cluster = tlsCluster(3)) {
      startWatched(cluster);
      ControlPlane leader = cluster.awaitLeader(WAIT);
      cluster.awaitRegistered(WAIT);
      // Even one whose CN is a member's id, with the admin role.
      TestPki.Identity admin = pki.client("n1", "admin");
      try (RaftClient client = rawClient(cluster.peers, admin.keyManager(), pki.trustManager())) {
        assertThatThrownBy(() -> sendRaw(client, create("from-a-client", 0, "")))
            .isInstanceOf(IOException.class);
      }
      awaitRefusal(
          "a member refused the client certificate",
          o ->
              o.refusal().direction() == Direction.INBOUND
                  && o.refusal().peerSubject().contains("OU=client")
                  && o.refusal().reason().contains("not a node certificate"));
      assertThat(hasVolume(leader, "from-a-client")).isFalse();
    }
  }

  @Test
  void aNodeAddedAsVoterIsAdmittedAndRefusedOnceRemoved() throws Exception {
    try (TestCluster cluster = tlsCluster(3)) {
      startWatched(cluster);
      ControlPlane leader = cluster.awaitLeader(WAIT);
      cluster.awaitRegistered(WAIT);
      ok(submit(leader, create("before-join", 1, "")));

      // n4 starts empty, knowing the voters; a member adds it. Its certificate is admitted by the
      // committed admission before the configuration names it (the leader catches it up first),
      // then by the configuration.
      String address = "127.0.0.1:" + TestCluster.freePort();
      ControlPlane n4 = cluster.start("n4", address);
      watch(n4);
      cluster.nodes.get("n2").addPeer("n4", address);
      await(WAIT, () -> n4.registered().isDone(), () -> "n4 registered");
      ok(n4.registered().join());
      for (ControlPlane cp : cluster.running()) {
        await(
            WAIT,
            () -> cp.raftPeers().keySet().equals(Set.of("n1", "n2", "n3", "n4")),
            () -> cp.nodeId() + " sees 4 voters, sees " + cp.raftPeers());
        assertThat(cp.allowedRaftPeers()).containsOnlyKeys("n1", "n2", "n3", "n4");
      }
      CommandResult fromN4 = ok(submit(n4, create("from-n4", 1, "n4")));
      assertThat(fromN4.getVolume().getOwner()).isEqualTo("n4");
      ControlPlaneTest.awaitVolumes(cluster.running(), leader.map().volumes());
      assertThat(refusals).as("n4 waiting to be added calls nobody").isEmpty();

      // A connection made with n4's certificate while it is a voter...
      TestPki.Identity n4Again = pki.node("n4");
      Map<String, String> voters = leader.raftPeers();
      try (RaftClient asN4 = rawClient(voters, n4Again.keyManager(), pki.trustManager())) {
        ok(sendRaw(asN4, create("raw-n4", 0, "")));

        // ...is refused on its next call once n4 has been removed, and so is every new one.
        leader.removePeer("n4");
        await(
            WAIT,
            () -> !leader.allowedRaftPeers().containsKey("n4"),
            () -> "n4 no longer allowed by the leader");
        assertThatThrownBy(() -> sendRaw(asN4, create("after-removal", 0, "")))
            .isInstanceOf(IOException.class);
      }
      awaitRefusal(
          "a call on n4's open connection refused",
          o -> o.refusal().nodeId().equals("n4") && o.refusal().stage() == Stage.CALL);
      assertThat(hasVolume(leader, "raw-n4")).isTrue();
      assertThat(hasVolume(leader, "after-removal")).isFalse();
    }
  }
}
