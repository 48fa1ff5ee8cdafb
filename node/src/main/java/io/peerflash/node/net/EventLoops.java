package io.peerflash.node.net;

import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.netty.shaded.io.netty.channel.Channel;
import io.grpc.netty.shaded.io.netty.channel.EventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.ServerChannel;
import io.grpc.netty.shaded.io.netty.channel.epoll.Epoll;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollEventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollServerSocketChannel;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollSocketChannel;
import io.grpc.netty.shaded.io.netty.channel.nio.NioEventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.socket.nio.NioServerSocketChannel;
import io.grpc.netty.shaded.io.netty.channel.socket.nio.NioSocketChannel;
import io.grpc.netty.shaded.io.netty.util.concurrent.DefaultThreadFactory;
import io.grpc.netty.shaded.io.netty.util.concurrent.EventExecutor;
import java.net.SocketAddress;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;

/**
 * A node's network threads (Netty event loops), shared by its gRPC server and its channels to
 * peers. A replicated write crosses four sockets inside the owner (request in, copy out, ack in,
 * response out); on a shared loop they can all be served by one thread, so the write wakes no other
 * thread of the node. With one loop (the default on up to 4 cores) that is always so; with more,
 * each connection is bound to one of them.
 */
public final class EventLoops implements AutoCloseable {
  private final EventLoopGroup accept;
  private final EventLoopGroup workers;
  private final Class<? extends ServerChannel> serverChannel;
  private final Class<? extends Channel> clientChannel;

  private EventLoops(
      EventLoopGroup accept,
      EventLoopGroup workers,
      Class<? extends ServerChannel> serverChannel,
      Class<? extends Channel> clientChannel) {
    this.accept = accept;
    this.workers = workers;
    this.serverChannel = serverChannel;
    this.clientChannel = clientChannel;
  }

  /** {@code threads} event loops (epoll where available), plus one thread accepting connections. */
  public static EventLoops create(int threads) {
    if (threads < 1) {
      throw new IllegalArgumentException("event loop threads must be at least 1, got " + threads);
    }
    if (Epoll.isAvailable()) {
      return new EventLoops(
          new EpollEventLoopGroup(1, new DefaultThreadFactory("peerflash-accept", true)),
          new EpollEventLoopGroup(threads, new DefaultThreadFactory("peerflash-netty", true)),
          EpollServerSocketChannel.class,
          EpollSocketChannel.class);
    }
    return new EventLoops(
        new NioEventLoopGroup(1, new DefaultThreadFactory("peerflash-accept", true)),
        new NioEventLoopGroup(threads, new DefaultThreadFactory("peerflash-netty", true)),
        NioServerSocketChannel.class,
        NioSocketChannel.class);
  }

  /** The default number of loops: one per four cores, at least one. */
  public static int defaultThreads() {
    return Math.max(1, Runtime.getRuntime().availableProcessors() / 4);
  }

  /** A server builder on these loops. */
  public NettyServerBuilder server(SocketAddress address) {
    return NettyServerBuilder.forAddress(address)
        .bossEventLoopGroup(accept)
        .workerEventLoopGroup(workers)
        .channelType(serverChannel);
  }

  /** A channel builder on these loops. */
  public NettyChannelBuilder channel(String target) {
    return NettyChannelBuilder.forTarget(target).eventLoopGroup(workers).channelType(clientChannel);
  }

  /** The replica link's server on these loops (accepting on the accept loop). */
  public io.peerflash.replication.link.ReplicaLinkServer replicaLink(
      String host,
      int port,
      io.grpc.netty.shaded.io.netty.handler.ssl.SslContext ssl,
      io.peerflash.security.TlsDirectory directory,
      io.peerflash.replication.data.ReplicaStreams streams,
      int maxFrameBytes)
      throws InterruptedException {
    return io.peerflash.replication.link.ReplicaLinkServer.start(
        host, port, accept, workers, serverChannel, ssl, directory, streams, maxFrameBytes);
  }

  /** The loops a node's own connections (its replica links to peers) run on. */
  public EventLoopGroup workers() {
    return workers;
  }

  /**
   * The loops the NBD front end serves on: {@link #workers()} when they are epoll loops (NBD's Unix
   * socket needs epoll), else null (it then fails to start, as it would on loops of its own).
   */
  public EventLoopGroup nbdLoops() {
    return clientChannel == EpollSocketChannel.class ? workers : null;
  }

  /** The channel class of {@link #workers()}'s connections. */
  public Class<? extends Channel> clientChannel() {
    return clientChannel;
  }

  /**
   * The event loop the calling thread runs, or null when it runs none of these. A task given to it
   * runs on that thread after the task running now and after any flush it queued, so a message
   * written to a channel before goes out before the task starts.
   */
  public Executor callersLoop() {
    for (EventExecutor loop : workers) {
      if (loop.inEventLoop()) {
        return loop;
      }
    }
    return null;
  }

  /** Call after the server and every channel built here have shut down. */
  @Override
  public void close() {
    accept.shutdownGracefully(0, 2, TimeUnit.SECONDS);
    workers.shutdownGracefully(0, 2, TimeUnit.SECONDS);
  }
}
