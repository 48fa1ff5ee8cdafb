package io.peerflash.node.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.GrpcSslContexts;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import io.peerflash.client.ClientSecurity;
import io.peerflash.client.PeerFlashClient;
import io.peerflash.client.PeerFlashException;
import io.peerflash.proto.v1.BlockImage;
import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.ClusterServiceGrpc;
import io.peerflash.proto.v1.CreateVolumeRequest;
import io.peerflash.proto.v1.DeleteVolumeRequest;
import io.peerflash.proto.v1.GetVolumeRequest;
import io.peerflash.proto.v1.ListClusterEventsRequest;
import io.peerflash.proto.v1.ListVolumesRequest;
import io.peerflash.proto.v1.MoveVolumeRequest;
import io.peerflash.proto.v1.ReadRequest;
import io.peerflash.proto.v1.ReplicaServiceGrpc;
import io.peerflash.proto.v1.ReplicateAck;
import io.peerflash.proto.v1.ReplicateRequest;
import io.peerflash.proto.v1.SyncCopiesRequest;
import io.peerflash.proto.v1.Volume;
import io.peerflash.proto.v1.VolumePolicy;
import io.peerflash.proto.v1.VolumeServiceGrpc;
import io.peerflash.proto.v1.WriteRequest;
import io.peerflash.security.Identity.Role;
import io.peerflash.security.TlsDirectory;
import io.peerflash.testing.TestCertificates;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.LoggerFactory;

/**
 * The trust boundary of a cluster running with mutual TLS: on the port clients and peers share,
 * callers without a certificate, with one from another CA, with a node certificate used for an
 * admin call, with an io certificate outside its volumes or a read-only one writing, and a forged
 * replica copy or sync sent with a valid certificate of a node that is not the owner, are all
 * refused, and the volume's data (reads, and shared storage after a move and a flush) is unchanged.
 * Every refusal is an audit line naming who.
 */
class TrustBoundaryTest {
  private static final long VOLUME = 1 << 20;
  private static final int BLOCK = 4096;

  @TempDir Path dir;
  private InProcessCluster cluster;
  private TestCertificates certs;
  private Path foreignAdmin;
  private ListAppender<ILoggingEvent> audit;

  @BeforeEach
  void start() throws Exception {
    audit = new ListAppender<>();
    audit.start();
    ((Logger) LoggerFactory.getLogger("peerflash.audit")).addAppender(audit);
    certs = TestCertificates.in(dir.resolve("certs"));
    certs.admin();
    certs.client("other-io", Role.IO, List.of("other"), List.of(), false);
    certs.client("reader", Role.READ_ONLY);
    certs.client("viewer-io", Role.IO, List.of("vm1"), List.of(), true);
    foreignAdmin = TestCertificates.in(dir.resolve("foreign")).admin();
    cluster = new InProcessCluster(dir, 3, Map.of(), certs);
  }

  @AfterEach
  void stop() {
    if (cluster != null) {
      cluster.close();
    }
    ((Logger) LoggerFactory.getLogger("peerflash.audit")).detachAppender(audit);
  }

  private PeerFlashClient client(String identity, String node) throws Exception {
    return PeerFlashClient.builder()
        .target(
            node == null
                ? String.join(",", cluster.clientAddress.values())
                : cluster.clientAddress.get(node))
        .security(ClientSecurity.certs(certs.dir().resolve(identity)))
        .deadline(Duration.ofSeconds(20))
        .build();
  }

  private ManagedChannel channel(Path identity, String node) throws Exception {
    return ClientSecurity.certs(identity).open(cluster.clientAddress.get(node));
  }

  /** A node's own client pair, used by the test as a client would use a stolen-free identity. */
  private ManagedChannel asNode(String identityNode, String node) throws Exception {
    TlsDirectory d = TlsDirectory.open(certs.dir().resolve(identityNode));
    return NettyChannelBuilder.forTarget(cluster.clientAddress.get(node))
        .sslContext(io.peerflash.security.GrpcTls.clientContext(d))
        .build();
  }

  private static Status.Code codeOf(Runnable call) {
    try {
      call.run();
      return Status.Code.OK;
    } catch (StatusRuntimeException e) {
      return e.getStatus().getCode();
    } catch (PeerFlashException e) {
      return e.code();
    }
  }

  private static VolumeServiceGrpc.VolumeServiceBlockingStub volumes(ManagedChannel ch) {
    return VolumeServiceGrpc.newBlockingStub(ch).withDeadlineAfter(10, TimeUnit.SECONDS);
  }

  @Test
  void everyUntrustedCallerIsRefusedAndTheDataIsUnchanged() throws Exception {
    byte[] model = new byte[(int) VOLUME];
    new Random(5).nextBytes(model);
    String owner;
    try (PeerFlashClient admin = client("admin", "n1")) {
      admin.createVolume("vm1", VOLUME, CacheMode.WRITE_BACK, 1);
      admin.write("vm1", 0, model);
      owner = admin.getVolume("vm1").getOwner();
    }
    assertThat(owner).isEqualTo("n1");
    WriteRequest overwrite =
        WriteRequest.newBuilder()
            .setVolume("vm1")
            .setOffset(0)
            .setData(ByteString.copyFrom(new byte[BLOCK]))
            .build();

    // No certificate: plaintext, and TLS without a client certificate.
    ManagedChannel plain =
        NettyChannelBuilder.forTarget(cluster.clientAddress.get("n1")).usePlaintext().build();
    assertThat(codeOf(() -> volumes(plain).write(overwrite))).isNotEqualTo(Status.Code.OK);
    plain.shutdownNow();
    ManagedChannel noClientCert =
        NettyChannelBuilder.forTarget(cluster.clientAddress.get("n1"))
            .sslContext(
                GrpcSslContexts.forClient()
                    .trustManager(TlsDirectory.open(certs.dir().resolve("admin")).serverVerifier())
                    .build())
            .build();
    assertThat(codeOf(() -> volumes(noClientCert).write(overwrite))).isNotEqualTo(Status.Code.OK);
    noClientCert.shutdownNow();

    // A certificate of another CA, even with the admin role.
    ManagedChannel foreign = channel(foreignAdmin, "n1");
    assertThat(codeOf(() -> volumes(foreign).write(overwrite))).isNotEqualTo(Status.Code.OK);
    assertThat(
            codeOf(
                () ->
                    volumes(foreign)
                        .deleteVolume(DeleteVolumeRequest.newBuilder().setName("vm1").build())))
        .isNotEqualTo(Status.Code.OK);
    foreign.shutdownNow();

    // A node's certificate used for administration, or to move a volume itself.
    ManagedChannel node2 = asNode("n2", "n1");
    assertThat(
            codeOf(
                () ->
                    volumes(node2)
                        .deleteVolume(DeleteVolumeRequest.newBuilder().setName("vm1").build())))
        .isEqualTo(Status.Code.PERMISSION_DENIED);
    assertThat(
            codeOf(
                () ->
                    volumes(node2)
                        .createVolume(
                            CreateVolumeRequest.newBuilder()
                                .setName("x")
                                .setSizeBytes(VOLUME)
                                .setPolicy(VolumePolicy.newBuilder().setMode(CacheMode.WRITE_BACK))
                                .build())))
        .isEqualTo(Status.Code.PERMISSION_DENIED);
    assertThat(codeOf(() -> volumes(node2).write(overwrite)))
        .isEqualTo(Status.Code.PERMISSION_DENIED);
    assertThat(
            codeOf(
                () ->
                    ClusterServiceGrpc.newBlockingStub(node2)
                        .withDeadlineAfter(10, TimeUnit.SECONDS)
                        .moveVolume(
                            MoveVolumeRequest.newBuilder().setVolume("vm1").setTo("n3").build())))
        .isEqualTo(Status.Code.PERMISSION_DENIED);
    node2.shutdownNow();

    // An io certificate for another volume; a read-only one; an io one read-only for data.
    ManagedChannel otherIo = channel(certs.dir().resolve("other-io"), "n1");
    assertThat(codeOf(() -> volumes(otherIo).write(overwrite)))
        .isEqualTo(Status.Code.PERMISSION_DENIED);
    assertThat(
            codeOf(
                () ->
                    volumes(otherIo)
                        .read(
                            ReadRequest.newBuilder()
                                .setVolume("vm1")
                                .setOffset(0)
                                .setLength(BLOCK)
                                .build())))
        .isEqualTo(Status.Code.PERMISSION_DENIED);
    // A stat outside its scope is refused the same way whether the volume exists or not, so an
    // io client cannot learn which names exist.
    for (String name : List.of("vm1", "no-such-volume")) {
      assertThatThrownBy(
              () -> volumes(otherIo).getVolume(GetVolumeRequest.newBuilder().setName(name).build()))
          .isInstanceOfSatisfying(
              StatusRuntimeException.class,
              e -> {
                assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.PERMISSION_DENIED);
                assertThat(e.getStatus().getDescription())
                    .isEqualTo("client 'other-io' may not use volume '" + name + "'");
              });
    }
    assertThat(
            volumes(otherIo).listVolumes(ListVolumesRequest.getDefaultInstance()).getVolumesList())
        .as("an io client sees only its volumes")
        .isEmpty();
    assertThat(
            ClusterServiceGrpc.newBlockingStub(otherIo)
                .withDeadlineAfter(10, TimeUnit.SECONDS)
                .listClusterEvents(ListClusterEventsRequest.getDefaultInstance())
                .getEventsList())
        .as("nor the events of other volumes or of members (their details name volumes)")
        .isEmpty();
    otherIo.shutdownNow();
    ManagedChannel reader = channel(certs.dir().resolve("reader"), "n1");
    assertThat(codeOf(() -> volumes(reader).write(overwrite)))
        .isEqualTo(Status.Code.PERMISSION_DENIED);
    assertThat(
            volumes(reader).listVolumes(ListVolumesRequest.getDefaultInstance()).getVolumesCount())
        .isEqualTo(1);
    assertThat(
            ClusterServiceGrpc.newBlockingStub(reader)
                .withDeadlineAfter(10, TimeUnit.SECONDS)
                .listClusterEvents(ListClusterEventsRequest.getDefaultInstance())
                .getEventsList())
        .as("a read-only client sees the whole history")
        .extracting(e -> e.getKind() + " " + e.getVolume())
        .contains("EVENT_VOLUME_CREATED vm1");
    reader.shutdownNow();
    try (PeerFlashClient viewer = client("viewer-io", "n1")) {
      assertThat(viewer.read("vm1", 0, BLOCK)).isEqualTo(Arrays.copyOf(model, BLOCK));
      assertThat(codeOf(() -> viewer.write("vm1", 0, new byte[BLOCK])))
          .isEqualTo(Status.Code.PERMISSION_DENIED);
    }

    // A forged replica copy: a valid certificate of a node that is not the owner, sent to the
    // replica with the owner's id and epoch and a sequence above everything.
    Volume vm1;
    try (PeerFlashClient admin = client("admin", null)) {
      vm1 = admin.getVolume("vm1");
    }
    String replica = vm1.getReplicasList().get(0).getNode();
    String forger = List.of("n2", "n3").stream().filter(n -> !n.equals(replica)).findFirst().get();
    byte[] forged = new byte[BLOCK];
    Arrays.fill(forged, (byte) 0x66);
    ManagedChannel toReplica = asNode(forger, replica);
    ReplicateAck ack = replicateOnce(toReplica, forgedCopy(1, vm1, owner, forged));
    assertThat(Status.fromCodeValue(ack.getCode()).getCode())
        .as("a copy claiming the owner from another node's certificate: %s", ack.getMessage())
        .isEqualTo(Status.Code.PERMISSION_DENIED);
    ReplicateAck asItself = replicateOnce(toReplica, forgedCopy(2, vm1, forger, forged));
    assertThat(asItself.getCode())
        .as("a copy from a node the map does not name owner: %s", asItself.getMessage())
        .isNotZero();

    // The same forged copies on the replica's replica link: refused the same way; an admin
    // certificate or a plaintext connection is not even taken as a link.
    int linkPort = cluster.node(replica).replicaLinkPort();
    assertThat(linkPort).as("the replica's link port").isPositive();
    ReplicateAck onLink = linkOnce(forger, replica, linkPort, forgedCopy(3, vm1, owner, forged));
    assertThat(Status.fromCodeValue(onLink.getCode()).getCode())
        .as("on the link, a copy claiming the owner: %s", onLink.getMessage())
        .isEqualTo(Status.Code.PERMISSION_DENIED);
    assertThat(linkOnce(forger, replica, linkPort, forgedCopy(4, vm1, forger, forged)).getCode())
        .as("on the link, a copy from a node the map does not name owner")
        .isNotZero();
    assertThatThrownBy(
            () -> linkOnce("admin", replica, linkPort, forgedCopy(5, vm1, owner, forged)))
        .as("an admin certificate on the link")
        .hasMessageContaining("UNAVAILABLE");
    try (java.net.Socket raw = new java.net.Socket("127.0.0.1", linkPort)) {
      raw.setSoTimeout(10_000);
      java.io.DataOutputStream out = new java.io.DataOutputStream(raw.getOutputStream());
      out.writeLong(0x5046524c_00000001L); // the link's hello, without TLS
      out.write(forgedCopy(6, vm1, owner, forged).toByteArray());
      byte[] answer;
      try {
        answer = raw.getInputStream().readAllBytes(); // until the node closes it
      } catch (java.net.SocketException reset) {
        answer = new byte[0]; // closed with bytes unread: a reset instead of an end of stream
      }
      assertThat(answer).as("a plaintext link is never answered with the hello").hasSizeLessThan(8);
    }

    // A sync of the replica's copies (a FLUSH's) asked by that node: refused as well. Only the
    // owner, with its own certificate, may ask; an admin certificate may not call a peer method.
    assertThat(codeOf(() -> syncCopies(toReplica, vm1, owner)))
        .as("a sync claiming the owner from another node's certificate")
        .isEqualTo(Status.Code.PERMISSION_DENIED);
    assertThat(codeOf(() -> syncCopies(toReplica, vm1, forger)))
        .as("a sync from a node the map does not name owner")
        .isEqualTo(Status.Code.FAILED_PRECONDITION);
    toReplica.shutdownNow();
    ManagedChannel adminToReplica = channel(certs.dir().resolve("admin"), replica);
    assertThat(codeOf(() -> syncCopies(adminToReplica, vm1, owner)))
        .isEqualTo(Status.Code.PERMISSION_DENIED);
    adminToReplica.shutdownNow();
    ManagedChannel ownerToReplica = asNode(owner, replica);
    assertThat(codeOf(() -> syncCopies(ownerToReplica, vm1, owner)))
        .as("the owner's own sync")
        .isEqualTo(Status.Code.OK);
    ownerToReplica.shutdownNow();

    // The volume moves to the replica the forger aimed at: its data is still the model's.
    try (PeerFlashClient admin = client("admin", null)) {
      assertThat(admin.moveVolume("vm1", replica).getOwner()).isEqualTo(replica);
      byte[] all = admin.read("vm1", 0, (int) VOLUME);
      assertThat(Arrays.equals(all, model)).as("reads after the move equal the model").isTrue();
      admin.flush("vm1");
    }
    assertThat(Arrays.equals(Files.readAllBytes(dir.resolve("shared").resolve("vm1")), model))
        .as("shared storage equals the model")
        .isTrue();

    // Each refusal is an audit line naming who asked.
    List<String> lines = audit.list.stream().map(ILoggingEvent::getFormattedMessage).toList();
    assertThat(lines).anyMatch(l -> l.startsWith("refused node 'n2' DeleteVolume 'vm1'"));
    assertThat(lines).anyMatch(l -> l.startsWith("refused client 'other-io' Write 'vm1'"));
    assertThat(lines).anyMatch(l -> l.startsWith("refused client 'other-io' GetVolume 'vm1'"));
    assertThat(lines)
        .anyMatch(l -> l.startsWith("refused client 'other-io' GetVolume 'no-such-volume'"));
    assertThat(lines).anyMatch(l -> l.startsWith("refused client 'reader' Write 'vm1'"));
    assertThat(lines).anyMatch(l -> l.startsWith("refused node '" + forger + "' Replicate 'vm1'"));
    assertThat(lines).anyMatch(l -> l.startsWith("refused node '" + forger + "' SyncCopies 'vm1'"));
    assertThat(lines).anyMatch(l -> l.startsWith("client 'admin' MoveVolume 'vm1': OK"));
  }

  /**
   * A copy of block 0 of {@code volume} claiming {@code ownerId} at the volume's epoch, with a
   * sequence above everything the owner has written.
   */
  private static ReplicateRequest forgedCopy(
      long batchId, Volume volume, String ownerId, byte[] data) {
    return ReplicateRequest.newBuilder()
        .setBatchId(batchId)
        .setVolume(volume.getName())
        .setEpoch(volume.getEpoch())
        .setOwnerId(ownerId)
        .addBlocks(
            BlockImage.newBuilder()
                .setBlock(0)
                .setSeq(Long.MAX_VALUE / 2)
                .setData(ByteString.copyFrom(data)))
        .build();
  }

  /** Asks the replica at the other end of {@code ch} to sync its copies of {@code volume}. */
  private static void syncCopies(ManagedChannel ch, Volume volume, String ownerId) {
    ReplicaServiceGrpc.newBlockingStub(ch)
        .withDeadlineAfter(10, TimeUnit.SECONDS)
        .syncCopies(
            SyncCopiesRequest.newBuilder()
                .setVolume(volume.getName())
                .setEpoch(volume.getEpoch())
                .setOwnerId(ownerId)
                .build());
  }

  /** Sends one replication request on a stream of its own and returns its ack. */
  /**
   * Sends one request on the replica link of {@code node} as {@code identity} and returns its ack;
   * fails with the stream's status if the link refuses the connection.
   */
  private ReplicateAck linkOnce(String identity, String node, int port, ReplicateRequest req)
      throws Exception {
    io.grpc.netty.shaded.io.netty.channel.EventLoopGroup loop =
        new io.grpc.netty.shaded.io.netty.channel.nio.NioEventLoopGroup(1);
    CompletableFuture<ReplicateAck> ack = new CompletableFuture<>();
    try {
      io.peerflash.replication.data.CopyTransport link =
          new io.peerflash.replication.link.LinkCopyTransport(
              node,
              "127.0.0.1",
              () -> CompletableFuture.completedFuture(port),
              io.peerflash.security.GrpcTls.linkClientContext(
                  TlsDirectory.open(certs.dir().resolve(identity)), node),
              loop,
              io.grpc.netty.shaded.io.netty.channel.socket.nio.NioSocketChannel.class,
              1 << 20,
              null);
      io.peerflash.replication.data.CopyTransport.Stream stream =
          link.open(
              new io.peerflash.replication.data.CopyTransport.Listener() {
                @Override
                public void ready() {}

                @Override
                public void ack(ReplicateAck a) {
                  ack.complete(a);
                }

                @Override
                public void failed(Status why) {
                  ack.completeExceptionally(why.asRuntimeException());
                }
              });
      stream.send(req);
      try {
        return ack.get(10, TimeUnit.SECONDS);
      } finally {
        stream.cancel(Status.CANCELLED);
      }
    } finally {
      loop.shutdownGracefully(0, 1, TimeUnit.SECONDS);
    }
  }

  private static ReplicateAck replicateOnce(ManagedChannel ch, ReplicateRequest req)
      throws Exception {
    CompletableFuture<ReplicateAck> ack = new CompletableFuture<>();
    StreamObserver<ReplicateRequest> requests =
        ReplicaServiceGrpc.newStub(ch)
            .withDeadlineAfter(10, TimeUnit.SECONDS)
            .replicate(
                new StreamObserver<>() {
                  @Override
                  public void onNext(ReplicateAck value) {
                    ack.complete(value);
                  }

                  @Override
                  public void onError(Throwable t) {
                    ack.completeExceptionally(t);
                  }

                  @Override
                  public void onCompleted() {
                    ack.completeExceptionally(new IllegalStateException("no ack"));
                  }
                });
    requests.onNext(req);
    try {
      return ack.get(10, TimeUnit.SECONDS);
    } finally {
      requests.onCompleted();
    }
  }
}
