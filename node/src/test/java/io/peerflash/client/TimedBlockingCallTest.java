package io.peerflash.client;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import com.google.protobuf.ByteString;
import com.google.protobuf.BytesValue;
import io.grpc.Context;
import io.grpc.Deadline;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Server;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.ServerCalls;
import io.grpc.stub.StreamObserver;
import io.peerflash.bench.Echo;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BiConsumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class TimedBlockingCallTest {
  private static final BytesValue REQUEST =
      BytesValue.newBuilder().setValue(ByteString.copyFromUtf8("ping")).build();

  /** What the server does with each call; the test sets it. */
  private volatile BiConsumer<BytesValue, ServerCallStreamObserver<BytesValue>> handler;

  private final AtomicReference<Deadline> serverSawDeadline = new AtomicReference<>();
  private final CountDownLatch serverSawCancel = new CountDownLatch(1);
  private Server server;
  private ManagedChannel channel;

  @BeforeEach
  void start() throws Exception {
    String name = InProcessServerBuilder.generateName();
    ServerServiceDefinition service =
        ServerServiceDefinition.builder(Echo.SERVICE)
            .addMethod(
                Echo.UNARY,
                ServerCalls.asyncUnaryCall(
                    (BytesValue req, StreamObserver<BytesValue> out) -> {
                      serverSawDeadline.set(Context.current().getDeadline());
                      ServerCallStreamObserver<BytesValue> call =
                          (ServerCallStreamObserver<BytesValue>) out;
                      call.setOnCancelHandler(serverSawCancel::countDown);
                      handler.accept(req, call);
                    }))
            .build();
    server = InProcessServerBuilder.forName(name).addService(service).build().start();
    channel = InProcessChannelBuilder.forName(name).build();
  }

  @AfterEach
  void stop() throws Exception {
    channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
  }

  private BytesValue call(Deadline deadline) {
    return TimedBlockingCall.call(channel, Echo.UNARY, REQUEST, deadline);
  }

  @Test
  void returnsTheAnswerAndSendsTheServerNoDeadline() {
    handler =
        (req, out) -> {
          out.onNext(req);
          out.onCompleted();
        };
    assertThat(call(Deadline.after(5, TimeUnit.SECONDS))).isEqualTo(REQUEST);
    assertThat(serverSawDeadline.get()).isNull();
    assertThat(call(null)).isEqualTo(REQUEST);
  }

  @Test
  void anAnswerFromAnotherThreadWakesTheWaiter() {
    handler =
        (req, out) ->
            new Thread(
                    () -> {
                      sleep(100);
                      out.onNext(req);
                      out.onCompleted();
                    })
                .start();
    long start = System.nanoTime();
    assertThat(call(Deadline.after(5, TimeUnit.SECONDS))).isEqualTo(REQUEST);
    assertThat(TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start)).isLessThan(4000);
  }

  @Test
  void noAnswerInTimeIsDeadlineExceededAndCancelsTheCall() throws Exception {
    handler = (req, out) -> {}; // never answers
    long start = System.nanoTime();
    StatusRuntimeException e =
        catchThrowableOfType(
            () -> call(Deadline.after(200, TimeUnit.MILLISECONDS)), StatusRuntimeException.class);
    long tookMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.DEADLINE_EXCEEDED);
    assertThat(e.getStatus().getDescription()).contains("Echo").contains("deadline");
    assertThat(tookMs).isBetween(150L, 4000L);
    assertThat(serverSawCancel.await(5, TimeUnit.SECONDS)).isTrue();
  }

  @Test
  void theServersFailureComesThroughWithItsTrailers() {
    Metadata.Key<String> key = Metadata.Key.of("x-owner", Metadata.ASCII_STRING_MARSHALLER);
    handler =
        (req, out) -> {
          Metadata trailers = new Metadata();
          trailers.put(key, "127.0.0.1:1");
          out.onError(
              Status.FAILED_PRECONDITION
                  .withDescription("not the owner")
                  .asRuntimeException(trailers));
        };
    StatusRuntimeException e =
        catchThrowableOfType(
            () -> call(Deadline.after(5, TimeUnit.SECONDS)), StatusRuntimeException.class);
    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION);
    assertThat(e.getStatus().getDescription()).isEqualTo("not the owner");
    assertThat(e.getTrailers().get(key)).isEqualTo("127.0.0.1:1");
  }

  @Test
  void anInterruptCancelsTheCallAndKeepsTheFlag() throws Exception {
    handler = (req, out) -> {}; // never answers
    AtomicReference<Throwable> thrown = new AtomicReference<>();
    AtomicBoolean flagKept = new AtomicBoolean();
    Thread caller =
        new Thread(
            () -> {
              try {
                call(Deadline.after(30, TimeUnit.SECONDS));
              } catch (Throwable t) {
                thrown.set(t);
                flagKept.set(Thread.currentThread().isInterrupted());
              }
            });
    caller.start();
    sleep(200);
    caller.interrupt();
    caller.join(5000);
    assertThat(caller.isAlive()).isFalse();
    assertThat(thrown.get()).isInstanceOf(StatusRuntimeException.class);
    assertThat(((StatusRuntimeException) thrown.get()).getStatus().getCode())
        .isEqualTo(Status.Code.CANCELLED);
    assertThat(flagKept).isTrue();
    assertThat(serverSawCancel.await(5, TimeUnit.SECONDS)).isTrue();
  }

  private static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
