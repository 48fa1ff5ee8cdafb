package io.peerflash.node.rpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.ServerInterceptors;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.StreamObserver;
import io.peerflash.node.NodeConfig;
import io.peerflash.node.PeerFlashNode;
import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.CreateVolumeRequest;
import io.peerflash.proto.v1.GetStatusRequest;
import io.peerflash.proto.v1.GetVolumeRequest;
import io.peerflash.proto.v1.NodeServiceGrpc;
import io.peerflash.proto.v1.NodeStatus;
import io.peerflash.proto.v1.VolumePolicy;
import io.peerflash.proto.v1.VolumeServiceGrpc;
import io.peerflash.testing.TestCertificates;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.LoggerFactory;

/**
 * Errors a client can read: a status echoes what it refused, bounded and printable, through a real
 * node over a socket (mutual TLS, as admin); and a handler's own failure is answered INTERNAL and
 * logged, never silent.
 */
class StatusGuardTest {
  @TempDir Path dir;
  private final TestCertificates certs = TestCertificates.shared();
  private PeerFlashNode node;
  private Server server;
  private ManagedChannel channel;
  private ListAppender<ILoggingEvent> logs;

  @AfterEach
  void tearDown() throws Exception {
    if (channel != null) {
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
    if (server != null) {
      server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
    if (node != null) {
      node.close();
    }
    if (logs != null) {
      ((Logger) LoggerFactory.getLogger(StatusGuard.class)).detachAppender(logs);
    }
  }

  private VolumeServiceGrpc.VolumeServiceBlockingStub nodeStub() throws Exception {
    node =
        PeerFlashNode.start(
            NodeConfig.fromMap(
                Map.of(
                    "id",
                    "n1",
                    "listen",
                    "127.0.0.1:0",
                    "data-dir",
                    dir.resolve("data").toString(),
                    "shared-dir",
                    dir.resolve("shared").toString(),
                    "cache-size",
                    "8MiB",
                    "certs",
                    certs.node("n1").toString())));
    channel =
        certs
            .adminSecurity()
            .apply(NettyChannelBuilder.forAddress("127.0.0.1", node.port()))
            .build();
    return VolumeServiceGrpc.newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS);
  }

  @Test
  void aHugeNameIsRefusedWithAShortStatusNotAnHttp2Error() throws Exception {
    VolumeServiceGrpc.VolumeServiceBlockingStub stub = nodeStub();
    String huge = "a".repeat(100_000);
    assertThatThrownBy(() -> stub.getVolume(GetVolumeRequest.newBuilder().setName(huge).build()))
        .isInstanceOfSatisfying(
            StatusRuntimeException.class,
            e -> {
              assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.NOT_FOUND);
              assertThat(e.getStatus().getDescription())
                  .hasSizeLessThan(200)
                  .contains("(100000 characters)");
            });
    assertThatThrownBy(
            () ->
                stub.createVolume(
                    CreateVolumeRequest.newBuilder()
                        .setName(huge)
                        .setSizeBytes(1 << 20)
                        .setPolicy(VolumePolicy.newBuilder().setMode(CacheMode.WRITE_BACK))
                        .build()))
        .isInstanceOfSatisfying(
            StatusRuntimeException.class,
            e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT));
  }

  @Test
  void controlCharactersAreEscapedNotEchoed() throws Exception {
    VolumeServiceGrpc.VolumeServiceBlockingStub stub = nodeStub();
    assertThatThrownBy(
            () ->
                stub.createVolume(
                    CreateVolumeRequest.newBuilder()
                        .setName("vm\u0000\n1")
                        .setSizeBytes(1 << 20)
                        .setPolicy(VolumePolicy.newBuilder().setMode(CacheMode.WRITE_BACK))
                        .build()))
        .isInstanceOfSatisfying(
            StatusRuntimeException.class,
            e -> {
              assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
              assertThat(e.getStatus().getDescription())
                  .contains("'vm\\u0000\\u000a1'")
                  .doesNotContain("\u0000")
                  .doesNotContain("\n");
            });
  }

  @Test
  void aHandlerThatThrowsIsAnsweredInternalAndLogged() throws Exception {
    logs = new ListAppender<>();
    logs.start();
    ((Logger) LoggerFactory.getLogger(StatusGuard.class)).addAppender(logs);
    NodeServiceGrpc.NodeServiceImplBase broken =
        new NodeServiceGrpc.NodeServiceImplBase() {
          @Override
          public void getStatus(GetStatusRequest req, StreamObserver<NodeStatus> out) {
            throw new IllegalStateException("a bug in a handler");
          }
        };
    server =
        NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
            .addService(ServerInterceptors.intercept(broken, new StatusGuard()))
            .build()
            .start();
    channel = NettyChannelBuilder.forAddress("127.0.0.1", server.getPort()).usePlaintext().build();
    assertThatThrownBy(
            () ->
                NodeServiceGrpc.newBlockingStub(channel)
                    .withDeadlineAfter(10, TimeUnit.SECONDS)
                    .getStatus(GetStatusRequest.getDefaultInstance()))
        .isInstanceOfSatisfying(
            StatusRuntimeException.class,
            e -> {
              assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INTERNAL);
              assertThat(e.getStatus().getDescription()).contains("a bug in a handler");
            });
    assertThat(logs.list)
        .anySatisfy(
            event -> {
              assertThat(event.getLevel()).isEqualTo(Level.ERROR);
              assertThat(event.getFormattedMessage()).contains("GetStatus");
              assertThat(event.getThrowableProxy()).isNotNull();
            });
  }
}
