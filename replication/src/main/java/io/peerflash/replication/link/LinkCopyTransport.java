package io.peerflash.replication.link;

import com.google.protobuf.InvalidProtocolBufferException;
import io.grpc.Status;
import io.grpc.netty.shaded.io.netty.bootstrap.Bootstrap;
import io.grpc.netty.shaded.io.netty.buffer.ByteBuf;
import io.grpc.netty.shaded.io.netty.channel.Channel;
import io.grpc.netty.shaded.io.netty.channel.ChannelFuture;
import io.grpc.netty.shaded.io.netty.channel.ChannelHandlerContext;
import io.grpc.netty.shaded.io.netty.channel.ChannelInboundHandlerAdapter;
import io.grpc.netty.shaded.io.netty.channel.ChannelInitializer;
import io.grpc.netty.shaded.io.netty.channel.ChannelOption;
import io.grpc.netty.shaded.io.netty.channel.EventLoopGroup;
import io.grpc.netty.shaded.io.netty.handler.codec.ByteToMessageDecoder;
import io.grpc.netty.shaded.io.netty.handler.flush.FlushConsolidationHandler;
import io.grpc.netty.shaded.io.netty.handler.ssl.SslContext;
import io.peerflash.proto.v1.ReplicateAck;
import io.peerflash.proto.v1.ReplicateRequest;
import io.peerflash.replication.data.CopyTransport;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Supplier;

/**
 * The owner's end of the replica link to one peer ({@link ReplicaLinkServer}): each stream is a
 * connection of its own. Opening one asks the peer where its link listens (it may have restarted on
 * another port); a peer without a link (port 0, or an older node that does not know the question)
 * gets the fallback stream instead, the Replicate gRPC stream.
 *
 * <p>Requests sent before the connection is up (TCP, TLS handshake, hello) wait in the stream and
 * go out, in order, once it is; the stream is ready from then. Acks are read on the connection's
 * event loop and handed to the listener there.
 */
public final class LinkCopyTransport implements CopyTransport {
  private final String peerId;
  private final String host;
  private final Supplier<CompletableFuture<Integer>> portLookup;
  private final SslContext ssl;
  private final EventLoopGroup group;
  private final Class<? extends Channel> channelClass;
  private final int maxFrameBytes;
  private final CopyTransport fallback;

  /**
   * @param host the peer's host (that of its gRPC address)
   * @param portLookup asks the peer for its link's port; 0, or failing with UNIMPLEMENTED, when it
   *     has none
   * @param ssl a client context that accepts only this peer's certificate, or null for plaintext
   * @param fallback the stream to use when the peer has no link
   */
  public LinkCopyTransport(
      String peerId,
      String host,
      Supplier<CompletableFuture<Integer>> portLookup,
      SslContext ssl,
      EventLoopGroup group,
      Class<? extends Channel> channelClass,
      int maxFrameBytes,
      CopyTransport fallback) {
    this.peerId = peerId;
    this.host = host;
    this.portLookup = portLookup;
    this.ssl = ssl;
    this.group = group;
    this.channelClass = channelClass;
    this.maxFrameBytes = maxFrameBytes;
    this.fallback = fallback;
  }

  /**
   * Asks the node at the other end of {@code channel} for its replica link's port (0: none), within
   * {@code timeoutMs}: the usual port lookup of the constructor.
   */
  public static CompletableFuture<Integer> askPort(io.grpc.Channel channel, long timeoutMs) {
    CompletableFuture<Integer> port = new CompletableFuture<>();
    io.peerflash.proto.v1.ReplicaServiceGrpc.newStub(channel)
        .withDeadlineAfter(timeoutMs, java.util.concurrent.TimeUnit.MILLISECONDS)
        .getReplicaLink(
            io.peerflash.proto.v1.GetReplicaLinkRequest.getDefaultInstance(),
            new io.grpc.stub.StreamObserver<>() {
              @Override
              public void onNext(io.peerflash.proto.v1.GetReplicaLinkResponse r) {
                port.complete(r.getPort());
              }

              @Override
              public void onError(Throwable t) {
                port.completeExceptionally(t);
              }

              @Override
              public void onCompleted() {}
            });
    return port;
  }

  @Override
  public Stream open(Listener listener) {
    LinkStream stream = new LinkStream(listener);
    CompletableFuture<Integer> port;
    try {
      port = portLookup.get();
    } catch (RuntimeException e) {
      port = CompletableFuture.failedFuture(e);
    }
    port.whenComplete(
        (p, failure) -> {
          if (failure != null) {
            Status status = Status.fromThrowable(unwrap(failure));
            if (status.getCode() == Status.Code.UNIMPLEMENTED) {
              stream.useFallback(); // a node from before the link
            } else {
              stream.fail(
                  status.augmentDescription("asking replica " + peerId + " for its replica link"));
            }
          } else if (p == 0) {
            stream.useFallback();
          } else {
            stream.connect(p);
          }
        });
    return stream;
  }

  private static Throwable unwrap(Throwable t) {
    return t instanceof CompletionException && t.getCause() != null ? t.getCause() : t;
  }

  /** One stream: a connection, or the fallback stream for a peer without a link. */
  private final class LinkStream implements Stream {
    private final Listener listener;
    private final AtomicBoolean over = new AtomicBoolean();
    // Guarded by this: requests sent before the link (or the fallback) could carry them.
    private final List<ReplicateRequest> early = new ArrayList<>();
    private Channel channel; // set once connecting
    private boolean up; // the hello came back: sends go straight out
    private Stream delegate; // the fallback stream, if the peer has no link
    private Status cancelled;

    LinkStream(Listener listener) {
      this.listener = listener;
    }

    @Override
    public void send(ReplicateRequest request) {
      Channel ch;
      Stream d;
      synchronized (this) {
        if (cancelled != null || over.get()) {
          throw new IllegalStateException("the replica link to " + peerId + " is closed");
        }
        if (delegate == null && !up) {
          early.add(request);
          return;
        }
        ch = channel;
        d = delegate;
      }
      if (d != null) {
        d.send(request);
      } else {
        ch.writeAndFlush(ReplicaLinkFrames.encode(ch.alloc(), request));
      }
    }

    @Override
    public void cancel(Status why) {
      Channel ch;
      Stream d;
      synchronized (this) {
        cancelled = why;
        early.clear();
        ch = channel;
        d = delegate;
      }
      over.set(true); // the listener hears nothing more
      if (d != null) {
        d.cancel(why);
      }
      if (ch != null) {
        ch.close();
      }
    }

    void useFallback() {
      Stream d = fallback.open(new Forwarding());
      synchronized (this) {
        if (cancelled != null) {
          d.cancel(cancelled);
          return;
        }
        delegate = d;
        // Under the lock, so that no later request overtakes them.
        try {
          early.forEach(d::send);
        } catch (RuntimeException e) {
          d.cancel(Status.UNAVAILABLE.withDescription(e.toString()));
          fail(Status.UNAVAILABLE.withDescription(e.toString()));
        } finally {
          early.clear();
        }
      }
    }

    void connect(int port) {
      ChannelFuture connecting;
      synchronized (this) {
        if (cancelled != null) {
          return;
        }
        connecting =
            new Bootstrap()
                .group(group)
                .channel(channelClass)
                .option(ChannelOption.TCP_NODELAY, true)
                .handler(
                    new ChannelInitializer<>() {
                      @Override
                      protected void initChannel(Channel ch) {
                        if (ssl != null) {
                          ch.pipeline().addLast("tls", ssl.newHandler(ch.alloc(), host, port));
                        }
                        ch.pipeline().addLast("hello", new HelloBack(LinkStream.this));
                      }
                    })
                .connect(host, port);
        channel = connecting.channel();
      }
      connecting.addListener(
          f -> {
            if (!f.isSuccess()) {
              fail(
                  Status.UNAVAILABLE
                      .withDescription(
                          "replica link to " + peerId + " at " + host + ":" + port + ": ")
                      .withCause(f.cause())
                      .augmentDescription(String.valueOf(f.cause())));
            } else {
              // Written once TLS is up (the TLS handler holds it back until then).
              connecting
                  .channel()
                  .writeAndFlush(ReplicaLinkFrames.hello(connecting.channel().alloc()));
            }
          });
      // Closed for any reason (the peer went away, a reset, a frame it could not read): the
      // stream is over.
      connecting
          .channel()
          .closeFuture()
          .addListener(
              f ->
                  fail(
                      Status.UNAVAILABLE.withDescription("replica link to " + peerId + " closed")));
    }

    /** The hello came back: send what waited, in order, then report the stream ready. */
    void linkUp(Channel ch) {
      synchronized (this) {
        if (cancelled != null) {
          return;
        }
        // On the event loop, so these writes go out before any a sender queues once it sees up.
        for (ReplicateRequest r : early) {
          ch.write(ReplicaLinkFrames.encode(ch.alloc(), r));
        }
        early.clear();
        up = true;
      }
      ch.flush();
      if (!over.get()) {
        listener.ready();
      }
    }

    void acked(ReplicateAck ack) {
      if (!over.get()) {
        listener.ack(ack);
      }
    }

    void fail(Status why) {
      Channel ch;
      synchronized (this) {
        ch = channel;
      }
      if (over.compareAndSet(false, true)) {
        listener.failed(why);
      }
      if (ch != null) {
        ch.close();
      }
    }

    /** The fallback stream's events, passed on unless this stream is over. */
    private final class Forwarding implements Listener {
      @Override
      public void ready() {
        if (!over.get()) {
          listener.ready();
        }
      }

      @Override
      public void ack(ReplicateAck ack) {
        acked(ack);
      }

      @Override
      public void failed(Status why) {
        if (over.compareAndSet(false, true)) {
          listener.failed(why);
        }
      }
    }
  }

  /** Waits for the peer's hello, then reads acks. */
  private final class HelloBack extends ByteToMessageDecoder {
    private final LinkStream stream;

    HelloBack(LinkStream stream) {
      this.stream = stream;
    }

    @Override
    protected void decode(ChannelHandlerContext ctx, ByteBuf in, List<Object> out) {
      if (in.readableBytes() < ReplicaLinkFrames.HELLO_BYTES) {
        return;
      }
      long hello = in.readLong();
      if (hello != ReplicaLinkFrames.HELLO) {
        in.skipBytes(in.readableBytes());
        stream.fail(
            Status.UNAVAILABLE.withDescription(
                "replica "
                    + peerId
                    + " answered the replica link's hello with 0x"
                    + Long.toHexString(hello)));
        return;
      }
      ctx.pipeline()
          .addAfter(ctx.name(), "acks", new Acks(stream))
          .addAfter(ctx.name(), "frames", ReplicaLinkFrames.decoder(maxFrameBytes))
          .addAfter(ctx.name(), "flushes", new FlushConsolidationHandler(256, false));
      stream.linkUp(ctx.channel());
      ctx.pipeline().remove(this);
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
      stream.fail(
          Status.UNAVAILABLE
              .withDescription("replica link to " + peerId + ": " + cause)
              .withCause(cause));
    }
  }

  private final class Acks extends ChannelInboundHandlerAdapter {
    private final LinkStream stream;

    Acks(LinkStream stream) {
      this.stream = stream;
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
      ByteBuf frame = (ByteBuf) msg;
      ReplicateAck ack;
      try {
        ack = ReplicateAck.parseFrom(frame.nioBuffer());
      } catch (InvalidProtocolBufferException e) {
        stream.fail(
            Status.UNAVAILABLE.withDescription(
                "replica " + peerId + " sent an unreadable ack: " + e.getMessage()));
        return;
      } finally {
        frame.release();
      }
      stream.acked(ack);
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
      stream.fail(
          Status.UNAVAILABLE
              .withDescription("replica link to " + peerId + ": " + cause)
              .withCause(cause));
    }
  }
}
