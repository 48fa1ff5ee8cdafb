package io.peerflash.client;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.grpc.stub.StreamObserver;
import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.CreateVolumeRequest;
import io.peerflash.proto.v1.DeleteVolumeRequest;
import io.peerflash.proto.v1.DeleteVolumeResponse;
import io.peerflash.proto.v1.FlushRequest;
import io.peerflash.proto.v1.FlushResponse;
import io.peerflash.proto.v1.GetVolumeRequest;
import io.peerflash.proto.v1.ListVolumesRequest;
import io.peerflash.proto.v1.ListVolumesResponse;
import io.peerflash.proto.v1.ReadRequest;
import io.peerflash.proto.v1.ReadResponse;
import io.peerflash.proto.v1.SetPolicyRequest;
import io.peerflash.proto.v1.TrimRequest;
import io.peerflash.proto.v1.TrimResponse;
import io.peerflash.proto.v1.Volume;
import io.peerflash.proto.v1.VolumeServiceGrpc;
import io.peerflash.proto.v1.WriteRequest;
import io.peerflash.proto.v1.WriteResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Redirect-following and failover against in-process fake nodes keyed by address. */
@Timeout(30)
class ClusterClientTest {
  private static final String A = "127.0.0.1:17601";
  private static final String B = "127.0.0.1:17602";
  private static final String C = "127.0.0.1:17603";
  private static final String DEAD = "127.0.0.1:17609";

  private final String prefix = InProcessServerBuilder.generateName() + "/";
  private final Map<String, Node> nodes = new HashMap<>();
  private final List<ManagedChannel> opened = new ArrayList<>();
  private final List<PeerFlashClient> clients = new ArrayList<>();

  /**
   * A fake cluster node: a {@link FakeVolumeService} that, while {@link #redirect} names an owner,
   * refuses every I/O call with FAILED_PRECONDITION and the owner trailer, like a cluster node that
   * does not own the volume.
   */
  static final class Node extends VolumeServiceGrpc.VolumeServiceImplBase {
    final FakeVolumeService store = new FakeVolumeService();
    final AtomicInteger redirects = new AtomicInteger();
    final AtomicInteger calls = new AtomicInteger();
    volatile Function<Integer, String> redirect = n -> null; // redirect number -> owner or null
    Server server;

    private boolean redirected(StreamObserver<?> response) {
      calls.incrementAndGet();
      String owner = redirect.apply(redirects.get() + 1);
      if (owner == null) {
        return false;
      }
      redirects.incrementAndGet();
      response.onError(redirectError(owner));
      return true;
    }

    static RuntimeException redirectError(String owner) {
      Metadata trailers = new Metadata();
      trailers.put(PeerFlashException.OWNER_KEY, owner);
      return Status.FAILED_PRECONDITION
          .withDescription("not the owner of the volume")
          .asRuntimeException(trailers);
    }

    @Override
    public void createVolume(CreateVolumeRequest request, StreamObserver<Volume> response) {
      calls.incrementAndGet();
      store.createVolume(request, response);
    }

    @Override
    public void listVolumes(
        ListVolumesRequest request, StreamObserver<ListVolumesResponse> response) {
      calls.incrementAndGet();
      store.listVolumes(request, response);
    }

    @Override
    public void getVolume(GetVolumeRequest request, StreamObserver<Volume> response) {
      if (!redirected(response)) {
        store.getVolume(request, response);
      }
    }

    @Override
    public void deleteVolume(
        DeleteVolumeRequest request, StreamObserver<DeleteVolumeResponse> response) {
      if (!redirected(response)) {
        store.deleteVolume(request, response);
      }
    }

    @Override
    public void setPolicy(SetPolicyRequest request, StreamObserver<Volume> response) {
      if (!redirected(response)) {
        store.setPolicy(request, response);
      }
    }

    @Override
    public void write(WriteRequest request, StreamObserver<WriteResponse> response) {
      if (!redirected(response)) {
        store.write(request, response);
      }
    }

    @Override
    public void read(ReadRequest request, StreamObserver<ReadResponse> response) {
      if (!redirected(response)) {
        store.read(request, response);
      }
    }

    @Override
    public void flush(FlushRequest request, StreamObserver<FlushResponse> response) {
      if (!redirected(response)) {
        store.flush(request, response);
      }
    }

    @Override
    public void trim(TrimRequest request, StreamObserver<TrimResponse> response) {
      if (!redirected(response)) {
        store.trim(request, response);
      }
    }

    /** The stream fails as a whole, with the trailer, at the first write this node refuses. */
    @Override
    public StreamObserver<WriteRequest> writeStream(StreamObserver<WriteResponse> response) {
      StreamObserver<WriteRequest> inner = store.writeStream(response);
      return new StreamObserver<>() {
        boolean failed;

        @Override
        public void onNext(WriteRequest request) {
          if (!failed && !redirected(response)) {
            inner.onNext(request);
          } else {
            failed = true;
          }
        }

        @Override
        public void onError(Throwable t) {}

        @Override
        public void onCompleted() {
          if (!failed) {
            inner.onCompleted();
          }
        }
      };
    }
  }

  private Node start(String address) throws Exception {
    Node node = new Node();
    node.server =
        InProcessServerBuilder.forName(prefix + address)
            .addService(node)
            .addService(node.store.nodeService)
            .build()
            .start();
    nodes.put(address, node);
    return node;
  }

  private synchronized ManagedChannel open(String address) {
    ManagedChannel ch = InProcessChannelBuilder.forName(prefix + address).build();
    opened.add(ch);
    return ch;
  }

  private PeerFlashClient client(String targets, Duration retryBudget) {
    PeerFlashClient c =
        PeerFlashClient.builder()
            .target(targets)
            .channelFactory(this::open)
            .retryBudget(retryBudget)
            .deadline(Duration.ofSeconds(10))
            .build();
    clients.add(c);
    return c;
  }

  @AfterEach
  void stop() throws Exception {
    for (PeerFlashClient c : clients) {
      c.close();
    }
    for (Node n : nodes.values()) {
      n.server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }

  private static byte[] block(int fill) {
    byte[] b = new byte[4096];
    Arrays.fill(b, (byte) fill);
    return b;
  }

  @Test
  void followsTheOwnerTrailerAndCachesTheOwner() throws Exception {
    Node a = start(A);
    Node b = start(B);
    b.store.createVolume(
        CreateVolumeRequest.newBuilder().setName("v").setSizeBytes(1 << 20).build(), new NoOp<>());
    a.redirect = n -> "n2@" + B;

    PeerFlashClient c = client(A, Duration.ofSeconds(5));
    c.write("v", 4096, block(7));
    assertThat(a.redirects.get()).isEqualTo(1);
    assertThat(c.ownerOf("v")).isEqualTo(B);
    // Later calls go straight to the owner.
    assertThat(c.read("v", 4096, 4096)).isEqualTo(block(7));
    c.trim("v", 4096, 4096);
    assertThat(c.flush("v").getDestagedBytes()).isEqualTo(4096);
    assertThat(c.getVolume("v").getName()).isEqualTo("v");
    assertThat(a.redirects.get()).isEqualTo(1);
    assertThat(Arrays.copyOfRange(b.store.contents("v"), 4096, 8192)).containsOnly(0);
  }

  @Test
  void channelsToEveryAddressAreClosedWithTheClient() throws Exception {
    Node a = start(A);
    start(B);
    a.redirect = n -> "n2@" + B;
    PeerFlashClient c = client(A, Duration.ofSeconds(5));
    c.createVolume("x", 4096, CacheMode.WRITE_BACK, 0); // on A: not a volume I/O call
    assertThatThrownBy(() -> c.getVolume("x")) // redirected to B, which has no such volume
        .isInstanceOfSatisfying(
            PeerFlashException.class, e -> assertThat(e.code()).isEqualTo(Status.Code.NOT_FOUND));
    assertThat(opened).hasSize(2);
    c.close();
    assertThat(opened).allMatch(ManagedChannel::isShutdown);
  }

  @Test
  void deadTargetIsSkippedForTheNextOne() throws Exception {
    Node b = start(B);
    PeerFlashClient c = client(DEAD + "," + B, Duration.ofSeconds(5));
    c.createVolume("v", 1 << 20, CacheMode.WRITE_BACK, 0);
    c.write("v", 0, block(1));
    assertThat(c.status().getNodeId()).isEqualTo("fake-node");
    assertThat(b.store.contents("v")[0]).isEqualTo((byte) 1);
  }

  @Test
  void ridesOutTheOwnersDeathUntilANewOwnerIsNamed() throws Exception {
    Node a = start(A);
    Node b = start(B);
    Node c = start(C);
    for (Node n : List.of(b, c)) {
      n.store.createVolume(
          CreateVolumeRequest.newBuilder().setName("v").setSizeBytes(1 << 20).build(),
          new NoOp<>());
    }
    a.redirect = n -> "n2@" + B;
    PeerFlashClient client = client(A, Duration.ofSeconds(10));
    client.write("v", 0, block(1));
    assertThat(client.ownerOf("v")).isEqualTo(B);

    // B dies. For its next three answers A still names B (failure not yet detected), then C.
    b.server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    int before = a.redirects.get();
    a.redirect = n -> n - before <= 3 ? "n2@" + B : "n3@" + C;

    client.write("v", 4096, block(2));
    assertThat(client.ownerOf("v")).isEqualTo(C);
    assertThat(c.store.contents("v")[4096]).isEqualTo((byte) 2);
    assertThat(a.redirects.get() - before).isEqualTo(4);
  }

  @Test
  void neverReachedTargetsFailFastWithUnavailable() {
    PeerFlashClient c = client(DEAD + ",127.0.0.1:17608", Duration.ofSeconds(15));
    long start = System.nanoTime();
    PeerFlashException e = catchThrowableOfType(PeerFlashException.class, c::listVolumes);
    assertThat(e.code()).isEqualTo(Status.Code.UNAVAILABLE);
    assertThat(e.getMessage()).contains("no node answered");
    assertThat(Duration.ofNanos(System.nanoTime() - start)).isLessThan(Duration.ofSeconds(5));
  }

  @Test
  void onceReachedDeadTargetsAreRetriedWithinTheBudgetOnly() throws Exception {
    Node a = start(A);
    PeerFlashClient c = client(A + "," + DEAD, Duration.ofMillis(500));
    c.createVolume("v", 1 << 20, CacheMode.WRITE_BACK, 0);
    a.server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);

    long start = System.nanoTime();
    PeerFlashException e =
        catchThrowableOfType(PeerFlashException.class, () -> c.write("v", 0, block(1)));
    Duration took = Duration.ofNanos(System.nanoTime() - start);
    assertThat(e.code()).isEqualTo(Status.Code.UNAVAILABLE);
    assertThat(e.getMessage()).contains("retry budget exhausted");
    assertThat(took)
        .isGreaterThanOrEqualTo(Duration.ofMillis(400))
        .isLessThan(Duration.ofSeconds(5));
  }

  @Test
  void aRestartedNodeIsFoundAgainWithinTheBudget() throws Exception {
    Node a = start(A);
    PeerFlashClient c = client(A, Duration.ofSeconds(10));
    c.createVolume("v", 1 << 20, CacheMode.WRITE_BACK, 0);
    a.server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    // The "restart": a new server under the same address, 300 ms later.
    Thread restarter =
        new Thread(
            () -> {
              try {
                Thread.sleep(300);
                Node again = start(A);
                again.store.createVolume(
                    CreateVolumeRequest.newBuilder().setName("v").setSizeBytes(1 << 20).build(),
                    new NoOp<>());
              } catch (Exception e) {
                throw new IllegalStateException(e);
              }
            },
            "test-restarter");
    restarter.start();
    c.write("v", 0, block(5));
    restarter.join();
    assertThat(nodes.get(A).store.contents("v")[0]).isEqualTo((byte) 5);
  }

  @Test
  void redirectLoopsAreBoundedByTheBudget() throws Exception {
    Node a = start(A);
    Node b = start(B);
    a.redirect = n -> "n2@" + B;
    b.redirect = n -> "n1@" + A;
    PeerFlashClient c = client(A, Duration.ofMillis(300));
    PeerFlashException e =
        catchThrowableOfType(PeerFlashException.class, () -> c.read("v", 0, 512));
    assertThat(e.code()).isEqualTo(Status.Code.FAILED_PRECONDITION);
    assertThat(e.owner()).isNotNull();
    // A few redirects per round, a handful of rounds: bounded, no spinning.
    assertThat(a.redirects.get() + b.redirects.get()).isBetween(3, 40);
  }

  @Test
  void redirectWithoutAChannelFactoryIsReportedWithTheOwner() throws Exception {
    Node a = start(A);
    a.redirect = n -> "n2@" + B;
    ManagedChannel ch = open(A);
    PeerFlashClient c = new PeerFlashClient(ch);
    PeerFlashException e =
        catchThrowableOfType(PeerFlashException.class, () -> c.read("v", 0, 512));
    assertThat(e.code()).isEqualTo(Status.Code.FAILED_PRECONDITION);
    assertThat(e.owner()).isEqualTo("n2@" + B);
    assertThat(PeerFlashException.ownerAddress(e.owner())).isEqualTo(B);
    ch.shutdownNow();
  }

  @Test
  void streamRedirectFailsTheFutureWithTheOwner() throws Exception {
    Node a = start(A);
    a.redirect = n -> "n2@" + B;
    PeerFlashClient c = client(A, Duration.ofSeconds(5));
    try (WriteStreamSession s = c.openWriteStream(4)) {
      CompletableFuture<Void> f = s.write("v", 0, new byte[512]);
      assertThatThrownBy(() -> f.get(5, TimeUnit.SECONDS))
          .cause()
          .isInstanceOfSatisfying(
              PeerFlashException.class,
              e -> {
                assertThat(e.code()).isEqualTo(Status.Code.FAILED_PRECONDITION);
                assertThat(e.owner()).isEqualTo("n2@" + B);
              });
    }
  }

  @Test
  void writeWithRetryResendsWhatABrokenStreamOrAnOwnerChangeLost() throws Exception {
    Node a = start(A);
    Node b = start(B);
    Node c = start(C);
    for (Node n : List.of(b, c)) {
      n.store.createVolume(
          CreateVolumeRequest.newBuilder().setName("v").setSizeBytes(64 * 4096).build(),
          new NoOp<>());
    }
    a.redirect = n -> "n2@" + B;
    // B owns the volume for its first 5 calls, then hands it to C (and says so).
    AtomicInteger bCalls = new AtomicInteger();
    b.redirect = n -> bCalls.incrementAndGet() > 5 ? "n3@" + C : null;
    byte[] data = new byte[40 * 4096];
    new Random(7).nextBytes(data);

    PeerFlashClient client = client(A, Duration.ofSeconds(5));
    client.writeWithRetry(
        "v", 4096, data.length, 4096, 3, (pos, n) -> ByteString.copyFrom(data, (int) pos, n));

    // What B took before the move and what C took after, together, is the whole upload.
    byte[] merged = new byte[data.length];
    byte[] onB = b.store.contents("v");
    byte[] onC = c.store.contents("v");
    for (int i = 0; i < data.length; i += 4096) {
      byte[] fromC = Arrays.copyOfRange(onC, 4096 + i, 4096 + i + 4096);
      byte[] fromB = Arrays.copyOfRange(onB, 4096 + i, 4096 + i + 4096);
      System.arraycopy(Arrays.equals(fromC, new byte[4096]) ? fromB : fromC, 0, merged, i, 4096);
    }
    assertThat(merged).isEqualTo(data);
    assertThat(client.ownerOf("v")).isEqualTo(C);
    assertThat(c.store.streamedWrites.get()).isPositive();
  }

  @Test
  void parsesTargetLists() {
    assertThat(PeerFlashClient.parseTargets("h:1")).containsExactly("h:1");
    assertThat(PeerFlashClient.parseTargets(" a:1 , b:2,,a:1,[::1]:7601 "))
        .containsExactly("a:1", "b:2", "[::1]:7601");
    // A host alone (a name, an IPv4 address, a bracketed IPv6 address) gets the default port.
    assertThat(PeerFlashClient.parseTargets("localhost")).containsExactly("localhost:7601");
    assertThat(PeerFlashClient.parseTargets("a:1,10.0.0.5,[::1]"))
        .containsExactly("a:1", "10.0.0.5:7601", "[::1]:7601");
    for (String bad : List.of("", " , ", "h:", ":1", "h:x", "h:70000", "a:1,b:")) {
      assertThatThrownBy(() -> PeerFlashClient.parseTargets(bad))
          .as(bad)
          .isInstanceOf(IllegalArgumentException.class);
    }
    assertThat(PeerFlashException.ownerAddress("n2@10.0.0.2:7601")).isEqualTo("10.0.0.2:7601");
    assertThat(PeerFlashException.ownerAddress("10.0.0.2:7601")).isEqualTo("10.0.0.2:7601");
    assertThat(PeerFlashException.ownerAddress("n2@garbage")).isNull();
  }

  static final class NoOp<T> implements StreamObserver<T> {
    @Override
    public void onNext(T value) {}

    @Override
    public void onError(Throwable t) {
      throw new IllegalStateException(t);
    }

    @Override
    public void onCompleted() {}
  }
}
