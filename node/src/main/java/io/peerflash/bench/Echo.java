package io.peerflash.bench;

import com.google.protobuf.BytesValue;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.MethodDescriptor;
import io.grpc.Server;
import io.grpc.ServerBuilder;
import io.grpc.ServerServiceDefinition;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.protobuf.ProtoUtils;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.ServerCalls;
import io.grpc.stub.StreamObserver;
import io.peerflash.util.NamedThreadFactory;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

/**
 * The floor of the benchmark: a gRPC service that returns what it gets (protobuf {@code bytes}),
 * served exactly as a node serves its API (Netty, a fixed pool of request threads, the same message
 * size limit), so that "PeerFlash vs echo" measures what PeerFlash adds.
 */
public final class Echo {
  public static final String SERVICE = "peerflash.bench.v1.Echo";

  /** Largest accepted message, as on a node. */
  public static final int MAX_INBOUND_MESSAGE_BYTES = 8 << 20;

  public static final MethodDescriptor<BytesValue, BytesValue> UNARY =
      MethodDescriptor.<BytesValue, BytesValue>newBuilder()
          .setType(MethodDescriptor.MethodType.UNARY)
          .setFullMethodName(MethodDescriptor.generateFullMethodName(SERVICE, "Echo"))
          .setRequestMarshaller(ProtoUtils.marshaller(BytesValue.getDefaultInstance()))
          .setResponseMarshaller(ProtoUtils.marshaller(BytesValue.getDefaultInstance()))
          .build();

  public static final MethodDescriptor<BytesValue, BytesValue> STREAM =
      MethodDescriptor.<BytesValue, BytesValue>newBuilder()
          .setType(MethodDescriptor.MethodType.BIDI_STREAMING)
          .setFullMethodName(MethodDescriptor.generateFullMethodName(SERVICE, "EchoStream"))
          .setRequestMarshaller(ProtoUtils.marshaller(BytesValue.getDefaultInstance()))
          .setResponseMarshaller(ProtoUtils.marshaller(BytesValue.getDefaultInstance()))
          .build();

  private Echo() {}

  /** The service: Echo answers each request with its own bytes; EchoStream each message. */
  public static ServerServiceDefinition service() {
    return ServerServiceDefinition.builder(SERVICE)
        .addMethod(
            UNARY,
            ServerCalls.asyncUnaryCall(
                (BytesValue req, StreamObserver<BytesValue> out) -> {
                  out.onNext(req);
                  out.onCompleted();
                }))
        .addMethod(
            STREAM,
            ServerCalls.asyncBidiStreamingCall(
                (StreamObserver<BytesValue> out) ->
                    new StreamObserver<BytesValue>() {
                      @Override
                      public void onNext(BytesValue value) {
                        out.onNext(value);
                      }

                      @Override
                      public void onError(Throwable t) {}

                      @Override
                      public void onCompleted() {
                        out.onCompleted();
                      }
                    }))
        .build();
  }

  /** A running echo server and its request pool. */
  public record Running(Server server, ExecutorService pool) implements AutoCloseable {
    public int port() {
      return server.getPort();
    }

    @Override
    public void close() {
      server.shutdownNow();
      pool.shutdownNow();
      try {
        server.awaitTermination(5, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }

  /** Serves on HOST:PORT with {@code rpcThreads} request threads, like a node. */
  public static Running start(String host, int port, int rpcThreads) throws IOException {
    return start(NettyServerBuilder.forAddress(new InetSocketAddress(host, port)), rpcThreads);
  }

  /** Serves on the given builder's transport (tests pass an in-process one). */
  public static Running start(ServerBuilder<?> builder, int rpcThreads) throws IOException {
    ExecutorService pool =
        new ThreadPoolExecutor(
            rpcThreads,
            rpcThreads,
            60,
            TimeUnit.SECONDS,
            new LinkedBlockingQueue<>(),
            new NamedThreadFactory("peerflash-rpc", true));
    Server server =
        builder
            .executor(pool)
            .maxInboundMessageSize(MAX_INBOUND_MESSAGE_BYTES)
            .addService(service())
            .build()
            .start();
    return new Running(server, pool);
  }

  /** One blocking echo. */
  public static BytesValue call(Channel channel, BytesValue request) {
    return ClientCalls.blockingUnaryCall(channel, UNARY, CallOptions.DEFAULT, request);
  }
}
