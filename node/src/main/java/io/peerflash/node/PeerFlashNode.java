package io.peerflash.node;

import io.grpc.Server;
import io.grpc.ServerBuilder;
import io.grpc.protobuf.services.HealthStatusManager;
import io.grpc.protobuf.services.ProtoReflectionServiceV1;
import io.peerflash.node.cluster.ClusterNode;
import io.peerflash.node.engine.CacheEngine;
import io.peerflash.node.health.VolumeRisk;
import io.peerflash.node.nbd.NbdServer;
import io.peerflash.node.net.EventLoops;
import io.peerflash.node.net.NodeTls;
import io.peerflash.node.observe.ClusterSignals;
import io.peerflash.node.observe.HttpEndpoint;
import io.peerflash.node.observe.NodeMetrics;
import io.peerflash.node.observe.StatusReport;
import io.peerflash.node.rpc.Authorization;
import io.peerflash.node.rpc.ClusterGrpcService;
import io.peerflash.node.rpc.NodeGrpcService;
import io.peerflash.node.rpc.StatusGuard;
import io.peerflash.node.rpc.VolumeGrpcService;
import io.peerflash.node.storage.BackingStore;
import io.peerflash.node.storage.FileBackingStore;
import io.peerflash.node.storage.LatencyInjectingBackingStore;
import io.peerflash.replication.data.ReplicaGrpcService;
import io.peerflash.replication.data.ReplicaStreams;
import io.peerflash.replication.data.TransportThreadCalls;
import io.peerflash.replication.fault.FaultPoints;
import io.peerflash.replication.link.ReplicaLinkServer;
import io.peerflash.security.Audit;
import io.peerflash.security.Identities;
import io.peerflash.util.NamedThreadFactory;
import io.peerflash.util.Time;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Executor;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** A running node: the cache engine, the destager and the gRPC server. */
public final class PeerFlashNode implements AutoCloseable {
  /** Cluster events the status page shows, the newest first. */
  private static final int RECENT_EVENTS_ON_PAGE = 20;

  private static final Logger log = LoggerFactory.getLogger(PeerFlashNode.class);

  /** Largest accepted message: room for a 1 MiB write, and a clear error for a bigger one. */
  static final int MAX_INBOUND_MESSAGE_BYTES = 8 << 20;

  private final NodeConfig config;
  private final CacheEngine engine;
  private final ExecutorService rpcExecutor;
  private final HealthStatusManager health = new HealthStatusManager();
  private final Server server;
  private final ClusterNode cluster;
  private final FaultPoints faults;
  private final EventLoops loops;
  private final NodeMetrics metrics;
  private final HttpEndpoint http;
  private final NbdServer nbd; // null: no NBD front end
  private ReplicaStreams replicaStreams; // null on a single node
  private ReplicaGrpcService replicaService;
  private final ReplicaLinkServer replicaLink; // null: none
  private volatile boolean closed;

  private PeerFlashNode(
      NodeConfig config,
      CacheEngine engine,
      ClusterNode cluster,
      FaultPoints faults,
      ServerBuilder<?> builder,
      EventLoops loops,
      NodeTls tls)
      throws IOException {
    this.config = config;
    this.loops = loops;
    this.engine = engine;
    this.cluster = cluster;
    this.faults = faults;
    this.metrics = config.metricsEnabled() ? new NodeMetrics() : null;
    if (metrics != null) {
      engine.setObserver(metrics);
      metrics.bindEngine(engine, risk(cluster));
      metrics.bindAuthRefusals(Audit::refusals);
      if (cluster != null) {
        cluster.setReplicaAckObserver(metrics::replicaAcked);
        metrics.bindCluster(signals(cluster));
      }
    }
    // Calls that may wait (for shared storage, space, a lock, Raft) run on a pool, not the event
    // loop; Write, WriteStream, Read and Replicate run on the event loop and hand off only what
    // must wait (TransportThreadCalls).
    this.rpcExecutor =
        new ThreadPoolExecutor(
            config.rpcThreads(),
            config.rpcThreads(),
            60,
            TimeUnit.SECONDS,
            new LinkedBlockingQueue<>(),
            new NamedThreadFactory("peerflash-rpc", true));
    List<String> onTransportThread =
        new ArrayList<>(List.of(VolumeGrpcService.transportThreadMethods()));
    VolumeGrpcService volumeService =
        new VolumeGrpcService(
            engine,
            rpcExecutor,
            callersLoop(loops),
            cluster == null ? null : cluster.routing(),
            metrics != null ? metrics : NodeMetrics.DISABLED);
    builder
        .maxInboundMessageSize(MAX_INBOUND_MESSAGE_BYTES)
        .addService(volumeService)
        .addService(
            new NodeGrpcService(
                config.nodeId(), engine, tls, cluster == null ? () -> "" : cluster::fencedReason))
        .addService(health.getHealthService())
        .addService(ProtoReflectionServiceV1.newInstance());
    if (cluster != null) {
      // Peers send copies on this node's replica link, or on the Replicate stream of the client
      // port where it has none; the two share how a stream is handled.
      replicaStreams = new ReplicaStreams(engine.replicaSink(), cluster.epochGuard(), rpcExecutor);
      replicaService = new ReplicaGrpcService(replicaStreams);
      builder.addService(replicaService);
      onTransportThread.add(ReplicaGrpcService.replicateMethod());
      builder.addService(new ClusterGrpcService(cluster.admin()));
      // I/O another member's NBD front end forwards to the volumes this node owns.
      builder.addService(
          new io.peerflash.node.nbd.ForwardedIoGrpcService(
              engine, rpcExecutor, callersLoop(loops), cluster.routing()));
      onTransportThread.addAll(
          List.of(io.peerflash.node.nbd.ForwardedIoGrpcService.transportThreadMethods()));
    }
    // Innermost (interceptors added first run last): it sees each handler's own exceptions.
    builder.intercept(new StatusGuard());
    if (tls.enabled()) {
      // Who calls (from the certificate of the TLS session), then what that identity may call.
      builder.intercept(
          cluster == null ? new Authorization() : new Authorization(cluster::isMember));
      builder.intercept(Identities.interceptor(tls.directory()));
    }
    TransportThreadCalls.serve(builder, rpcExecutor, onTransportThread.toArray(String[]::new));
    this.server = builder.build().start();
    this.replicaLink = startReplicaLink(config, tls);
    this.nbd =
        startNbd(
            config,
            engine,
            cluster,
            tls,
            rpcExecutor,
            metrics != null ? metrics : NodeMetrics.DISABLED);
    if (nbd != null) {
      volumeService.setNbdUris(config.nodeId(), nbdUris(config, nbd, tls));
    }
    HttpEndpoint endpoint = null;
    if (!config.httpAddress().isEmpty()) {
      InetSocketAddress at = NodeConfig.httpHostAndPort(config.httpAddress());
      try {
        StatusReport report =
            new StatusReport(
                config.nodeId(),
                cluster == null ? null : cluster.admin()::status,
                this::volumesForStatus,
                cluster == null
                    ? null
                    : () ->
                        cluster
                            .admin()
                            .events(
                                io.peerflash.proto.v1.ListClusterEventsRequest.newBuilder()
                                    .setLimit(RECENT_EVENTS_ON_PAGE)
                                    .build()),
                metrics);
        endpoint =
            config.httpTls() == NodeConfig.HttpTls.OFF
                ? new HttpEndpoint(
                    at.getHostString(),
                    at.getPort(),
                    metrics,
                    this::healthProblem,
                    this::readinessProblem,
                    report::json)
                : HttpEndpoint.https(
                    at.getHostString(),
                    at.getPort(),
                    tls.directory(),
                    config.httpTls() == NodeConfig.HttpTls.MUTUAL,
                    metrics,
                    this::healthProblem,
                    this::readinessProblem,
                    report::json);
      } catch (IOException | RuntimeException e) {
        server.shutdownNow();
        throw e;
      }
    }
    this.http = endpoint;
    health.setStatus("", io.grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING);
  }

  /** The replica link, on a cluster member that has one ({@code replica-link}); null otherwise. */
  private ReplicaLinkServer startReplicaLink(NodeConfig config, NodeTls tls) throws IOException {
    if (replicaStreams == null || config.replicaLink().isEmpty()) {
      return null;
    }
    String at = config.replicaLink();
    int colon = at.lastIndexOf(':');
    try {
      ReplicaLinkServer link =
          loops.replicaLink(
              at.substring(0, colon),
              Integer.parseInt(at.substring(colon + 1)),
              tls.replicaLinkServer(),
              tls.directory(),
              replicaStreams,
              ReplicaLinkServer.MAX_FRAME_BYTES);
      replicaService.setLinkPort(link.port());
      return link;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      server.shutdownNow();
      throw new IOException("interrupted while opening the replica link on " + at, e);
    } catch (RuntimeException e) {
      server.shutdownNow();
      throw new IOException("cannot open the replica link on " + at + ": " + e.getMessage(), e);
    }
  }

  /** The replica link's port, or -1 without one. */
  public int replicaLinkPort() {
    return replicaLink == null ? -1 : replicaLink.port();
  }

  /** Owners connected to this node's replica link now (0 without one). */
  public int replicaLinkConnections() {
    return replicaLink == null ? 0 : replicaLink.connections();
  }

  /** Bytes at risk, on the map's in-sync replica count (none on a single node). */
  private static VolumeRisk risk(ClusterNode cluster) {
    if (cluster == null) {
      return new VolumeRisk(name -> 0);
    }
    return new VolumeRisk(
        name ->
            cluster.controlPlane().map().volume(name).map(r -> r.replicaSet().size()).orElse(0));
  }

  private static ClusterSignals signals(ClusterNode cluster) {
    return new ClusterSignals() {
      @Override
      public long raftTerm() {
        return cluster.controlPlane().raftTerm();
      }

      @Override
      public long raftCommitIndex() {
        return cluster.controlPlane().raftCommitIndex();
      }

      @Override
      public long raftLeader() {
        return cluster.controlPlane().isLeader() ? 1 : 0;
      }

      @Override
      public long leaseRemainingMs() {
        return cluster.controlPlane().leaseKeeper().remainingMs();
      }

      @Override
      public long failovers() {
        return cluster.failoversCommitted();
      }

      @Override
      public long fencingRefusals() {
        return cluster.fencingRefusals();
      }

      @Override
      public java.util.Map<String, long[]> replicationLag() {
        return cluster.replicationLag();
      }
    };
  }

  /** Why this node is not alive as a process should be (/healthz), or null. */
  private String healthProblem() {
    if (closed) {
      return "node is shutting down";
    }
    return engine.localFailure();
  }

  /** Why this node does not serve now (/readyz), or null. */
  private String readinessProblem() {
    String problem = healthProblem();
    if (problem != null) {
      return problem;
    }
    if (cluster != null && !cluster.ready()) {
      return "not serving: not yet in step with the cluster map, or no valid lease";
    }
    return null;
  }

  private List<io.peerflash.proto.v1.Volume> volumesForStatus() {
    if (cluster != null) {
      return cluster.routing().listVolumes();
    }
    List<io.peerflash.proto.v1.Volume> all = new ArrayList<>();
    for (var s : engine.status().volumes()) {
      all.add(io.peerflash.node.wire.Protos.volume(s));
    }
    return all;
  }

  /** The bound HTTP port, or -1 without one. */
  public int httpPort() {
    return http == null ? -1 : http.port();
  }

  private NbdServer startNbd(
      NodeConfig config,
      CacheEngine engine,
      ClusterNode cluster,
      NodeTls tls,
      Executor waits,
      io.peerflash.node.observe.RequestTimer timer)
      throws IOException {
    NbdServer.Settings settings =
        new NbdServer.Settings(
            config.nbdHost(),
            config.nbdPort(),
            config.nbdSocket(),
            config.nbdSocketGroup(),
            tls.directory(),
            config.nbdMaxInFlight());
    if (!settings.enabled()) {
      return null;
    }
    try {
      return NbdServer.start(
          settings,
          engine,
          cluster == null ? null : cluster.routing(),
          cluster == null ? null : cluster.peers(),
          config,
          Time.SYSTEM,
          waits,
          timer,
          loops == null ? null : loops.nbdLoops(),
          callersLoop(loops));
    } catch (IOException | RuntimeException e) {
      server.shutdownNow();
      throw e;
    }
  }

  /** This node's NBD URIs, {@code {volume}} standing for the export name. */
  private static List<String> nbdUris(NodeConfig config, NbdServer nbd, NodeTls tls) {
    List<String> uris = new ArrayList<>();
    if (nbd.tcpPort() > 0) {
      String host = config.nbdHost();
      if (host.equals("0.0.0.0") || host.equals("::") || host.equals("[::]")) {
        String advertised = config.grpcAddress();
        host = advertised.substring(0, advertised.lastIndexOf(':'));
      }
      uris.add((tls.enabled() ? "nbds" : "nbd") + "://" + host + ":" + nbd.tcpPort() + "/{volume}");
    }
    if (nbd.socketPath() != null) {
      uris.add("nbd+unix:///{volume}?socket=" + nbd.socketPath().toAbsolutePath());
    }
    return uris;
  }

  /** Where a write stores its own copy after sending its copies: see {@link VolumeGrpcService}. */
  private static Supplier<Executor> callersLoop(EventLoops loops) {
    return loops == null ? () -> null : loops::callersLoop;
  }

  /** Opens the local cache and shared storage, recovers, and serves on {@code config.listen}. */
  public static PeerFlashNode start(NodeConfig config) throws IOException {
    EventLoops loops =
        EventLoops.create(
            config.eventLoopThreads() > 0
                ? config.eventLoopThreads()
                : EventLoops.defaultThreads());
    try {
      NodeTls tls = NodeTls.of(config);
      return start(
          config,
          tls.secure(loops.server(new InetSocketAddress(config.listenHost(), config.listenPort()))),
          loops,
          tls);
    } catch (IOException | RuntimeException e) {
      loops.close();
      throw e;
    }
  }

  /**
   * Serves on the given builder's transport (tests pass an in-process one), in plaintext: such a
   * transport carries no certificates, so the node must run with insecure=true.
   */
  public static PeerFlashNode start(NodeConfig config, ServerBuilder<?> builder)
      throws IOException {
    if (!config.insecure()) {
      throw new IllegalArgumentException("an in-process transport has no TLS: use insecure=true");
    }
    return start(config, builder, null, NodeTls.plaintext());
  }

  /**
   * @param loops the server's network threads, for the channels to peers too; null: gRPC's
   */
  private static PeerFlashNode start(
      NodeConfig config, ServerBuilder<?> builder, EventLoops loops, NodeTls tls)
      throws IOException {
    BackingStore backing =
        new FileBackingStore(
            config.sharedDir(), config.storageDirectIo(), config.maxOpenBackingFiles());
    if (config.storageLatencyMicros() > 0) {
      backing = new LatencyInjectingBackingStore(backing, config.storageLatencyMicros());
    }
    CacheEngine engine = CacheEngine.open(config.engine(), backing, Time.SYSTEM);
    FaultPoints faults = new FaultPoints();
    engine.setFaultPoints(faults);
    ClusterNode cluster = null;
    try {
      cluster =
          config.clustered()
              ? ClusterNode.start(config, engine, faults, Time.SYSTEM, loops, tls)
              : null;
      PeerFlashNode node = new PeerFlashNode(config, engine, cluster, faults, builder, loops, tls);
      faults.onCrash(node::crash);
      engine.start();
      log.info(
          "node {} serving on {}:{} (cache {} bytes, sync={})",
          config.nodeId(),
          config.listenHost(),
          node.port(),
          config.engine().cacheSizeBytes(),
          config.engine().syncWrites());
      return node;
    } catch (IOException | RuntimeException e) {
      if (cluster != null) {
        cluster.close();
      }
      engine.close();
      throw e;
    }
  }

  /** Fault injection points of this node (tests only; a CRASH stops the node abruptly). */
  public FaultPoints faults() {
    return faults;
  }

  /**
   * Stops at once, as a killed process would as far as peers can tell: no drain, no goodbye to the
   * cluster; what is durable on local flash stays for the next start.
   */
  public synchronized void crash() {
    if (closed) {
      return;
    }
    closed = true;
    log.warn("node {} crashing (fault injection)", config.nodeId());
    closeHttp();
    closeNbd();
    server.shutdownNow();
    closeReplicaLink();
    rpcExecutor.shutdownNow();
    if (cluster != null) {
      cluster.close();
    }
    try {
      rpcExecutor.awaitTermination(2, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    engine.close();
    closeLoops();
  }

  private void closeHttp() {
    if (http != null) {
      http.close();
    }
  }

  private void closeReplicaLink() {
    if (replicaLink != null) {
      replicaLink.close();
    }
  }

  private void closeNbd() {
    if (nbd != null) {
      nbd.close();
    }
  }

  /** The NBD front end, or null when the node serves none. */
  public NbdServer nbd() {
    return nbd;
  }

  private void closeLoops() {
    if (loops != null) {
      loops.close();
    }
  }

  /** The cluster membership, or null on a single node. */
  public ClusterNode cluster() {
    return cluster;
  }

  /** The bound client port (useful with port 0). */
  public int port() {
    return server.getPort();
  }

  public CacheEngine engine() {
    return engine;
  }

  /** Blocks until the node has shut down. */
  public void awaitTermination() throws InterruptedException {
    server.awaitTermination();
  }

  /** Stops accepting, finishes in-flight requests, keeps dirty data for the next start. */
  @Override
  public synchronized void close() {
    if (closed) {
      return;
    }
    closed = true;
    log.info("node {} shutting down", config.nodeId());
    health.enterTerminalState();
    closeHttp();
    closeNbd();
    server.shutdown();
    try {
      if (!server.awaitTermination(config.shutdownGraceMs(), TimeUnit.MILLISECONDS)) {
        log.warn(
            "in-flight requests still running after {} ms; cancelling", config.shutdownGraceMs());
        server.shutdownNow();
        server.awaitTermination(2, TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      server.shutdownNow();
    }
    // Owners see their links close and fail what they had in flight, as on a Replicate stream
    // cancelled above.
    closeReplicaLink();
    rpcExecutor.shutdown();
    boolean idle = false;
    try {
      idle = rpcExecutor.awaitTermination(config.shutdownGraceMs(), TimeUnit.MILLISECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    if (cluster != null) {
      cluster.close();
    }
    if (!idle) {
      // Closing RocksDB under a running request could crash the process; leaving it open loses
      // nothing (its log is already written) and the process is about to exit.
      log.error(
          "requests still running after {} ms; local storage left open", config.shutdownGraceMs());
      return;
    }
    engine.close();
    closeLoops();
    log.info("node {} stopped; dirty data kept for the next start", config.nodeId());
  }
}
