package io.peerflash.replication.data;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.grpc.CallOptions;
import io.grpc.Context;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.Server;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.ServerCalls;
import io.grpc.stub.StreamObserver;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Over real gRPC on loopback: which thread serves which call, in which order, in which context. */
class TransportThreadCallsTest {
  private static final String SERVICE = "peerflash.test.Threads";
  private static final MethodDescriptor.Marshaller<String> TEXT =
      new MethodDescriptor.Marshaller<>() {
        @Override
        public InputStream stream(String value) {
          return new ByteArrayInputStream(value.getBytes(StandardCharsets.UTF_8));
        }

        @Override
        public String parse(InputStream stream) {
          try {
            return new String(stream.readAllBytes(), StandardCharsets.UTF_8);
          } catch (IOException e) {
            throw new UncheckedIOException(e);
          }
        }
      };
  private static final MethodDescriptor<String, String> FAST = unary("Fast");
  private static final MethodDescriptor<String, String> SLOW = unary("Slow");
  private static final MethodDescriptor<String, String> COLLECT =
      MethodDescriptor.<String, String>newBuilder()
          .setType(MethodDescriptor.MethodType.CLIENT_STREAMING)
          .setFullMethodName(MethodDescriptor.generateFullMethodName(SERVICE, "Collect"))
          .setRequestMarshaller(TEXT)
          .setResponseMarshaller(TEXT)
          .build();

  private final AtomicInteger poolTasks = new AtomicInteger();
  private ExecutorService pool;
  private Server server;
  private ManagedChannel channel;

  private static MethodDescriptor<String, String> unary(String name) {
    return MethodDescriptor.<String, String>newBuilder()
        .setType(MethodDescriptor.MethodType.UNARY)
        .setFullMethodName(MethodDescriptor.generateFullMethodName(SERVICE, name))
        .setRequestMarshaller(TEXT)
        .setResponseMarshaller(TEXT)
        .build();
  }

  /**
   * Answers with the serving thread's name; "fail" throws, "deadline" tells the call's deadline.
   */
  private static ServerCalls.UnaryMethod<String, String> threadName() {
    return (request, out) -> {
      if (request.equals("fail")) {
        throw new IllegalStateException("handler bug");
      }
      if (request.equals("deadline")) {
        out.onNext(String.valueOf(Context.current().getDeadline() != null));
      } else {
        out.onNext(Thread.currentThread().getName());
      }
      out.onCompleted();
    };
  }

  @BeforeEach
  void start() throws IOException {
    ExecutorService threads =
        Executors.newFixedThreadPool(
            2,
            r -> {
              Thread t = new Thread(r, "test-pool-" + poolTasks.get());
              t.setDaemon(true);
              return t;
            });
    pool = threads;
    ServerServiceDefinition service =
        ServerServiceDefinition.builder(SERVICE)
            .addMethod(FAST, ServerCalls.asyncUnaryCall(threadName()))
            .addMethod(SLOW, ServerCalls.asyncUnaryCall(threadName()))
            .addMethod(
                COLLECT,
                ServerCalls.asyncClientStreamingCall(
                    out -> {
                      List<String> seen = Collections.synchronizedList(new ArrayList<>());
                      return new StreamObserver<String>() {
                        @Override
                        public void onNext(String value) {
                          boolean onPool = Thread.currentThread().getName().startsWith("test-pool");
                          seen.add(value + (onPool ? "" : "!off-pool"));
                        }

                        @Override
                        public void onError(Throwable t) {}

                        @Override
                        public void onCompleted() {
                          out.onNext(String.join(",", seen));
                          out.onCompleted();
                        }
                      };
                    }))
            .build();
    NettyServerBuilder builder =
        NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0)).addService(service);
    TransportThreadCalls.serve(
        builder,
        r -> {
          poolTasks.incrementAndGet();
          threads.execute(r);
        },
        FAST.getFullMethodName());
    server = builder.build().start();
    channel = NettyChannelBuilder.forAddress("127.0.0.1", server.getPort()).usePlaintext().build();
  }

  @AfterEach
  void stop() throws InterruptedException {
    channel.shutdownNow();
    server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    pool.shutdownNow();
  }

  private String call(MethodDescriptor<String, String> method, String request) {
    return ClientCalls.blockingUnaryCall(channel, method, CallOptions.DEFAULT, request);
  }

  @Test
  void namedMethodIsServedOnTheTransportThreadWithNoHandOff() {
    call(FAST, "warm"); // the connection is set up
    int before = poolTasks.get();
    for (int i = 0; i < 20; i++) {
      assertThat(call(FAST, "x")).doesNotStartWith("test-pool");
    }
    assertThat(poolTasks.get()).isEqualTo(before);
  }

  @Test
  void otherMethodsAreServedOnThePool() {
    for (int i = 0; i < 20; i++) {
      assertThat(call(SLOW, "x")).startsWith("test-pool");
    }
    assertThat(poolTasks.get()).isGreaterThanOrEqualTo(20);
  }

  @Test
  void aStreamsMessagesReachThePoolInOrder() throws Exception {
    CompletableFuture<String> answer = new CompletableFuture<>();
    StreamObserver<String> requests =
        ClientCalls.asyncClientStreamingCall(
            channel.newCall(COLLECT, CallOptions.DEFAULT),
            new StreamObserver<String>() {
              @Override
              public void onNext(String value) {
                answer.complete(value);
              }

              @Override
              public void onError(Throwable t) {
                answer.completeExceptionally(t);
              }

              @Override
              public void onCompleted() {}
            });
    List<String> sent = new ArrayList<>();
    for (int i = 0; i < 500; i++) {
      requests.onNext("m" + i);
      sent.add("m" + i);
    }
    requests.onCompleted();
    assertThat(answer.get(10, TimeUnit.SECONDS)).isEqualTo(String.join(",", sent));
  }

  @Test
  void aHandlerThatThrowsEndsItsCallOnlyAndTheCallsContextIsKept() {
    assertThatThrownBy(() -> call(SLOW, "fail"))
        .isInstanceOfSatisfying(
            StatusRuntimeException.class,
            e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INTERNAL));
    assertThat(call(SLOW, "x")).startsWith("test-pool");
    // The deadline travels in the call's context, which the pool thread runs in.
    String withDeadline =
        ClientCalls.blockingUnaryCall(
            channel, SLOW, CallOptions.DEFAULT.withDeadlineAfter(5, TimeUnit.SECONDS), "deadline");
    assertThat(withDeadline).isEqualTo("true");
    assertThat(call(SLOW, "deadline")).isEqualTo("false");
  }

  @Test
  void aPoolThatRefusesWorkFailsTheCallAsUnavailable() {
    pool.shutdownNow();
    assertThatThrownBy(() -> call(SLOW, "x"))
        .isInstanceOfSatisfying(
            StatusRuntimeException.class,
            e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.UNAVAILABLE));
    assertThat(call(FAST, "x")).doesNotStartWith("test-pool");
  }
}
