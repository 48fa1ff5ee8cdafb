package io.peerflash.client;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.grpc.stub.StreamObserver;
import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.VolumeServiceGrpc;
import io.peerflash.proto.v1.WriteRequest;
import io.peerflash.proto.v1.WriteResponse;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(30)
class WriteStreamSessionTest {
  private static final ByteString SECTOR = ByteString.copyFrom(new byte[512]);

  private Server server;
  private ManagedChannel channel;
  private PeerFlashClient client;

  /** A WriteStream the test answers by hand: in any order, with errors, or by breaking it. */
  static final class ScriptedStream extends VolumeServiceGrpc.VolumeServiceImplBase {
    final BlockingQueue<WriteRequest> received = new LinkedBlockingQueue<>();
    final CountDownLatch clientHalfClosed = new CountDownLatch(1);
    private StreamObserver<WriteResponse> responses;

    @Override
    public synchronized StreamObserver<WriteRequest> writeStream(
        StreamObserver<WriteResponse> responseObserver) {
      responses = responseObserver;
      return new StreamObserver<>() {
        @Override
        public void onNext(WriteRequest request) {
          received.add(request);
        }

        @Override
        public void onError(Throwable t) {}

        @Override
        public void onCompleted() {
          clientHalfClosed.countDown();
          end(); // Like the real service: all answered, so the stream ends.
        }
      };
    }

    WriteRequest next() throws InterruptedException {
      WriteRequest r = received.poll(10, TimeUnit.SECONDS);
      assertThat(r).as("a request reached the server").isNotNull();
      return r;
    }

    synchronized void answer(WriteRequest request, Status status) {
      WriteResponse.Builder r =
          WriteResponse.newBuilder()
              .setRequestId(request.getRequestId())
              .setCode(status.getCode().value());
      if (status.getDescription() != null) {
        r.setMessage(status.getDescription());
      }
      responses.onNext(r.build());
    }

    synchronized void fail(Status status) {
      responses.onError(status.asRuntimeException());
    }

    synchronized void end() {
      responses.onCompleted();
    }
  }

  private void start(VolumeServiceGrpc.VolumeServiceImplBase service) throws Exception {
    String name = InProcessServerBuilder.generateName();
    server = InProcessServerBuilder.forName(name).addService(service).build().start();
    channel = InProcessChannelBuilder.forName(name).build();
    client = new PeerFlashClient(channel);
  }

  @AfterEach
  void stop() throws Exception {
    channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
  }

  @Test
  void outOfOrderResponsesCompleteTheMatchingFutures() throws Exception {
    ScriptedStream stream = new ScriptedStream();
    start(stream);
    WriteStreamSession session = client.openWriteStream(8);
    CompletableFuture<Void> first = session.write("v", 0, SECTOR);
    CompletableFuture<Void> second = session.write("v", 512, SECTOR);
    CompletableFuture<Void> third = session.write("v", 1024, SECTOR);
    WriteRequest r1 = stream.next();
    WriteRequest r2 = stream.next();
    WriteRequest r3 = stream.next();
    assertThat(r1.getOffset()).isEqualTo(0);
    assertThat(r3.getOffset()).isEqualTo(1024);
    assertThat(r1.getRequestId()).isNotIn(r2.getRequestId(), r3.getRequestId());
    assertThat(r2.getRequestId()).isNotEqualTo(r3.getRequestId());

    stream.answer(r3, Status.OK);
    third.get(5, TimeUnit.SECONDS);
    assertThat(first).isNotDone();
    assertThat(second).isNotDone();

    stream.answer(r1, Status.OUT_OF_RANGE.withDescription("beyond the end of v"));
    stream.answer(r2, Status.OK);
    second.get(5, TimeUnit.SECONDS);
    assertThatThrownBy(() -> first.get(5, TimeUnit.SECONDS))
        .isInstanceOf(ExecutionException.class)
        .cause()
        .isInstanceOfSatisfying(
            PeerFlashException.class,
            e -> {
              assertThat(e.code()).isEqualTo(Status.Code.OUT_OF_RANGE);
              assertThat(e.status().getDescription()).isEqualTo("beyond the end of v");
            });
    // A failed write does not end the stream.
    CompletableFuture<Void> fourth = session.write("v", 1536, SECTOR);
    stream.answer(stream.next(), Status.OK);
    fourth.get(5, TimeUnit.SECONDS);
    session.close();
    assertThat(stream.clientHalfClosed.await(5, TimeUnit.SECONDS)).isTrue();
  }

  @Test
  void writerBlocksWhileMaxInFlightAreUnanswered() throws Exception {
    ScriptedStream stream = new ScriptedStream();
    start(stream);
    WriteStreamSession session = client.openWriteStream(2);
    session.write("v", 0, SECTOR);
    session.write("v", 512, SECTOR);
    WriteRequest r1 = stream.next();
    stream.next();

    AtomicReference<CompletableFuture<Void>> third = new AtomicReference<>();
    Thread writer = new Thread(() -> third.set(session.write("v", 1024, SECTOR)), "test-writer");
    writer.start();
    writer.join(300);
    assertThat(writer.isAlive()).as("third write blocks").isTrue();
    assertThat(stream.received).isEmpty();
    assertThat(session.inFlight()).isEqualTo(2);

    stream.answer(r1, Status.OK);
    writer.join(5000);
    assertThat(writer.isAlive()).isFalse();
    WriteRequest r3 = stream.next();
    assertThat(r3.getOffset()).isEqualTo(1024);
    assertThat(session.inFlight()).isEqualTo(2);
    assertThat(third.get()).isNotDone();
  }

  @Test
  void brokenStreamFailsOutstandingAndLaterWrites() throws Exception {
    ScriptedStream stream = new ScriptedStream();
    start(stream);
    WriteStreamSession session = client.openWriteStream(2);
    CompletableFuture<Void> first = session.write("v", 0, SECTOR);
    CompletableFuture<Void> second = session.write("v", 512, SECTOR);
    stream.next();
    stream.next();
    // A writer waiting for a slot must be released by the failure, not left hanging.
    AtomicReference<CompletableFuture<Void>> blocked = new AtomicReference<>();
    Thread writer = new Thread(() -> blocked.set(session.write("v", 1024, SECTOR)), "test-writer");
    writer.start();
    writer.join(200);
    assertThat(writer.isAlive()).isTrue();

    stream.fail(Status.UNAVAILABLE.withDescription("node shutting down"));

    for (CompletableFuture<Void> f : java.util.List.of(first, second)) {
      assertThatThrownBy(() -> f.get(5, TimeUnit.SECONDS))
          .cause()
          .isInstanceOfSatisfying(
              PeerFlashException.class,
              e -> {
                assertThat(e.code()).isEqualTo(Status.Code.UNAVAILABLE);
                assertThat(e).hasMessageContaining("node shutting down");
              });
    }
    writer.join(5000);
    assertThat(writer.isAlive()).isFalse();
    assertThat(blocked.get()).isCompletedExceptionally();
    assertThat(session.write("v", 0, SECTOR)).isCompletedExceptionally();
    assertThat(session.inFlight()).isZero();
    session.close(); // Returns at once: nothing is outstanding and the stream has ended.
  }

  @Test
  void serverEndingTheStreamFailsUnansweredWrites() throws Exception {
    ScriptedStream stream = new ScriptedStream();
    start(stream);
    WriteStreamSession session = client.openWriteStream(4);
    CompletableFuture<Void> f = session.write("v", 0, SECTOR);
    stream.next();
    stream.end();
    assertThatThrownBy(() -> f.get(5, TimeUnit.SECONDS))
        .cause()
        .isInstanceOfSatisfying(
            PeerFlashException.class, e -> assertThat(e.code()).isEqualTo(Status.Code.UNAVAILABLE));
  }

  @Test
  void closeWaitsForOutstandingWrites() throws Exception {
    ScriptedStream stream = new ScriptedStream();
    start(stream);
    WriteStreamSession session = client.openWriteStream(4);
    CompletableFuture<Void> f = session.write("v", 0, SECTOR);
    WriteRequest r = stream.next();
    Thread closer = new Thread(session::close, "test-closer");
    closer.start();
    closer.join(300);
    assertThat(closer.isAlive()).as("close waits for the answer").isTrue();
    assertThat(stream.clientHalfClosed.getCount()).isEqualTo(1);
    assertThatThrownBy(() -> session.write("v", 512, SECTOR))
        .isInstanceOf(IllegalStateException.class);

    stream.answer(r, Status.OK);
    assertThat(stream.clientHalfClosed.await(5, TimeUnit.SECONDS)).isTrue();
    closer.join(5000);
    assertThat(closer.isAlive()).isFalse();
    assertThat(f).isCompleted().isNotCompletedExceptionally();
  }

  @Test
  void closeGivesUpAfterTheDeadline() throws Exception {
    ScriptedStream stream = new ScriptedStream();
    start(stream);
    WriteStreamSession session =
        PeerFlashClient.builder()
            .channel(channel, false)
            .deadline(java.time.Duration.ofMillis(200))
            .build()
            .openWriteStream(4);
    CompletableFuture<Void> f = session.write("v", 0, SECTOR);
    stream.next();
    session.close();
    assertThat(f).isCompletedExceptionally();
    assertThatThrownBy(f::join)
        .cause()
        .isInstanceOfSatisfying(
            PeerFlashException.class, e -> assertThat(e.code()).isEqualTo(Status.Code.CANCELLED));
  }

  @Test
  void pipelinedWritesLandAgainstTheFake() throws Exception {
    FakeVolumeService fake = new FakeVolumeService();
    start(fake);
    client.createVolume("v", 1 << 20, CacheMode.WRITE_BACK, 0);
    CompletableFuture<?>[] futures = new CompletableFuture<?>[64];
    try (WriteStreamSession session = client.openWriteStream(4)) {
      for (int i = 0; i < futures.length; i++) {
        byte[] data = new byte[4096];
        java.util.Arrays.fill(data, (byte) i);
        futures[i] = session.write("v", i * 4096L, data);
      }
    }
    for (CompletableFuture<?> f : futures) {
      assertThat(f).isCompleted().isNotCompletedExceptionally();
    }
    assertThat(fake.streamedWrites.get()).isEqualTo(64);
    assertThat(client.read("v", 63 * 4096L, 4096)).containsOnly(63);
  }
}
