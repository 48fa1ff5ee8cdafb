package io.peerflash.node.cluster;

import static org.assertj.core.api.Assertions.assertThat;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.peerflash.client.ClientSecurity;
import io.peerflash.client.PeerFlashClient;
import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.ClusterServiceGrpc;
import io.peerflash.proto.v1.ClusterServiceGrpc.ClusterServiceBlockingStub;
import io.peerflash.proto.v1.ForwardedFlushRequest;
import io.peerflash.proto.v1.ForwardedIoServiceGrpc;
import io.peerflash.proto.v1.ForwardedIoServiceGrpc.ForwardedIoServiceBlockingStub;
import io.peerflash.proto.v1.ForwardedReadRequest;
import io.peerflash.proto.v1.ForwardedWriteRequest;
import io.peerflash.proto.v1.ForwardedZeroRequest;
import io.peerflash.proto.v1.MoveVolumeRequest;
import io.peerflash.security.GrpcTls;
import io.peerflash.security.Identity.Role;
import io.peerflash.security.TlsDirectory;
import io.peerflash.testing.TestCertificates;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.LoggerFactory;

/**
 * The forwarded-I/O methods (what a node's NBD front end sends a volume's owner for a client) are
 * open only to node certificates of current cluster members. Forged forwarded calls, from client
 * certificates of every role and from a valid node certificate of a node that is not in the map,
 * are refused with PERMISSION_DENIED, leave the data unchanged, and are audit lines naming the
 * caller and the client it claimed to act for. A member's forwarded write is served, and the
 * owner's audit log names the client it was forwarded for.
 */
class ForwardedIoTrustTest {
  private static final int VOLUME = 1 << 20;
  private static final int BLOCK = 4096;

  @TempDir Path dir;
  private InProcessCluster cluster;
  private TestCertificates certs;
  private ListAppender<ILoggingEvent> audit;
  private final List<ManagedChannel> channels = new ArrayList<>();

  @BeforeEach
  void start() throws Exception {
    audit = new ListAppender<>();
    audit.start();
    ((Logger) LoggerFactory.getLogger("peerflash.audit")).addAppender(audit);
    certs = TestCertificates.in(dir.resolve("certs"));
    certs.admin();
    cluster = new InProcessCluster(dir, 3, Map.of(), certs);
  }

  @AfterEach
  void stop() {
    channels.forEach(ManagedChannel::shutdownNow);
    if (cluster != null) {
      cluster.close();
    }
    ((Logger) LoggerFactory.getLogger("peerflash.audit")).detachAppender(audit);
  }

  /** The admin client, through n1. */
  private PeerFlashClient admin() {
    return PeerFlashClient.builder()
        .target(cluster.clientAddress.get("n1"))
        .security(certs.adminSecurity())
        .deadline(Duration.ofSeconds(20))
        .build();
  }

  private ForwardedIoServiceBlockingStub asClient(Path identity) throws Exception {
    ManagedChannel ch = ClientSecurity.certs(identity).open(cluster.clientAddress.get("n1"));
    channels.add(ch);
    return ForwardedIoServiceGrpc.newBlockingStub(ch).withDeadlineAfter(10, TimeUnit.SECONDS);
  }

  /** A channel to n1 presenting node {@code id}'s certificate, as a peer's channel does. */
  private ManagedChannel nodeChannel(String id) throws Exception {
    ManagedChannel ch =
        NettyChannelBuilder.forTarget(cluster.clientAddress.get("n1"))
            .sslContext(GrpcTls.clientContext(TlsDirectory.open(certs.node(id))))
            .build();
    channels.add(ch);
    return ch;
  }

  private ForwardedIoServiceBlockingStub asNode(String id) throws Exception {
    return ForwardedIoServiceGrpc.newBlockingStub(nodeChannel(id))
        .withDeadlineAfter(10, TimeUnit.SECONDS);
  }

  private static Status.Code codeOf(Supplier<?> call) {
    try {
      call.get();
      return Status.Code.OK;
    } catch (StatusRuntimeException e) {
      return e.getStatus().getCode();
    }
  }

  /**
   * A member's call, retried while the owner answers UNAVAILABLE (a lease renewal late on a loaded
   * machine), as a forwarding node retries it.
   */
  private static <T> T retrying(Supplier<T> call) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
    while (true) {
      try {
        return call.get();
      } catch (StatusRuntimeException e) {
        if (e.getStatus().getCode() != Status.Code.UNAVAILABLE || System.nanoTime() > deadline) {
          throw e;
        }
        Thread.sleep(50);
      }
    }
  }

  private List<String> auditLines() {
    return audit.list.stream().map(ILoggingEvent::getFormattedMessage).toList();
  }

  @Test
  void forgedForwardedCallsAreRefusedAndOnlyMembersMayForward() throws Exception {
    byte[] model = new byte[VOLUME];
    new Random(3).nextBytes(model);
    try (PeerFlashClient admin = admin()) {
      admin.createVolume("vm1", VOLUME, CacheMode.WRITE_BACK, 1);
      admin.write("vm1", 0, model);
      assertThat(admin.getVolume("vm1").getOwner()).isEqualTo("n1");
    }
    ForwardedWriteRequest forged =
        ForwardedWriteRequest.newBuilder()
            .setVolume("vm1")
            .setOffset(0)
            .setData(ByteString.copyFrom(new byte[BLOCK]))
            .setOnBehalfOf("client 'mallory'")
            .build();
    ForwardedReadRequest read =
        ForwardedReadRequest.newBuilder().setVolume("vm1").setOffset(0).setLength(BLOCK).build();

    // Client certificates of every role, the admin's included: clients use VolumeService or NBD.
    List<Path> clients =
        List.of(
            certs.admin(), certs.client("io-all", Role.IO), certs.client("reader", Role.READ_ONLY));
    for (Path client : clients) {
      ForwardedIoServiceBlockingStub stub = asClient(client);
      assertThat(codeOf(() -> stub.write(forged)))
          .as(client.toString())
          .isEqualTo(Status.Code.PERMISSION_DENIED);
      assertThat(codeOf(() -> stub.read(read))).isEqualTo(Status.Code.PERMISSION_DENIED);
      assertThat(
              codeOf(
                  () ->
                      stub.zero(
                          ForwardedZeroRequest.newBuilder()
                              .setVolume("vm1")
                              .setOffset(0)
                              .setLength(BLOCK)
                              .build())))
          .isEqualTo(Status.Code.PERMISSION_DENIED);
      assertThat(
              codeOf(() -> stub.flush(ForwardedFlushRequest.newBuilder().setVolume("vm1").build())))
          .isEqualTo(Status.Code.PERMISSION_DENIED);
    }

    // A valid node certificate of the cluster's CA whose node is not in the cluster map.
    ForwardedIoServiceBlockingStub outsider = asNode("n9");
    assertThat(codeOf(() -> outsider.write(forged))).isEqualTo(Status.Code.PERMISSION_DENIED);
    assertThat(codeOf(() -> outsider.read(read))).isEqualTo(Status.Code.PERMISSION_DENIED);

    assertThat(auditLines())
        .anySatisfy(
            l ->
                assertThat(l)
                    .contains("client 'admin'")
                    .contains("Write")
                    .contains("'vm1'")
                    .contains("member nodes only")
                    .contains("claimed to forward for")
                    .contains("mallory"))
        .anySatisfy(
            l ->
                assertThat(l)
                    .contains("n9")
                    .contains("Write")
                    .contains("'vm1'")
                    .contains("not a member of the cluster map")
                    .contains("claimed to forward for")
                    .contains("mallory"));

    // Nothing of the forged calls reached the data.
    ForwardedIoServiceBlockingStub member = asNode("n2");
    byte[] now =
        retrying(
                () ->
                    member.read(
                        read.toBuilder().setLength(VOLUME).setOnBehalfOf("client 'test'").build()))
            .getData()
            .toByteArray();
    assertThat(now).isEqualTo(model);

    // A member's forwarded write is served; the owner's audit log names the client once.
    byte[] block = new byte[BLOCK];
    Arrays.fill(block, (byte) 0x77);
    retrying(
        () ->
            member.write(
                ForwardedWriteRequest.newBuilder()
                    .setVolume("vm1")
                    .setOffset(BLOCK)
                    .setData(ByteString.copyFrom(block))
                    .setOnBehalfOf("client 'vm-42'")
                    .build()));
    byte[] back =
        retrying(
                () ->
                    member.read(
                        read.toBuilder().setOffset(BLOCK).setOnBehalfOf("client 'vm-42'").build()))
            .getData()
            .toByteArray();
    assertThat(back).isEqualTo(block);
    assertThat(auditLines())
        .anySatisfy(
            l ->
                assertThat(l)
                    .contains("n2")
                    .contains(" for ")
                    .contains("vm-42")
                    .contains("ForwardedIo")
                    .contains("'vm1'"));
  }

  /**
   * A move another node forwards to the owner (the node a client called checked the client's role)
   * is taken only from a member of the cluster map: a valid node certificate of a node that is not
   * in the map (never added, or removed and not yet revoked) moves nothing.
   */
  @Test
  void onlyAMemberMayForwardAClientsMove() throws Exception {
    try (PeerFlashClient admin = admin()) {
      admin.createVolume("vm2", VOLUME, CacheMode.WRITE_BACK, 1);
      assertThat(admin.getVolume("vm2").getOwner()).isEqualTo("n1");
      MoveVolumeRequest forged =
          MoveVolumeRequest.newBuilder()
              .setVolume("vm2")
              .setTo("n3")
              .setForwarded(true)
              .setOnBehalfOf("client 'mallory'")
              .build();
      ClusterServiceBlockingStub outsider =
          ClusterServiceGrpc.newBlockingStub(nodeChannel("n9"))
              .withDeadlineAfter(10, TimeUnit.SECONDS);
      assertThat(codeOf(() -> outsider.moveVolume(forged)))
          .isEqualTo(Status.Code.PERMISSION_DENIED);
      // Refused before the request reached the node's cluster service: nothing was started.
      assertThat(admin.getVolume("vm2").getOwner()).isEqualTo("n1");
      assertThat(auditLines())
          .anySatisfy(
              l ->
                  assertThat(l)
                      .contains("n9")
                      .contains("MoveVolume")
                      .contains("'vm2'")
                      .contains("only members may forward a client's move")
                      .contains("mallory"));

      // A member's forwarded move is carried out; the audit line names the client it was for.
      ClusterServiceBlockingStub member =
          ClusterServiceGrpc.newBlockingStub(nodeChannel("n2"))
              .withDeadlineAfter(60, TimeUnit.SECONDS);
      retrying(() -> member.moveVolume(forged.toBuilder().setOnBehalfOf("client 'ops'").build()));
      assertThat(admin.getVolume("vm2").getOwner()).isEqualTo("n3");
      assertThat(auditLines())
          .anySatisfy(
              l ->
                  assertThat(l)
                      .startsWith("node 'n2' for ")
                      .contains("ops")
                      .endsWith("MoveVolume 'vm2': OK"));
    }
  }
}
