package io.peerflash.node.nbd;

import io.grpc.netty.shaded.io.netty.bootstrap.ServerBootstrap;
import io.grpc.netty.shaded.io.netty.channel.Channel;
import io.grpc.netty.shaded.io.netty.channel.ChannelInitializer;
import io.grpc.netty.shaded.io.netty.channel.ChannelOption;
import io.grpc.netty.shaded.io.netty.channel.EventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.MultiThreadIoEventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.epoll.Epoll;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollIoHandler;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollServerDomainSocketChannel;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollServerSocketChannel;
import io.grpc.netty.shaded.io.netty.channel.group.ChannelGroup;
import io.grpc.netty.shaded.io.netty.channel.group.DefaultChannelGroup;
import io.grpc.netty.shaded.io.netty.channel.unix.DomainSocketAddress;
import io.grpc.netty.shaded.io.netty.handler.ssl.SslContext;
import io.grpc.netty.shaded.io.netty.util.concurrent.DefaultThreadFactory;
import io.grpc.netty.shaded.io.netty.util.concurrent.GlobalEventExecutor;
import io.peerflash.node.engine.CacheEngine;
import io.peerflash.node.observe.RequestTimer;
import io.peerflash.security.GrpcTls;
import io.peerflash.security.TlsDirectory;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.GroupPrincipal;
import java.nio.file.attribute.PosixFileAttributeView;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A node's NBD front end: every volume is an export of that name, served on TCP and/or a Unix
 * socket on Netty's native epoll transport. In a node it runs on the node's shared event loops
 * (those of gRPC and the replica link): a replicated write then reads its request, sends its copy,
 * reads the ack and answers on one thread, with no hand-off between threads. Over TCP a node with
 * TLS requires NBD_OPT_STARTTLS with a client certificate of the cluster CA; the Unix socket is for
 * a client on the same host, guarded by the socket file's mode (0660) and group.
 */
public final class NbdServer implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(NbdServer.class);

  /** Requests a connection may have open before the server stops reading from it. */
  public static final int DEFAULT_MAX_IN_FLIGHT = 128;

  /** Where and how to serve. */
  public record Settings(
      String tcpHost,
      int tcpPort,
      Path socketPath,
      String socketGroup,
      TlsDirectory tls,
      int maxInFlight) {
    /** Whether any listener is asked for. */
    public boolean enabled() {
      return tcpHost != null || socketPath != null;
    }
  }

  private final EventLoopGroup ownLoops; // null: on a node's shared loops, which it closes
  // Every client connection open now: on shared loops, closing the listeners and not the loops
  // would leave them served by an engine that is about to close.
  private final ChannelGroup connections;
  private final Channel tcp;
  private final Channel unix;
  private final Path socketPath;
  private final VolumeIo volumes;

  private NbdServer(
      EventLoopGroup ownLoops,
      ChannelGroup connections,
      Channel tcp,
      Channel unix,
      Path socketPath,
      VolumeIo volumes) {
    this.volumes = volumes;
    this.ownLoops = ownLoops;
    this.connections = connections;
    this.tcp = tcp;
    this.unix = unix;
    this.socketPath = socketPath;
  }

  /**
   * Serves the volumes of a node: of its engine on a single node ({@code routing} null), of the
   * cluster map in a cluster, every volume on every node (I/O of a volume another node owns is
   * forwarded to that owner, waiting at most {@code nbd-forward-timeout-ms} for one).
   *
   * @param routing where each volume's I/O is served, null on a single node
   * @param peers the channels to the other members, for I/O another node owns; null with {@code
   *     routing}
   * @param time the node's clock (forwarded calls' deadlines and retries)
   * @param loops the node's shared event loops (epoll), or null for loops of its own
   * @param callersLoop the node's loop the calling thread runs, or null (its writes then commit
   *     their index entries per turn of it)
   */
  public static NbdServer start(
      Settings settings,
      CacheEngine engine,
      io.peerflash.node.cluster.ClusterRouting routing,
      io.peerflash.node.cluster.PeerChannels peers,
      io.peerflash.node.NodeConfig config,
      io.peerflash.util.Time time,
      Executor waits,
      RequestTimer timer,
      EventLoopGroup loops,
      Supplier<Executor> callersLoop)
      throws IOException {
    EngineVolumeIo local = new EngineVolumeIo(engine, waits, callersLoop);
    VolumeIo volumes =
        routing == null
            ? local
            : new RoutedVolumeIo(local, routing, peers, config.nbdForwardTimeoutMs(), time);
    try {
      return start(settings, volumes, timer, loops);
    } catch (IOException | RuntimeException e) {
      volumes.close();
      throw e;
    }
  }

  /**
   * Serves {@code volumes}, telling {@code timer} how long each request took, on {@code shared}
   * (epoll loops) or, when null, on a loop of its own.
   */
  static NbdServer start(
      Settings settings, VolumeIo volumes, RequestTimer timer, EventLoopGroup shared)
      throws IOException {
    if (!Epoll.isAvailable()) {
      throw new IOException(
          "NBD needs Netty's native epoll transport: " + Epoll.unavailabilityCause());
    }
    EventLoopGroup ownLoops =
        shared != null
            ? null
            : new MultiThreadIoEventLoopGroup(
                1, new DefaultThreadFactory("peerflash-nbd", true), EpollIoHandler.newFactory());
    EventLoopGroup loops = shared != null ? shared : ownLoops;
    ChannelGroup connections = new DefaultChannelGroup("nbd", GlobalEventExecutor.INSTANCE);
    Channel tcp = null;
    Channel unix = null;
    try {
      if (settings.tcpHost() != null) {
        SslContext ssl = settings.tls() == null ? null : serverContext(settings.tls());
        tcp =
            new ServerBootstrap()
                .group(loops)
                .channel(EpollServerSocketChannel.class)
                .childOption(ChannelOption.TCP_NODELAY, true)
                .childHandler(initializer(volumes, ssl, settings, timer, connections))
                .bind(new InetSocketAddress(settings.tcpHost(), settings.tcpPort()))
                .sync()
                .channel();
        log.info(
            "NBD on tcp {}{}",
            tcp.localAddress(),
            ssl == null ? " (no TLS)" : " (TLS required: NBD_OPT_STARTTLS)");
      }
      if (settings.socketPath() != null) {
        Path path = settings.socketPath().toAbsolutePath();
        Files.createDirectories(path.getParent());
        Files.deleteIfExists(path); // a socket file left by a node that was killed
        unix =
            new ServerBootstrap()
                .group(loops)
                .channel(EpollServerDomainSocketChannel.class)
                .childHandler(initializer(volumes, null, settings, timer, connections))
                .bind(new DomainSocketAddress(path.toFile()))
                .sync()
                .channel();
        Files.setPosixFilePermissions(path, PosixFilePermissions.fromString("rw-rw----"));
        if (settings.socketGroup() != null && !settings.socketGroup().isBlank()) {
          GroupPrincipal group =
              path.getFileSystem()
                  .getUserPrincipalLookupService()
                  .lookupPrincipalByGroupName(settings.socketGroup());
          Files.getFileAttributeView(path, PosixFileAttributeView.class).setGroup(group);
        }
        log.info("NBD on unix socket {} (mode 0660)", path);
      }
    } catch (IOException | RuntimeException | InterruptedException e) {
      if (tcp != null) {
        tcp.close();
      }
      if (unix != null) {
        unix.close();
      }
      if (ownLoops != null) {
        ownLoops.shutdownGracefully(0, 1, TimeUnit.SECONDS);
      }
      if (e instanceof InterruptedException) {
        Thread.currentThread().interrupt();
      }
      throw e instanceof IOException io ? io : new IOException("NBD listener: " + e, e);
    }
    return new NbdServer(ownLoops, connections, tcp, unix, settings.socketPath(), volumes);
  }

  private static ChannelInitializer<Channel> initializer(
      VolumeIo volumes,
      SslContext ssl,
      Settings settings,
      RequestTimer timer,
      ChannelGroup connections) {
    int maxInFlight = settings.maxInFlight() > 0 ? settings.maxInFlight() : DEFAULT_MAX_IN_FLIGHT;
    return new ChannelInitializer<>() {
      @Override
      protected void initChannel(Channel ch) {
        connections.add(ch); // it leaves the group when it closes
        ch.pipeline()
            .addLast(
                "nbd-handshake",
                new NbdHandshakeHandler(volumes, ssl, settings.tls(), maxInFlight, timer));
      }
    };
  }

  /**
   * The server side of NBD's TLS: the node's server certificate, a client certificate of the
   * cluster CA required; the native provider as on the node's other ports. The key and trust
   * managers are the directory's and no session is resumed, so rotated files and a revoked serial
   * apply to every new connection.
   */
  static SslContext serverContext(TlsDirectory dir) throws IOException {
    return GrpcTls.serverContextWithoutAlpn(dir, "TLSv1.3", "TLSv1.2");
  }

  /** The bound TCP port, or -1 without a TCP listener. */
  public int tcpPort() {
    return tcp == null ? -1 : ((InetSocketAddress) tcp.localAddress()).getPort();
  }

  /** The Unix socket's path, or null. */
  public Path socketPath() {
    return socketPath;
  }

  /** Stops listening and closes every connection; requests in flight fail on the client. */
  @Override
  public void close() {
    if (tcp != null) {
      tcp.close().awaitUninterruptibly(2, TimeUnit.SECONDS);
    }
    if (unix != null) {
      unix.close().awaitUninterruptibly(2, TimeUnit.SECONDS);
      try {
        Files.deleteIfExists(socketPath.toAbsolutePath());
      } catch (IOException e) {
        log.warn("could not remove NBD socket {}: {}", socketPath, e.getMessage());
      }
    }
    connections.close().awaitUninterruptibly(2, TimeUnit.SECONDS);
    if (ownLoops != null) {
      ownLoops.shutdownGracefully(0, 2, TimeUnit.SECONDS).awaitUninterruptibly(5, TimeUnit.SECONDS);
    }
    volumes.close();
  }
}
