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
import io.peerflash.node.net.EventLoops;
import io.peerflash.security.GrpcTls;
import io.peerflash.security.TlsDirectory;
import io.peerflash.util.NamedThreadFactory;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

/**
 * The floor of the benchmark: a gRPC service that returns what it gets (protobuf {@code bytes}),
 * served as a node serves writes and cache hits (Netty, answered on the transport thread, the same
 * message size limit, mutual TLS with a node's identity unless plaintext is asked for), so that
 * "PeerFlash vs echo" measures what PeerFlash adds.
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

  /** A running echo server and its request pool (null when it answers on the transport thread). */
  public record Running(Server server, ExecutorService pool, EventLoops loops)
      implements AutoCloseable {
    public int port() {
      return server.getPort();
    }

    @Override
    public void close() {
      server.shutdownNow();
      if (pool != null) {
        pool.shutdownNow();
      }
      try {
        server.awaitTermination(5, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
      if (loops != null) {
        loops.close();
      }
    }
  }

  /**
   * Serves on HOST:PORT with {@code rpcThreads} request threads and a node's network threads; with
   * mutual TLS as the node identity in {@code tls} (the TLS context a node's client port has: a
   * client or node certificate of the same CA required), or plaintext when {@code tls} is null.
   *
   * @throws IllegalArgumentException when {@code tls} is a client's identity (no server pair)
   */
  public static Running start(String host, int port, int rpcThreads, TlsDirectory tls)
      throws IOException {
    EventLoops loops = EventLoops.create(EventLoops.defaultThreads());
    try {
      NettyServerBuilder builder = loops.server(new InetSocketAddress(host, port));
      if (tls != null) {
        builder.sslContext(GrpcTls.serverContext(tls));
      }
      Running r = start(builder, rpcThreads);
      return new Running(r.server(), r.pool(), loops);
    } catch (IOException | RuntimeException e) {
      loops.close();
      throw e;
    }
  }

  /**
   * Serves on the given builder's transport (tests pass an in-process one). {@code rpcThreads} 0
   * answers on the transport thread, as a node answers the calls that need no wait (a cache hit, a
   * write that finds space and its blocks free).
   */
  public static Running start(ServerBuilder<?> builder, int rpcThreads) throws IOException {
    ExecutorService pool = null;
    if (rpcThreads == 0) {
      builder.directExecutor();
    } else {
      pool =
          new ThreadPoolExecutor(
              rpcThreads,
              rpcThreads,
              60,
              TimeUnit.SECONDS,
              new LinkedBlockingQueue<>(),
              new NamedThreadFactory("peerflash-rpc", true));
      builder.executor(pool);
    }
    Server server =
        builder
            .maxInboundMessageSize(MAX_INBOUND_MESSAGE_BYTES)
            .addService(service())
            .build()
            .start();
    return new Running(server, pool, null);
  }

  /** One blocking echo. */
  public static BytesValue call(Channel channel, BytesValue request) {
    return ClientCalls.blockingUnaryCall(channel, UNARY, CallOptions.DEFAULT, request);
  }
}
