package io.peerflash.replication.link;

import com.google.protobuf.InvalidProtocolBufferException;
import io.grpc.netty.shaded.io.netty.bootstrap.ServerBootstrap;
import io.grpc.netty.shaded.io.netty.buffer.ByteBuf;
import io.grpc.netty.shaded.io.netty.channel.Channel;
import io.grpc.netty.shaded.io.netty.channel.ChannelHandlerContext;
import io.grpc.netty.shaded.io.netty.channel.ChannelInboundHandlerAdapter;
import io.grpc.netty.shaded.io.netty.channel.ChannelInitializer;
import io.grpc.netty.shaded.io.netty.channel.ChannelOption;
import io.grpc.netty.shaded.io.netty.channel.EventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.ServerChannel;
import io.grpc.netty.shaded.io.netty.channel.group.ChannelGroup;
import io.grpc.netty.shaded.io.netty.channel.group.DefaultChannelGroup;
import io.grpc.netty.shaded.io.netty.handler.codec.ByteToMessageDecoder;
import io.grpc.netty.shaded.io.netty.handler.flush.FlushConsolidationHandler;
import io.grpc.netty.shaded.io.netty.handler.ssl.SslContext;
import io.grpc.netty.shaded.io.netty.handler.ssl.SslHandler;
import io.grpc.netty.shaded.io.netty.handler.timeout.ReadTimeoutHandler;
import io.grpc.netty.shaded.io.netty.util.concurrent.GlobalEventExecutor;
import io.peerflash.proto.v1.ReplicateAck;
import io.peerflash.proto.v1.ReplicateRequest;
import io.peerflash.replication.data.ReplicaStreams;
import io.peerflash.security.Audit;
import io.peerflash.security.Identities;
import io.peerflash.security.Identity;
import io.peerflash.security.TlsDirectory;
import java.net.InetSocketAddress;
import java.security.cert.CertificateException;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The replica's end of the replica link: a TCP port where owners send copies ({@link
 * ReplicaLinkFrames}), each connection one stream handled by {@link ReplicaStreams} exactly as a
 * Replicate gRPC stream is. With TLS, only a node's certificate of the cluster CA is taken (the
 * handshake requires a certificate, the hello checks that it is a node's), and a request is applied
 * only if that node is the owner it names.
 *
 * <p>Requests are read and stored on the connection's event loop (shared with gRPC), acked from
 * there; only a request that must wait moves to the apply pool. A connection holds at most {@link
 * #WINDOW} requests not yet acked; it stops reading beyond that until acks catch up.
 */
public final class ReplicaLinkServer implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(ReplicaLinkServer.class);

  /**
   * The largest request a node takes on its link (and sends): a 1 MiB write's blocks with room to
   * spare, like the gRPC port's message limit.
   */
  public static final int MAX_FRAME_BYTES = 8 << 20;

  /** Requests of one connection received but not yet acked, at most, before it stops reading. */
  static final int WINDOW = 128;

  /** A connection that has not sent its hello this long after it was accepted is closed. */
  static final long HELLO_TIMEOUT_MS = 10_000;

  private final Channel listener;
  private final ChannelGroup links;

  private ReplicaLinkServer(Channel listener, ChannelGroup links) {
    this.listener = listener;
    this.links = links;
  }

  /**
   * Listens on {@code host:port} (0: any free port).
   *
   * @param ssl the server's TLS context ({@code GrpcTls.linkServerContext}), or null for plaintext
   * @param directory the node's TLS directory that identifies senders, or null for plaintext
   * @param maxFrameBytes the largest request taken, as on the gRPC port
   */
  public static ReplicaLinkServer start(
      String host,
      int port,
      EventLoopGroup accept,
      EventLoopGroup workers,
      Class<? extends ServerChannel> channelClass,
      SslContext ssl,
      TlsDirectory directory,
      ReplicaStreams streams,
      int maxFrameBytes)
      throws InterruptedException {
    if ((ssl == null) != (directory == null)) {
      throw new IllegalArgumentException("TLS needs both its context and the directory");
    }
    ChannelGroup links = new DefaultChannelGroup("replica-links", GlobalEventExecutor.INSTANCE);
    Channel ch =
        new ServerBootstrap()
            .group(accept, workers)
            .channel(channelClass)
            .childOption(ChannelOption.TCP_NODELAY, true)
            .childHandler(
                new ChannelInitializer<>() {
                  @Override
                  protected void initChannel(Channel ch) {
                    links.add(ch);
                    if (ssl != null) {
                      ch.pipeline().addLast("tls", ssl.newHandler(ch.alloc()));
                    }
                    ch.pipeline()
                        .addLast(
                            "hello-timeout",
                            new ReadTimeoutHandler(HELLO_TIMEOUT_MS, TimeUnit.MILLISECONDS))
                        .addLast("hello", new Hello(directory, streams, maxFrameBytes));
                  }
                })
            .bind(host, port)
            .sync()
            .channel();
    log.info("replica link listening on {}{}", ch.localAddress(), ssl == null ? " (no TLS)" : "");
    return new ReplicaLinkServer(ch, links);
  }

  /** The bound port. */
  public int port() {
    return ((InetSocketAddress) listener.localAddress()).getPort();
  }

  /** Owners connected to this link now (a closed connection leaves the count at once). */
  public int connections() {
    return links.size();
  }

  /** Stops listening and closes every link: their owners fail what they have in flight. */
  @Override
  public void close() {
    listener.close().awaitUninterruptibly(2, TimeUnit.SECONDS);
    links.close().awaitUninterruptibly(2, TimeUnit.SECONDS);
  }

  /** Reads the owner's hello, checks who sent it, answers, and turns the link into a stream. */
  private static final class Hello extends ByteToMessageDecoder {
    private final TlsDirectory directory;
    private final ReplicaStreams streams;
    private final int maxFrameBytes;

    Hello(TlsDirectory directory, ReplicaStreams streams, int maxFrameBytes) {
      this.directory = directory;
      this.streams = streams;
      this.maxFrameBytes = maxFrameBytes;
    }

    @Override
    protected void decode(ChannelHandlerContext ctx, ByteBuf in, List<Object> out) {
      if (in.readableBytes() < ReplicaLinkFrames.HELLO_BYTES) {
        return;
      }
      long hello = in.readLong();
      if (hello != ReplicaLinkFrames.HELLO) {
        log.warn(
            "replica link from {}: not a PeerFlash replica link hello (0x{}); closed",
            ctx.channel().remoteAddress(),
            Long.toHexString(hello));
        in.skipBytes(in.readableBytes());
        ctx.close();
        return;
      }
      Identity sender = null;
      if (directory != null) {
        SslHandler tls = ctx.pipeline().get(SslHandler.class);
        String why;
        try {
          sender = Identities.identify(directory, tls.engine().getSession());
          why =
              sender.kind() == Identity.Kind.NODE
                  ? null
                  : sender.describe() + " is not a node: only a volume's owner sends copies";
        } catch (CertificateException e) {
          why = e.getMessage();
        }
        if (why != null) {
          Audit.refused(sender, "replica link from " + ctx.channel().remoteAddress(), "", why);
          in.skipBytes(in.readableBytes());
          ctx.close();
          return;
        }
      }
      ctx.writeAndFlush(ReplicaLinkFrames.hello(ctx.alloc()));
      Requests requests = new Requests(streams, sender);
      ctx.pipeline().remove("hello-timeout");
      ctx.pipeline()
          .addAfter(ctx.name(), "requests", requests)
          .addAfter(ctx.name(), "frames", ReplicaLinkFrames.decoder(maxFrameBytes))
          .addAfter(ctx.name(), "flushes", new FlushConsolidationHandler(256, false));
      ctx.pipeline().remove(this); // hands what was read after the hello on to the frames
    }
  }

  /** One owner's stream: requests in, acks out. */
  private static final class Requests extends ChannelInboundHandlerAdapter {
    private final ReplicaStreams streams;
    private final Identity sender;
    private final AtomicInteger unacked = new AtomicInteger();
    private ReplicaStreams.Stream stream;

    Requests(ReplicaStreams streams, Identity sender) {
      this.streams = streams;
      this.sender = sender;
    }

    @Override
    public void handlerAdded(ChannelHandlerContext ctx) {
      Channel ch = ctx.channel();
      stream =
          streams.open(
              new ReplicaStreams.Acks() {
                @Override
                public void send(ReplicateAck ack) {
                  ch.writeAndFlush(ReplicaLinkFrames.encode(ch.alloc(), ack));
                  if (unacked.decrementAndGet() == WINDOW / 2 && !ch.config().isAutoRead()) {
                    ch.eventLoop().execute(() -> ch.config().setAutoRead(true));
                  }
                }

                @Override
                public void complete() {
                  ch.close();
                }
              },
              sender);
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
      ByteBuf frame = (ByteBuf) msg;
      ReplicateRequest req;
      try {
        req = ReplicateRequest.parseFrom(frame.nioBuffer());
      } catch (InvalidProtocolBufferException e) {
        log.warn(
            "replica link from {}: unreadable request ({}); closed",
            ctx.channel().remoteAddress(),
            e.getMessage());
        ctx.close();
        return;
      } finally {
        frame.release();
      }
      if (unacked.incrementAndGet() >= WINDOW) {
        ctx.channel().config().setAutoRead(false);
      }
      stream.onNext(req);
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
      stream.cancelled();
      ctx.fireChannelInactive();
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
      // A frame over the limit, a TLS failure, a reset connection: the owner sees the link close
      // and fails what it had in flight.
      log.debug("replica link from {}: {}", ctx.channel().remoteAddress(), cause.toString());
      ctx.close();
    }
  }
}
