package io.peerflash.faults;

import static org.assertj.core.api.Assertions.assertThat;

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
import io.peerflash.faults.DockerCluster.Node;
import io.peerflash.proto.v1.BlockImage;
import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.ClusterServiceGrpc;
import io.peerflash.proto.v1.DeleteVolumeRequest;
import io.peerflash.proto.v1.ListVolumesRequest;
import io.peerflash.proto.v1.MoveVolumeRequest;
import io.peerflash.proto.v1.ReadRequest;
import io.peerflash.proto.v1.ReplicaServiceGrpc;
import io.peerflash.proto.v1.ReplicateAck;
import io.peerflash.proto.v1.ReplicateRequest;
import io.peerflash.proto.v1.Volume;
import io.peerflash.proto.v1.VolumeServiceGrpc;
import io.peerflash.proto.v1.WriteRequest;
import io.peerflash.security.GrpcTls;
import io.peerflash.security.Identity;
import io.peerflash.security.TlsDirectory;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Container scenario {@code untrusted-callers}: the trust boundary of a 3-node cluster running with
 * mutual TLS, probed from this host the way an outsider on the cluster's network would. A volume
 * with one replica holds known data; callers without a certificate, with one of another CA, with a
 * node certificate used for administration, with an io certificate for another volume, and a forged
 * replica copy sent with the valid certificate of a node that is not the owner (claiming the
 * owner's id and epoch and a sequence above everything) are all refused with the expected code;
 * then the volume moves to the replica the forger aimed at, and its data, read back and on shared
 * storage after Flush, is still the known data. The Raft port refuses a node certificate of the
 * cluster's CA whose node is not in the Raft configuration, and admits a member's.
 */
@Tag("container")
class UntrustedCallersIT {
  private static final String SCENARIO = "untrusted-callers";
  private static final String VOLUME = "vm";
  private static final int VOLUME_BYTES = 1 << 20;
  private static final int BLOCK = 4096;
  private static final Duration WAIT = Duration.ofSeconds(60);

  private DockerCluster cluster;
  private ClusterCertificates foreignCa;
  private final List<ManagedChannel> channels = new ArrayList<>();

  @AfterEach
  void removeCluster() {
    channels.forEach(ManagedChannel::shutdownNow);
    if (foreignCa != null) {
      foreignCa.close();
    }
    if (cluster != null) {
      cluster.close();
    }
  }

  @Test
  void everyUntrustedCallerIsRefusedAndTheDataIsUnchanged() throws Exception {
    cluster = DockerCluster.builder(SCENARIO).nodes(3).start();
    ClusterCertificates certs = cluster.certificates();
    Path otherIo = certs.issueClient("other-io", Identity.Role.IO, List.of("other"), false);
    Path outsiderNode = certs.issueNode("n9", List.of());
    foreignCa = ClusterCertificates.create("elsewhere");
    Path foreignAdmin = foreignCa.issueClient("admin", Identity.Role.ADMIN, List.of(), false);

    // The known data, on a volume with one replica, owned by the node it was created through.
    Node entry = cluster.nodes().get(0);
    byte[] model = new byte[VOLUME_BYTES];
    new Random(18).nextBytes(model);
    try (PeerFlashClient admin = cluster.newClient(entry, Duration.ofSeconds(30))) {
      ConsistencyChecker.retry(
          "create volume " + VOLUME,
          Duration.ofMinutes(1),
          () -> admin.createVolume(VOLUME, VOLUME_BYTES, CacheMode.WRITE_BACK, 1));
      admin.write(VOLUME, 0, model);
    }
    awaitTrue(
        "volume " + VOLUME + " has its replica",
        () ->
            cluster
                .volume(VOLUME)
                .filter(v -> v.getReplicaSetCount() == 1 && !v.getOwner().isEmpty())
                .isPresent());
    Volume before = cluster.client().getVolume(VOLUME);
    Node owner = cluster.node(before.getOwner());
    Node replica = cluster.node(before.getReplicas(0).getNode());
    Node forger =
        cluster.nodes().stream().filter(n -> n != owner && n != replica).findFirst().orElseThrow();
    WriteRequest overwrite =
        WriteRequest.newBuilder()
            .setVolume(VOLUME)
            .setOffset(0)
            .setData(ByteString.copyFrom(new byte[BLOCK]))
            .build();
    List<String> refused = new ArrayList<>();

    // (a) No certificate: plaintext, and TLS without a client certificate. The handshake fails.
    ManagedChannel plain = track(NettyChannelBuilder.forTarget(owner.target()).usePlaintext());
    assertHandshakeRefused("plaintext write", () -> volumes(plain).write(overwrite), refused);
    ManagedChannel noClientCert =
        track(
            NettyChannelBuilder.forTarget(owner.target())
                .sslContext(
                    GrpcSslContexts.forClient()
                        .trustManager(cluster.adminSecurity().directory().serverVerifier())
                        .build()));
    assertHandshakeRefused(
        "TLS write without a client certificate",
        () -> volumes(noClientCert).write(overwrite),
        refused);

    // (b) A certificate of another CA, even with the admin role.
    ManagedChannel foreign = track(ClientSecurity.certs(foreignAdmin), owner);
    assertHandshakeRefused(
        "delete by an admin of another CA", () -> volumes(foreign).deleteVolume(delete()), refused);

    // (c) A node's certificate used for administration: delete and move.
    ManagedChannel asNode = trackNode(forger, owner);
    assertCode(
        "delete with node " + forger.id() + "'s certificate",
        Status.Code.PERMISSION_DENIED,
        () -> volumes(asNode).deleteVolume(delete()),
        refused);
    assertCode(
        "move with node " + forger.id() + "'s certificate",
        Status.Code.PERMISSION_DENIED,
        () ->
            ClusterServiceGrpc.newBlockingStub(asNode)
                .withDeadlineAfter(10, TimeUnit.SECONDS)
                .moveVolume(
                    MoveVolumeRequest.newBuilder().setVolume(VOLUME).setTo(forger.id()).build()),
        refused);

    // (d) An io client scoped to another volume: no write, no read, and the volume is not listed.
    ManagedChannel otherIoChannel = track(ClientSecurity.certs(otherIo), owner);
    assertCode(
        "write by an io client of volume 'other'",
        Status.Code.PERMISSION_DENIED,
        () -> volumes(otherIoChannel).write(overwrite),
        refused);
    assertCode(
        "read by an io client of volume 'other'",
        Status.Code.PERMISSION_DENIED,
        () ->
            volumes(otherIoChannel)
                .read(
                    ReadRequest.newBuilder()
                        .setVolume(VOLUME)
                        .setOffset(0)
                        .setLength(BLOCK)
                        .build()),
        refused);
    assertThat(
            volumes(otherIoChannel)
                .listVolumes(ListVolumesRequest.getDefaultInstance())
                .getVolumesList())
        .as("volumes listed to an io client of volume 'other'")
        .isEmpty();

    // (e) A forged replica copy: the valid certificate of a node that is not the owner, sent to
    // the replica with the owner's id and epoch and a sequence number above everything.
    byte[] forged = new byte[BLOCK];
    Arrays.fill(forged, (byte) 0x66);
    ManagedChannel toReplica = trackNode(forger, replica);
    ReplicateAck ack =
        replicateOnce(
            toReplica,
            ReplicateRequest.newBuilder()
                .setBatchId(1)
                .setVolume(VOLUME)
                .setEpoch(before.getEpoch())
                .setOwnerId(owner.id())
                .addBlocks(
                    BlockImage.newBuilder()
                        .setBlock(0)
                        .setSeq(Long.MAX_VALUE / 2)
                        .setData(ByteString.copyFrom(forged)))
                .build());
    assertThat(Status.fromCodeValue(ack.getCode()).getCode())
        .as(
            "a copy claiming owner %s sent with node %s's certificate: %s",
            owner.id(), forger.id(), ack.getMessage())
        .isEqualTo(Status.Code.PERMISSION_DENIED);
    refused.add("forged replica copy: PERMISSION_DENIED");

    // (f) Raft: a node certificate of this CA whose node is not a member is refused at the
    // handshake; a member's certificate gets through to the Raft server (which has no such method).
    ManagedChannel raftOutsider = trackRaft(outsiderNode, owner);
    assertHandshakeRefused(
        "Raft connection of non-member n9",
        () -> volumes(raftOutsider).listVolumes(ListVolumesRequest.getDefaultInstance()),
        refused);
    awaitTrue(
        owner.id() + " logs its refusal of n9 on the Raft port",
        () -> cluster.logs(owner).contains("node n9 is not in the Raft configuration"));
    ManagedChannel raftMember = trackRaft(certs.directory(forger.id()), owner);
    assertThat(
            codeOf(() -> volumes(raftMember).listVolumes(ListVolumesRequest.getDefaultInstance())))
        .as("a member's certificate on the Raft port passes the handshake")
        .isEqualTo(Status.Code.UNIMPLEMENTED);

    // The volume moves to the replica the forger aimed at; its data is still the known data.
    try (PeerFlashClient admin = cluster.newClient(Duration.ofSeconds(60))) {
      assertThat(admin.getVolume(VOLUME).getOwner())
          .as("owner before the move")
          .isEqualTo(owner.id());
      assertThat(admin.moveVolume(VOLUME, replica.id()).getOwner())
          .as("owner after the move")
          .isEqualTo(replica.id());
      assertThat(Arrays.equals(admin.read(VOLUME, 0, VOLUME_BYTES), model))
          .as("reads after the move equal the known data")
          .isTrue();
      admin.flush(VOLUME);
    }
    assertThat(Arrays.equals(cluster.sharedFile(VOLUME), model))
        .as("shared storage after Flush equals the known data")
        .isTrue();

    // Each refusal on the client port is an audit line naming who.
    awaitTrue(
        "audit lines of the refusals",
        () -> {
          String ownerLog = cluster.logs(owner);
          String replicaLog = cluster.logs(replica);
          return ownerLog.contains("refused node '" + forger.id() + "' DeleteVolume '" + VOLUME)
              && ownerLog.contains("refused node '" + forger.id() + "' MoveVolume")
              && ownerLog.contains("refused client 'other-io' Write '" + VOLUME)
              && replicaLog.contains("refused node '" + forger.id() + "' Replicate '" + VOLUME);
        });

    String line =
        SCENARIO
            + ": "
            + refused.size()
            + " untrusted calls refused, data unchanged after a move (reads and shared storage)";
    System.out.println(line);
    refused.forEach(r -> System.out.println("  " + r));
    ConsistencyChecker.appendSummary(line);
  }

  // ----------------------------------------------------------------------------------------------
  // Helpers

  private ManagedChannel track(NettyChannelBuilder b) {
    ManagedChannel ch = b.build();
    channels.add(ch);
    return ch;
  }

  private ManagedChannel track(ClientSecurity security, Node to) {
    ManagedChannel ch = security.open(to.target());
    channels.add(ch);
    return ch;
  }

  /** A channel to {@code to}'s client port presenting {@code as}'s node certificate. */
  private ManagedChannel trackNode(Node as, Node to) throws Exception {
    TlsDirectory d = TlsDirectory.open(cluster.certificates().directory(as.id()));
    return track(NettyChannelBuilder.forTarget(to.target()).sslContext(GrpcTls.clientContext(d)));
  }

  /** A channel to {@code to}'s Raft port presenting the node certificate in {@code identity}. */
  private ManagedChannel trackRaft(Path identity, Node to) throws Exception {
    TlsDirectory d = TlsDirectory.open(identity);
    return track(
        NettyChannelBuilder.forTarget(to.ip() + ":" + DockerCluster.RAFT_PORT)
            .sslContext(GrpcTls.clientContext(d)));
  }

  private static VolumeServiceGrpc.VolumeServiceBlockingStub volumes(ManagedChannel ch) {
    return VolumeServiceGrpc.newBlockingStub(ch).withDeadlineAfter(10, TimeUnit.SECONDS);
  }

  private static DeleteVolumeRequest delete() {
    return DeleteVolumeRequest.newBuilder().setName(VOLUME).build();
  }

  private static Status.Code codeOf(Supplier<?> call) {
    try {
      call.get();
      return Status.Code.OK;
    } catch (StatusRuntimeException e) {
      return e.getStatus().getCode();
    } catch (PeerFlashException e) {
      return e.code();
    }
  }

  private static void assertCode(
      String what, Status.Code expected, Supplier<?> call, List<String> refused) {
    assertThat(codeOf(call)).as(what).isEqualTo(expected);
    refused.add(what + ": " + expected);
  }

  /**
   * The call fails before reaching any service: the TLS handshake is refused, which a gRPC client
   * sees as UNAVAILABLE (the connection closes), or UNAUTHENTICATED when the client's own TLS stack
   * reports the server's alert.
   */
  private static void assertHandshakeRefused(String what, Supplier<?> call, List<String> refused) {
    Status.Code code = codeOf(call);
    assertThat(code).as(what).isIn(Status.Code.UNAVAILABLE, Status.Code.UNAUTHENTICATED);
    refused.add(what + ": handshake refused (" + code + ")");
  }

  /** Sends one replication request on a stream of its own and returns its ack. */
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

  private static void awaitTrue(String what, BooleanSupplier condition) {
    long deadline = System.nanoTime() + WAIT.toNanos();
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("timed out after " + WAIT + " waiting for: " + what);
      }
      DockerCluster.sleep(250);
    }
  }
}
