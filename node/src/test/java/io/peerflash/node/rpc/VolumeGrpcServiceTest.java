package io.peerflash.node.rpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.grpc.stub.StreamObserver;
import io.peerflash.node.NodeConfig;
import io.peerflash.node.PeerFlashNode;
import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.CreateVolumeRequest;
import io.peerflash.proto.v1.FlushRequest;
import io.peerflash.proto.v1.GetStatusRequest;
import io.peerflash.proto.v1.GetVolumeRequest;
import io.peerflash.proto.v1.NodeServiceGrpc;
import io.peerflash.proto.v1.ReadRequest;
import io.peerflash.proto.v1.VolumePolicy;
import io.peerflash.proto.v1.VolumeServiceGrpc;
import io.peerflash.proto.v1.WriteRequest;
import io.peerflash.proto.v1.WriteResponse;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class VolumeGrpcServiceTest {
  @TempDir Path dir;
  private PeerFlashNode node;
  private ManagedChannel channel;
  private VolumeServiceGrpc.VolumeServiceBlockingStub volumes;

  @BeforeEach
  void start() throws Exception {
    start(Map.of());
  }

  private void start(Map<String, String> extra) throws Exception {
    String name = InProcessServerBuilder.generateName();
    Map<String, String> settings = new HashMap<>(extra);
    settings.put("id", "n1");
    settings.put("data-dir", dir.resolve("data").toString());
    settings.put("shared-dir", dir.resolve("shared").toString());
    settings.put("cache-size", "16MiB");
    // An in-process transport carries no TLS: the node runs plaintext, by explicit choice.
    settings.put("insecure", "true");
    node = PeerFlashNode.start(NodeConfig.fromMap(settings), InProcessServerBuilder.forName(name));
    channel = InProcessChannelBuilder.forName(name).build();
    volumes = VolumeServiceGrpc.newBlockingStub(channel);
  }

  @AfterEach
  void stop() {
    channel.shutdownNow();
    node.close();
  }

  /** Records a WriteStream's answers: code per request id, arrival order and time. */
  private static final class WriteResponses implements StreamObserver<WriteResponse> {
    final Map<Long, Integer> codes = new ConcurrentHashMap<>();
    final List<Long> order = new CopyOnWriteArrayList<>();
    final Map<Long, Long> answeredAtNanos = new ConcurrentHashMap<>();
    final CountDownLatch done = new CountDownLatch(1);

    @Override
    public void onNext(WriteResponse r) {
      answeredAtNanos.put(r.getRequestId(), System.nanoTime());
      codes.put(r.getRequestId(), r.getCode());
      order.add(r.getRequestId());
    }

    @Override
    public void onError(Throwable t) {
      done.countDown();
    }

    @Override
    public void onCompleted() {
      done.countDown();
    }
  }

  private void create(String name, long size) {
    create(name, size, CacheMode.WRITE_BACK);
  }

  private void create(String name, long size, CacheMode mode) {
    volumes.createVolume(
        CreateVolumeRequest.newBuilder()
            .setName(name)
            .setSizeBytes(size)
            .setPolicy(VolumePolicy.newBuilder().setMode(mode))
            .build());
  }

  @Test
  void writeReadFlushOverGrpc() {
    create("v", 1 << 20);
    byte[] data = new byte[8192];
    new Random(1).nextBytes(data);
    volumes.write(
        WriteRequest.newBuilder()
            .setVolume("v")
            .setOffset(4096)
            .setData(ByteString.copyFrom(data))
            .build());
    ByteString got =
        volumes
            .read(ReadRequest.newBuilder().setVolume("v").setOffset(4096).setLength(8192).build())
            .getData();
    assertThat(got.toByteArray()).isEqualTo(data);
    assertThat(
            volumes.getVolume(GetVolumeRequest.newBuilder().setName("v").build()).getDirtyBytes())
        .isEqualTo(8192);
    assertThat(volumes.flush(FlushRequest.newBuilder().setVolume("v").build()).getDestagedBytes())
        .isEqualTo(8192);
    var status =
        NodeServiceGrpc.newBlockingStub(channel).getStatus(GetStatusRequest.getDefaultInstance());
    assertThat(status.getNodeId()).isEqualTo("n1");
    assertThat(status.getVolumesCount()).isEqualTo(1);
  }

  @Test
  void errorsCarryStatusCodesAndNameTheLimit() {
    create("v", 1 << 20);
    assertCode(
        () -> volumes.getVolume(GetVolumeRequest.newBuilder().setName("nope").build()),
        Status.Code.NOT_FOUND,
        "nope");
    assertCode(() -> create("v", 1 << 20), Status.Code.ALREADY_EXISTS, "already exists");
    assertCode(
        () ->
            volumes.read(
                ReadRequest.newBuilder().setVolume("v").setOffset(0).setLength(4 << 20).build()),
        Status.Code.INVALID_ARGUMENT,
        "1 MiB");
    assertCode(
        () ->
            volumes.write(
                WriteRequest.newBuilder()
                    .setVolume("v")
                    .setOffset(7)
                    .setData(ByteString.copyFrom(new byte[512]))
                    .build()),
        Status.Code.INVALID_ARGUMENT,
        "512");
    assertCode(
        () ->
            volumes.createVolume(
                CreateVolumeRequest.newBuilder().setName("m").setSizeBytes(4096).build()),
        Status.Code.INVALID_ARGUMENT,
        "mode");
    // The node is still serving.
    assertThat(volumes.getVolume(GetVolumeRequest.newBuilder().setName("v").build()).getName())
        .isEqualTo("v");
  }

  @Test
  void rangesBeyondTwoToThe63AreInvalidArgumentNotCutOrWrapped() {
    create("v", 1 << 20);
    byte[] block = new byte[4096];
    new Random(2).nextBytes(block);
    volumes.write(
        WriteRequest.newBuilder()
            .setVolume("v")
            .setOffset(0)
            .setData(ByteString.copyFrom(block))
            .build());
    // Its low 32 bits are 4096: a cast to int once served one block for it.
    assertCode(
        () ->
            volumes.read(
                ReadRequest.newBuilder()
                    .setVolume("v")
                    .setOffset(0)
                    .setLength(0xFFFFFFFF00001000L)
                    .build()),
        Status.Code.INVALID_ARGUMENT,
        "read length 18446744069414588416 exceeds the limit of 1048576 bytes");
    // offset + length wraps past 2^63: once acknowledged, and never destaged.
    assertCode(
        () ->
            volumes.write(
                WriteRequest.newBuilder()
                    .setVolume("v")
                    .setOffset(Long.MAX_VALUE - 4095)
                    .setData(ByteString.copyFrom(block))
                    .build()),
        Status.Code.INVALID_ARGUMENT,
        "offset 9223372036854771712 is outside volume 'v' of 1048576 bytes");
    assertCode(
        () ->
            volumes.read(
                ReadRequest.newBuilder().setVolume("v").setOffset(-4096L).setLength(4096).build()),
        Status.Code.INVALID_ARGUMENT,
        "offset 18446744073709547520 is outside");
    assertThat(
            volumes.getVolume(GetVolumeRequest.newBuilder().setName("v").build()).getDirtyBytes())
        .isEqualTo(4096);
    assertThat(
            volumes
                .withDeadlineAfter(10, TimeUnit.SECONDS)
                .flush(FlushRequest.newBuilder().setVolume("v").build())
                .getDestagedBytes())
        .isEqualTo(4096);
  }

  @Test
  void writeStreamAnswersEveryRequestById() throws Exception {
    create("v", 4 << 20);
    int n = 500;
    WriteResponses responses = new WriteResponses();
    StreamObserver<WriteRequest> requests =
        VolumeServiceGrpc.newStub(channel).writeStream(responses);
    for (int i = 0; i < n; i++) {
      long offset = (long) (i % 1000) * 4096;
      requests.onNext(
          WriteRequest.newBuilder()
              .setVolume(i == 7 ? "missing" : "v")
              .setOffset(offset)
              .setRequestId(i)
              .setData(ByteString.copyFrom(new byte[4096]))
              .build());
    }
    requests.onCompleted();
    assertThat(responses.done.await(30, TimeUnit.SECONDS)).isTrue();
    Map<Long, Integer> codes = responses.codes;
    assertThat(codes).hasSize(n);
    assertThat(codes.get(7L)).isEqualTo(Status.Code.NOT_FOUND.value());
    assertThat(
            codes.entrySet().stream()
                .filter(e -> e.getKey() != 7L)
                .allMatch(e -> e.getValue() == 0))
        .isTrue();
  }

  @Test
  void aSlowWriteOnAStreamDoesNotHoldUpTheWritesBehindIt() throws Exception {
    // Requests are delivered on the transport thread and each runs on the request pool: a write
    // that waits (here for 300 ms shared storage) must not delay the next one on the stream.
    stop();
    start(Map.of("storage-latency-us", "300000"));
    create("slow", 1 << 20, CacheMode.WRITE_THROUGH);
    create("fast", 1 << 20, CacheMode.WRITE_BACK);
    WriteResponses responses = new WriteResponses();
    StreamObserver<WriteRequest> requests =
        VolumeServiceGrpc.newStub(channel).writeStream(responses);
    long t0 = System.nanoTime();
    for (String volume : new String[] {"slow", "fast"}) {
      requests.onNext(
          WriteRequest.newBuilder()
              .setVolume(volume)
              .setRequestId(volume.equals("slow") ? 1 : 2)
              .setData(ByteString.copyFrom(new byte[4096]))
              .build());
    }
    requests.onCompleted();
    assertThat(responses.done.await(30, TimeUnit.SECONDS)).isTrue();
    assertThat(responses.codes).containsEntry(1L, 0).containsEntry(2L, 0);
    assertThat(responses.order).containsExactly(2L, 1L);
    assertThat(responses.answeredAtNanos.get(2L) - t0)
        .isLessThan(TimeUnit.MILLISECONDS.toNanos(250));
    assertThat(responses.answeredAtNanos.get(1L) - t0)
        .isGreaterThan(TimeUnit.MILLISECONDS.toNanos(300));
  }

  @Test
  void healthServiceReportsServing() {
    var health = HealthGrpc.newBlockingStub(channel);
    assertThat(health.check(HealthCheckRequest.newBuilder().build()).getStatus())
        .isEqualTo(HealthCheckResponse.ServingStatus.SERVING);
  }

  @Test
  void reflectionListsThePeerFlashServices() throws Exception {
    java.util.List<String> names = new java.util.concurrent.CopyOnWriteArrayList<>();
    CountDownLatch done = new CountDownLatch(1);
    StreamObserver<io.grpc.reflection.v1.ServerReflectionRequest> req =
        io.grpc.reflection.v1.ServerReflectionGrpc.newStub(channel)
            .serverReflectionInfo(
                new StreamObserver<>() {
                  @Override
                  public void onNext(io.grpc.reflection.v1.ServerReflectionResponse r) {
                    r.getListServicesResponse()
                        .getServiceList()
                        .forEach(s -> names.add(s.getName()));
                  }

                  @Override
                  public void onError(Throwable t) {
                    done.countDown();
                  }

                  @Override
                  public void onCompleted() {
                    done.countDown();
                  }
                });
    req.onNext(
        io.grpc.reflection.v1.ServerReflectionRequest.newBuilder().setListServices("").build());
    req.onCompleted();
    assertThat(done.await(10, TimeUnit.SECONDS)).isTrue();
    assertThat(names)
        .contains(
            "peerflash.v1.VolumeService", "peerflash.v1.NodeService", "grpc.health.v1.Health");
  }

  private static void assertCode(Runnable call, Status.Code code, String messagePart) {
    assertThatThrownBy(call::run)
        .isInstanceOf(StatusRuntimeException.class)
        .satisfies(
            e -> {
              Status s = ((StatusRuntimeException) e).getStatus();
              assertThat(s.getCode()).isEqualTo(code);
              assertThat(s.getDescription()).contains(messagePart);
            });
  }
}
