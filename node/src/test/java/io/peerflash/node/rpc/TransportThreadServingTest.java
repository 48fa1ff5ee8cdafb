package io.peerflash.node.rpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.peerflash.node.engine.CacheEngine;
import io.peerflash.node.engine.EngineConfig;
import io.peerflash.node.index.VolumeInfo;
import io.peerflash.node.storage.FileBackingStore;
import io.peerflash.proto.v1.ReadRequest;
import io.peerflash.proto.v1.VolumeServiceGrpc;
import io.peerflash.proto.v1.WriteRequest;
import io.peerflash.replication.data.TransportThreadCalls;
import io.peerflash.util.NamedThreadFactory;
import io.peerflash.util.Time;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.Executor;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Write and Read calls are served on the thread that delivers them when they need no wait, and hand
 * only what must wait to the request pool.
 */
class TransportThreadServingTest {
  private static final int BLOCK = CacheEngine.BLOCK;

  @TempDir Path dir;
  private CacheEngine engine;
  private Server server;
  private ManagedChannel channel;
  private VolumeServiceGrpc.VolumeServiceBlockingStub volumes;
  private final AtomicInteger handOffs = new AtomicInteger();
  private final ExecutorService pool =
      Executors.newFixedThreadPool(2, new NamedThreadFactory("test-rpc", true));

  @BeforeEach
  void start() throws Exception {
    engine =
        CacheEngine.open(
            EngineConfig.defaults(dir.resolve("data"), 16 << 20),
            new FileBackingStore(dir.resolve("shared")),
            Time.SYSTEM);
    engine.start();
    engine.createVolume("v", 1 << 20, VolumeInfo.CacheMode.WRITE_BACK, 0);
    Executor waits =
        r -> {
          handOffs.incrementAndGet();
          pool.execute(r);
        };
    String name = InProcessServerBuilder.generateName();
    InProcessServerBuilder builder =
        InProcessServerBuilder.forName(name).addService(new VolumeGrpcService(engine, waits, null));
    TransportThreadCalls.serve(builder, pool, VolumeGrpcService.transportThreadMethods());
    server = builder.build().start();
    channel = InProcessChannelBuilder.forName(name).build();
    volumes = VolumeServiceGrpc.newBlockingStub(channel);
  }

  @AfterEach
  void stop() {
    channel.shutdownNow();
    server.shutdownNow();
    pool.shutdownNow();
    engine.close();
  }

  private void write(long offset, byte[] data) {
    volumes.write(
        WriteRequest.newBuilder()
            .setVolume("v")
            .setOffset(offset)
            .setData(ByteString.copyFrom(data))
            .build());
  }

  private byte[] read(long offset, int length) {
    return volumes
        .read(ReadRequest.newBuilder().setVolume("v").setOffset(offset).setLength(length).build())
        .getData()
        .toByteArray();
  }

  private static byte[] filled(int n, int fill) {
    byte[] b = new byte[n];
    Arrays.fill(b, (byte) fill);
    return b;
  }

  @Test
  void writesAndHitsThatNeedNoWaitAreServedWithoutAHandOff() {
    write(0, filled(2 * BLOCK, 1));
    assertThat(read(0, 2 * BLOCK)).isEqualTo(filled(2 * BLOCK, 1));
    assertThat(handOffs).as("an aligned write and a cache hit").hasValue(0);

    // A partial block merges with its old content; a miss reads shared storage: both may wait.
    write(2 * BLOCK + 512, filled(512, 2));
    assertThat(handOffs).as("a partial-block write").hasValue(1);
    assertThat(read(8 * BLOCK, BLOCK)).isEqualTo(new byte[BLOCK]);
    assertThat(handOffs).as("a read miss").hasValue(2);
    assertThat(read(2 * BLOCK, BLOCK))
        .isEqualTo(
            ByteString.copyFrom(new byte[512])
                .concat(ByteString.copyFrom(filled(512, 2)))
                .concat(ByteString.copyFrom(new byte[BLOCK - 1024]))
                .toByteArray());
  }

  @Test
  void errorsOnTheTransportThreadKeepTheirStatus() {
    assertThatThrownBy(() -> write(1 << 20, filled(BLOCK, 1)))
        .isInstanceOfSatisfying(
            StatusRuntimeException.class,
            e -> {
              assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
              assertThat(e.getStatus().getDescription()).contains("1048576");
            });
    assertThatThrownBy(
            () ->
                volumes.read(
                    ReadRequest.newBuilder()
                        .setVolume("nope")
                        .setOffset(0)
                        .setLength(BLOCK)
                        .build()))
        .isInstanceOfSatisfying(
            StatusRuntimeException.class,
            e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.NOT_FOUND));
    assertThat(handOffs).hasValue(0);
  }
}
