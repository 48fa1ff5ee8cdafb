package io.peerflash.client;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.NodeStatus;
import io.peerflash.proto.v1.Volume;
import io.peerflash.testing.TestCertificates;
import java.net.ServerSocket;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class PeerFlashClientTest {
  private final FakeVolumeService fake = new FakeVolumeService();
  private Server server;
  private ManagedChannel channel;
  private PeerFlashClient client;

  @BeforeEach
  void start() throws Exception {
    String name = InProcessServerBuilder.generateName();
    server =
        InProcessServerBuilder.forName(name)
            .addService(fake)
            .addService(fake.nodeService)
            .build()
            .start();
    channel = InProcessChannelBuilder.forName(name).build();
    client = new PeerFlashClient(channel);
  }

  @AfterEach
  void stop() throws Exception {
    client.close();
    channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
  }

  @Test
  void volumeLifecycle() {
    Volume created = client.createVolume("v1", 1 << 20, CacheMode.WRITE_THROUGH, 1);
    assertThat(created.getName()).isEqualTo("v1");
    assertThat(created.getPolicy().getMode()).isEqualTo(CacheMode.WRITE_THROUGH);
    assertThat(created.getPolicy().getReplicas()).isEqualTo(1);

    assertThat(client.getVolume("v1").getSizeBytes()).isEqualTo(1 << 20);
    assertThat(client.listVolumes()).extracting(Volume::getName).containsExactly("v1");

    Volume changed = client.setPolicy("v1", CacheMode.WRITE_AROUND, 0);
    assertThat(changed.getPolicy().getMode()).isEqualTo(CacheMode.WRITE_AROUND);

    client.deleteVolume("v1");
    assertThat(client.listVolumes()).isEmpty();
  }

  @Test
  void writeReadTrimRoundTrip() {
    client.createVolume("v", 64 * 1024, CacheMode.WRITE_BACK, 0);
    byte[] block = new byte[4096];
    Arrays.fill(block, (byte) 7);
    client.write("v", 4096, block);
    ByteBuffer direct = ByteBuffer.allocateDirect(512);
    direct.put(new byte[512]).flip();
    for (int i = 0; i < 512; i++) {
      direct.put(i, (byte) 9);
    }
    client.write("v", 8192, direct);

    assertThat(client.read("v", 4096, 4096)).isEqualTo(block);
    assertThat(client.readByteString("v", 8192, 512).byteAt(511)).isEqualTo((byte) 9);

    client.trim("v", 4096, 4096);
    assertThat(client.read("v", 4096, 4096)).containsOnly(0);
  }

  @Test
  void serverErrorsBecomePeerFlashExceptionsWithTheirCode() {
    PeerFlashException e =
        catchThrowableOfType(PeerFlashException.class, () -> client.getVolume("missing"));
    assertThat(e.code()).isEqualTo(Status.Code.NOT_FOUND);
    assertThat(e.status().getDescription()).isEqualTo("no volume named missing");
    assertThat(e).hasMessage("NOT_FOUND: no volume named missing");

    client.createVolume("v", 4096, CacheMode.WRITE_BACK, 0);
    assertThatThrownBy(() -> client.createVolume("v", 4096, CacheMode.WRITE_BACK, 0))
        .isInstanceOfSatisfying(
            PeerFlashException.class,
            x -> assertThat(x.code()).isEqualTo(Status.Code.ALREADY_EXISTS));
    assertThatThrownBy(() -> client.write("v", 100, new byte[512]))
        .isInstanceOfSatisfying(
            PeerFlashException.class,
            x -> assertThat(x.code()).isEqualTo(Status.Code.INVALID_ARGUMENT));
    assertThatThrownBy(() -> client.read("v", 0, 8192))
        .isInstanceOfSatisfying(
            PeerFlashException.class,
            x -> assertThat(x.code()).isEqualTo(Status.Code.OUT_OF_RANGE));
    assertThatThrownBy(() -> client.flush("missing"))
        .isInstanceOfSatisfying(
            PeerFlashException.class, x -> assertThat(x.code()).isEqualTo(Status.Code.NOT_FOUND));
  }

  @Test
  void deadlineAppliesToFlushWhenGiven() {
    client.createVolume("v", 4096, CacheMode.WRITE_BACK, 0);
    fake.flushDelayMs = 2000;
    PeerFlashClient impatient = client.withDeadline(Duration.ofMillis(100));
    assertThatThrownBy(() -> impatient.flush("v"))
        .isInstanceOfSatisfying(
            PeerFlashException.class,
            x -> assertThat(x.code()).isEqualTo(Status.Code.DEADLINE_EXCEEDED));
    // The view does not own the channel: closing it leaves the client usable.
    impatient.close();
    assertThat(client.getVolume("v").getName()).isEqualTo("v");
  }

  @Test
  void flushReportsDestagedBytes() {
    client.createVolume("v", 8192, CacheMode.WRITE_BACK, 0);
    client.write("v", 0, new byte[8192]);
    assertThat(client.flush("v").getDestagedBytes()).isEqualTo(8192);
    assertThat(client.getVolume("v").getDirtyBytes()).isZero();
  }

  @Test
  void statusComesFromTheNodeService() {
    client.createVolume("v", 4096, CacheMode.WRITE_BACK, 0);
    NodeStatus status = client.status();
    assertThat(status.getNodeId()).isEqualTo("fake-node");
    assertThat(status.getVolumesList()).extracting(Volume::getName).containsExactly("v");
  }

  @Test
  void unreachableTargetIsUnavailable() throws Exception {
    int port;
    try (ServerSocket s = new ServerSocket(0)) {
      port = s.getLocalPort();
    }
    try (PeerFlashClient c =
        PeerFlashClient.connect("127.0.0.1:" + port, TestCertificates.shared().adminSecurity())) {
      PeerFlashException e = catchThrowableOfType(PeerFlashException.class, c::listVolumes);
      assertThat(e.code()).isEqualTo(Status.Code.UNAVAILABLE);
      assertThat(e.getMessage()).startsWith("UNAVAILABLE");
    }
  }

  @Test
  void aClientOfTargetsMustSayHowItConnects() {
    // Nothing falls back to plaintext by itself.
    assertThatThrownBy(() -> PeerFlashClient.builder().target("127.0.0.1:7601").build())
        .isInstanceOf(IllegalStateException.class)
        .hasMessageContaining("ClientSecurity.certs(dir)")
        .hasMessageContaining("ClientSecurity.insecure()");
  }

  @Test
  void ownedChannelIsClosedWithTheClient() {
    ManagedChannel own = InProcessChannelBuilder.forName("unused").build();
    PeerFlashClient.builder().channel(own, true).build().close();
    assertThat(own.isShutdown()).isTrue();

    ManagedChannel borrowed = InProcessChannelBuilder.forName("unused").build();
    new PeerFlashClient(borrowed).close();
    assertThat(borrowed.isShutdown()).isFalse();
    borrowed.shutdownNow();
  }
}
