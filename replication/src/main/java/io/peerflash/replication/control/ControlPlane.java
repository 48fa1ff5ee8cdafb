package io.peerflash.replication.control;

import io.peerflash.proto.v1.ClusterMapSnapshot;
import io.peerflash.proto.v1.CommandResult;
import io.peerflash.proto.v1.MapCommand;
import io.peerflash.replication.fault.FaultPoints;
import io.peerflash.util.NamedThreadFactory;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.apache.ratis.conf.Parameters;
import org.apache.ratis.conf.RaftProperties;
import org.apache.ratis.proto.RaftProtos.RaftPeerRole;
import org.apache.ratis.protocol.RaftClientReply;
import org.apache.ratis.protocol.RaftGroup;
import org.apache.ratis.protocol.RaftGroupId;
import org.apache.ratis.protocol.RaftPeer;
import org.apache.ratis.protocol.RaftPeerId;
import org.apache.ratis.protocol.SetConfigurationRequest;
import org.apache.ratis.server.DivisionInfo;
import org.apache.ratis.server.RaftConfiguration;
import org.apache.ratis.server.RaftServer;
import org.apache.ratis.server.storage.RaftStorage;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One node's view of, and voice in, the cluster: a Ratis server holding the {@link ClusterMap}
 * ({@link ClusterStateMachine}), Raft clients to submit commands, this node's {@link LeaseKeeper}
 * and the {@link LivenessMonitor} (active only on the leader).
 *
 * <p>Threads, all named {@code peerflash-cp-<node>-*}: {@code submit-N} (2; block on Raft commits
 * and complete the futures of {@link #submit}), {@code lease} (heartbeats), {@code timer} (liveness
 * ticks, registration retries), {@code events} (leader listeners). Ratis runs its own threads.
 *
 * <p>All nodes share one Raft group whose id is derived from {@link #GROUP_NAME}.
 *
 * <p>With {@link ControlPlaneConfig#tls()} set, the Raft server (its peer, admin and client
 * services share one port) and every Raft client speak mutual TLS, and only nodes of the current
 * Raft configuration are admitted, on every handshake and every call, in both directions ({@link
 * #allowedRaftPeers}). A node being added is admitted by a committed {@code AdmitRaftPeer} before
 * the configuration change that names it ({@link #addPeer}).
 */
public final class ControlPlane implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(ControlPlane.class);

  /** The name the fixed Raft group id is derived from. */
  public static final String GROUP_NAME = "peerflash-cluster-v1";

  public static final RaftGroupId GROUP_ID =
      RaftGroupId.valueOf(UUID.nameUUIDFromBytes(GROUP_NAME.getBytes(StandardCharsets.UTF_8)));

  /**
   * How long a node being added may open Raft connections before the configuration names it: covers
   * the leader catching it up and committing the change; withdrawn earlier if the add fails.
   */
  static final long ADMISSION_TTL_MS = TimeUnit.MINUTES.toMillis(10);

  private final ControlPlaneConfig config;
  private final ClusterStateMachine stateMachine;
  private final RaftAdmissions admissions = new RaftAdmissions();
  private final RaftRefusals refusals;
  private final Parameters raftParameters;
  private final RaftServer server;
  private final RaftCalls calls;
  private volatile FaultPoints faults = new FaultPoints();
  // Catch-ups read on a thread of their own: a read that waits out the Raft client's retries
  // while no leader answers must not hold up commands or the reads of moves and membership.
  private final SubmitThreads catchUpThreads;
  private final ReadsAfterNow<ClusterMap> catchUpReads;
  private final SubmitThreads submitThreads;
  private final ScheduledExecutorService leaseExecutor;
  private final ScheduledExecutorService timer;
  private final ExecutorService eventExecutor;
  private volatile java.util.function.Supplier<String> heartbeatHold = () -> null;
  private final LeaseKeeper leaseKeeper;
  private final LivenessMonitor livenessMonitor;
  private final CompletableFuture<CommandResult> registered = new CompletableFuture<>();
  private volatile boolean closed;
  private boolean joinLogged; // timer thread only
  private final java.util.concurrent.atomic.AtomicLong registrationsPutOff =
      new java.util.concurrent.atomic.AtomicLong();

  private ControlPlane(ControlPlaneConfig config) throws IOException {
    this.config = config;
    String prefix = "peerflash-cp-" + config.nodeId();
    this.eventExecutor =
        new ThreadPoolExecutor(
            1,
            1,
            0,
            TimeUnit.MILLISECONDS,
            new LinkedBlockingQueue<>(),
            new NamedThreadFactory(prefix + "-events", true));
    this.submitThreads = new SubmitThreads(prefix, 2);
    this.catchUpThreads = new SubmitThreads(prefix + "-catchup", 1);
    this.catchUpReads = new ReadsAfterNow<>(() -> readLinearizable(catchUpThreads));
    this.leaseExecutor = RaftWiring.scheduler(prefix + "-lease");
    this.timer = RaftWiring.scheduler(prefix + "-timer");
    this.stateMachine = new ClusterStateMachine(eventExecutor);

    List<RaftPeer> peers = new ArrayList<>();
    config.initialPeers().forEach((id, address) -> peers.add(RaftWiring.peer(id, address)));
    RaftGroup clusterGroup = RaftGroup.valueOf(GROUP_ID, peers);

    this.livenessMonitor =
        new LivenessMonitor(
            config.nodeId(),
            config.time(),
            config.leaseTimeoutMs(),
            config.clockSkewMarginMs(),
            stateMachine::map,
            this::isLeaderReady,
            () -> heartbeatHold.get() != null,
            this::submitAsLeader,
            timer);
    stateMachine.addCommandListener(livenessMonitor::onApplied);
    stateMachine.addCommandListener(admissions::onApplied);
    this.refusals = new RaftRefusals(config.nodeId(), config.time());
    this.raftParameters = RaftWiring.parameters(config, this::allowedRaftPeers, refusals);

    RaftProperties serverProps = RaftWiring.serverProperties(config);
    Files.createDirectories(config.storageDir());
    // A bootstrapping voter starts with the initial group; a joining node starts with an empty
    // group and learns the configuration from the leader once a member calls addPeer for it.
    RaftGroup serverGroup = config.bootstrapsAsVoter() ? clusterGroup : RaftGroup.valueOf(GROUP_ID);
    this.server =
        RaftServer.newBuilder()
            .setServerId(RaftPeerId.valueOf(config.nodeId()))
            .setGroup(serverGroup)
            .setStateMachine(stateMachine)
            .setProperties(serverProps)
            .setOption(RaftStorage.StartupOption.RECOVER)
            .setParameters(raftParameters)
            .build();

    this.calls =
        new RaftCalls(
            server,
            clusterGroup,
            raftParameters,
            config.heartbeatIntervalMs(),
            this::isLeaderReady);

    MapCommand heartbeat =
        MapCommand.newBuilder()
            .setHeartbeat(MapCommand.Heartbeat.newBuilder().setNodeId(config.nodeId()))
            .build();
    this.leaseKeeper =
        new LeaseKeeper(
            config.nodeId(),
            config.time(),
            config.leaseTimeoutMs(),
            config.clockSkewMarginMs(),
            () -> {
              faults.hit(FaultPoints.LEASE_HEARTBEAT, config.nodeId());
              String hold = heartbeatHold.get();
              if (hold != null) {
                throw new IllegalStateException("not renewing this node's lease: " + hold);
              }
              // A node waiting to be added is no member: its heartbeat could not be applied, and
              // with TLS the members would refuse (and log) its connection every time.
              if (!config.bootstrapsAsVoter() && !raftPeers().containsKey(config.nodeId())) {
                throw new IllegalStateException("not in the Raft group yet");
              }
              return calls.heartbeat(heartbeat);
            },
            leaseExecutor);
  }

  /**
   * Starts the Raft server and clients, then (without waiting) registers this node in the map and
   * starts heartbeating and liveness monitoring. Returns once the server is listening; use {@link
   * #registered()} to wait for the registration to be committed.
   */
  public static ControlPlane start(ControlPlaneConfig config) throws IOException {
    ControlPlane cp = new ControlPlane(config);
    try {
      cp.server.start();
    } catch (IOException | RuntimeException e) {
      cp.close();
      throw e;
    }
    cp.register();
    cp.leaseKeeper.start();
    cp.livenessMonitor.start();
    LOG.info(
        "{}: control plane started on {} ({}, {})",
        config.nodeId(),
        config.raftAddress(),
        config.bootstrapsAsVoter() ? "voter" : "joining",
        config.tls() != null ? "mutual TLS, members only" : "plaintext");
    if (config.tls() == null) {
      LOG.warn(
          "{}: Raft on {} runs in plaintext: any process that reaches it can submit cluster"
              + " commands and join the group",
          config.nodeId(),
          config.raftAddress());
    }
    return cp;
  }

  // ---------------------------------------------------------------- commands

  /**
   * Submits a command to the Raft leader; Ratis' client follows leader changes and retries for up
   * to about {@code SUBMIT_ATTEMPTS * 100 ms} (longer when attempts time out). The future is
   * completed on one of this control plane's {@code submit} threads with the result of applying the
   * command (errors such as a stale epoch are results, not exceptions); it fails with an
   * IOException only when the command could not be committed (no leader reachable, closed).
   */
  public CompletableFuture<CommandResult> submit(MapCommand proposed) {
    MapCommand command = MapCommands.proposed(proposed, config.time().nowMs(), config.nodeId());
    return onSubmitThread(
        () -> {
          try {
            faults.hit(FaultPoints.RAFT_SUBMIT, config.nodeId());
          } catch (FaultPoints.Dropped e) {
            throw new IOException("cannot reach the Raft leader: " + e.getMessage(), e);
          }
          return calls.command(command);
        });
  }

  /**
   * {@link #submit} for a command that is harmless applied twice: conditional on an epoch or a
   * heartbeat count (a DOWN mark, a failover's owner change). While this node is the ready leader
   * it commits through its own Raft server ({@link LeaderLocalCalls}), without the client's guess
   * of where the leader is; if it stops leading meanwhile, the command goes through the client.
   */
  public CompletableFuture<CommandResult> submitAsLeader(MapCommand proposed) {
    MapCommand command = MapCommands.proposed(proposed, config.time().nowMs(), config.nodeId());
    return onSubmitThread(
        () -> {
          try {
            faults.hit(FaultPoints.RAFT_SUBMIT, config.nodeId());
          } catch (FaultPoints.Dropped e) {
            throw new IOException("cannot reach the Raft leader: " + e.getMessage(), e);
          }
          return calls.commandAsLeader(command);
        });
  }

  /** How many commands this node committed through its own server as the leader. */
  long leaderLocalCommands() {
    return calls.leaderLocalCommands();
  }

  private <T> CompletableFuture<T> onSubmitThread(SubmitThreads.IoCall<T> call) {
    return submitThreads.run(call);
  }

  /**
   * Completes once this node's map is at least as new as the leader's was at some instant after
   * this call, so that a change committed before it (through any node, e.g. a volume created a
   * moment ago) is in {@link #map()}. Concurrent callers share reads ({@link ReadsAfterNow}): a
   * node that does not know a name asks the leader, without a flood of such lookups becoming a
   * flood of reads.
   */
  public CompletableFuture<ClusterMap> catchUp() {
    return catchUpReads.next().copy(); // a caller's cancel must not fail the others' read
  }

  /**
   * Reads the map linearizably from the leader (a Raft read-only query), unlike {@link #map()},
   * which is this node's replica and may lag the leader.
   */
  public CompletableFuture<ClusterMap> readLinearizable() {
    return readLinearizable(submitThreads);
  }

  private CompletableFuture<ClusterMap> readLinearizable(SubmitThreads threads) {
    return threads.run(
        () -> {
          try {
            faults.hit(FaultPoints.RAFT_SUBMIT, config.nodeId());
          } catch (FaultPoints.Dropped e) {
            throw new IOException("cannot reach the Raft leader: " + e.getMessage(), e);
          }
          ClusterMapSnapshot leaders =
              calls.readMap(
                  config.initialPeers().containsKey(config.nodeId())
                      && raftPeers().containsKey(config.nodeId())
                      && division().map(d -> d.getLeaderId() != null).orElse(false));
          // Answer with this node's own map once it has applied at least as far: callers go on
          // to act on map(), which must never be older than what they read here (a node back
          // from a partition would otherwise act on its stale copy right after the read).
          return stateMachine.awaitApplied(
              leaders.getAppliedIndex(),
              TimeUnit.SECONDS.toMillis(10),
              config.time(),
              () -> closed);
        });
  }

  /**
   * Registers this node (retrying until committed or closed); completes {@link #registered()}. A
   * joining node registers only once a member has added it as a voter: registered before, it would
   * be UP in the map and take placements while its own replica of the map stays empty (the leader
   * sends no log to a non-voter), so it could neither serve nor take copies.
   */
  private void register() {
    if (!config.bootstrapsAsVoter() && !raftPeers().containsKey(config.nodeId())) {
      if (closed) {
        registered.completeExceptionally(new IOException("closed before registration"));
        return;
      }
      if (!joinLogged) {
        joinLogged = true;
        LOG.info(
            "{}: waiting to be added to the Raft group (cluster add-node {} --raft {})",
            config.nodeId(),
            config.nodeId(),
            config.raftAddress());
      }
      registrationsPutOff.incrementAndGet();
      try {
        timer.schedule(this::register, 200, TimeUnit.MILLISECONDS);
      } catch (RejectedExecutionException rejected) {
        registered.completeExceptionally(rejected);
      }
      return;
    }
    MapCommand cmd =
        MapCommand.newBuilder()
            .setRegisterMember(
                MapCommand.RegisterMember.newBuilder()
                    .setId(config.nodeId())
                    .setGrpcAddress(config.grpcAddress())
                    .setRaftAddress(config.raftAddress())
                    .setFaultDomain(config.faultDomain()))
            .build();
    submit(cmd)
        .whenComplete(
            (r, e) -> {
              if (e == null && r.getOk()) {
                registered.complete(r);
                return;
              }
              if (closed) {
                registered.completeExceptionally(new IOException("closed before registration"));
                return;
              }
              LOG.info(
                  "{}: registration not committed yet ({}), retrying",
                  config.nodeId(),
                  e != null ? e.toString() : r.getMessage());
              try {
                timer.schedule(this::register, 500, TimeUnit.MILLISECONDS);
              } catch (RejectedExecutionException rejected) {
                registered.completeExceptionally(rejected);
              }
            });
  }

  /** Completes when this node's RegisterMember has been committed. */
  public CompletableFuture<CommandResult> registered() {
    return registered;
  }

  /**
   * How often this node, not yet in the Raft group, looked and put its registration off (every 200
   * ms until a member adds it): a test waits for a few of these decisions, not for a fixed time,
   * before it checks that the node has not registered.
   */
  public long registrationsPutOff() {
    return registrationsPutOff.get();
  }

  // ---------------------------------------------------------------- state

  /** Where tests inject faults into this control plane (the node shares its own instance). */
  public void useFaultPoints(FaultPoints faults) {
    this.faults = faults;
    stateMachine.useFaultPoints(faults, config.nodeId());
  }

  /** This node's replica of the map (as of its last applied command). */
  public ClusterMap map() {
    return stateMachine.map();
  }

  /** This node's copy of the cluster's event history. */
  public ClusterEventLog events() {
    return stateMachine.events();
  }

  /** Called with every new map, on the state machine's thread, in apply order; keep it quick. */
  public void addListener(Consumer<ClusterMap> listener) {
    stateMachine.addListener(listener);
  }

  public void removeListener(Consumer<ClusterMap> listener) {
    stateMachine.removeListener(listener);
  }

  /** Called with every applied command and its result (state machine thread; keep it quick). */
  public void addCommandListener(ClusterStateMachine.CommandListener listener) {
    stateMachine.addCommandListener(listener);
  }

  /** Called with the new leader id (empty: unknown) on leader changes, on the events thread. */
  public void addLeaderListener(Consumer<Optional<String>> listener) {
    stateMachine.addLeaderListener(listener);
  }

  public String nodeId() {
    return config.nodeId();
  }

  public ControlPlaneConfig config() {
    return config;
  }

  /**
   * Stops renewing this node's lease while {@code reason} answers non-null (e.g. its local flash
   * failed an fsync): the lease runs out, the node stops serving, and the leader gives its volumes
   * to replicas as for a dead node. This holds for the leader itself too: its {@link
   * LivenessMonitor} marks its own node DOWN only while its heartbeats are held this way.
   */
  public void holdHeartbeatsWhile(java.util.function.Supplier<String> reason) {
    this.heartbeatHold = reason;
  }

  public LeaseKeeper leaseKeeper() {
    return leaseKeeper;
  }

  ClusterStateMachine stateMachine() {
    return stateMachine;
  }

  public LivenessMonitor livenessMonitor() {
    return livenessMonitor;
  }

  /** This node holds a valid lease by its own clock (shorthand for the lease keeper's). */
  public boolean leaseValid() {
    return leaseKeeper.leaseValid();
  }

  private Optional<DivisionInfo> division() {
    try {
      return Optional.of(server.getDivision(GROUP_ID).getInfo());
    } catch (IOException | RuntimeException e) {
      return Optional.empty();
    }
  }

  public boolean isLeader() {
    return !closed && division().map(DivisionInfo::isLeader).orElse(false);
  }

  /** Leader that has committed an entry of its term: its view of the log is complete. */
  public boolean isLeaderReady() {
    return !closed && division().map(d -> d.isLeader() && d.isLeaderReady()).orElse(false);
  }

  /** This node's current Raft term, or -1 while its Raft server is not up. */
  public long raftTerm() {
    return closed ? -1 : division().map(DivisionInfo::getCurrentTerm).orElse(-1L);
  }

  /** The highest log index this node knows committed, or -1 while its Raft server is not up. */
  public long raftCommitIndex() {
    if (closed) {
      return -1;
    }
    try {
      return server.getDivision(GROUP_ID).getRaftLog().getLastCommittedIndex();
    } catch (IOException | RuntimeException e) {
      return -1;
    }
  }

  /** The current leader as this node knows it. */
  public Optional<String> leaderId() {
    if (closed) {
      return Optional.empty();
    }
    Optional<String> fromDivision =
        division().map(DivisionInfo::getLeaderId).map(RaftPeerId::toString);
    return fromDivision.isPresent() ? fromDivision : stateMachine.leaderId();
  }

  /** Raft voters in this node's current configuration, id to address. */
  public Map<String, String> raftPeers() {
    Map<String, String> out = new java.util.TreeMap<>();
    try {
      for (RaftPeer p : server.getDivision(GROUP_ID).getRaftConf().getCurrentPeers()) {
        out.put(p.getId().toString(), p.getAddress());
      }
    } catch (IOException e) {
      // not in the group yet
    }
    return out;
  }

  /**
   * The nodes admitted to Raft connections with this node, id to Raft address, as asked on every
   * TLS handshake and every call: the peers of this node's Raft configuration (during a change,
   * those of the old and the new configuration, listeners included), plus nodes being added ({@link
   * #addPeer}); and, while this node is in no configuration yet (it is waiting to be added), the
   * voters it was started with, so that the leader can catch it up.
   */
  public Map<String, String> allowedRaftPeers() {
    Map<String, String> out = new java.util.TreeMap<>();
    RaftConfiguration conf = raftConfiguration();
    if (conf != null) {
      for (RaftPeerRole role : List.of(RaftPeerRole.FOLLOWER, RaftPeerRole.LISTENER)) {
        for (RaftPeer p : conf.getAllPeers(role)) {
          out.put(p.getId().toString(), p.getAddress());
        }
      }
    }
    Set<String> inConfiguration = Set.copyOf(out.keySet());
    if (out.isEmpty()) {
      out.putAll(config.initialPeers());
    }
    admissions.current(config.time().nowMs(), inConfiguration).forEach(out::putIfAbsent);
    return out;
  }

  private RaftConfiguration raftConfiguration() {
    RaftServer s = server;
    if (s == null) {
      return null;
    }
    try {
      return s.getDivision(GROUP_ID).getRaftConf();
    } catch (IOException | RuntimeException e) {
      return null; // not started, or not in the group yet
    }
  }

  /**
   * Calls {@code listener} with every Raft connection or call this node refuses (TLS only). It runs
   * on a Netty event loop or a gRPC thread and must be quick.
   */
  public void addRaftRefusalListener(Consumer<RaftConnectionRefusal> listener) {
    refusals.addListener(listener);
  }

  public void removeRaftRefusalListener(Consumer<RaftConnectionRefusal> listener) {
    refusals.removeListener(listener);
  }

  // ---------------------------------------------------------------- membership

  /**
   * Adds a voter online (Raft setConfiguration, mode ADD). The new node must be running (started
   * with initialPeers not containing itself); the leader brings it up to date first. Blocks until
   * the new configuration is committed. Registering the node in the map is separate (the new node
   * does it itself on start).
   *
   * <p>With TLS, the leader connects to the new node to catch it up before any configuration names
   * it, so the node is first admitted by a committed {@code AdmitRaftPeer} (every member then
   * accepts its certificate and connections to it, for {@link #ADMISSION_TTL_MS}); the admission is
   * withdrawn if the change fails. The new node itself accepts the voters it was started with until
   * it has a configuration.
   */
  public void addPeer(String id, String raftAddress) throws IOException {
    if (config.tls() != null) {
      admitRaftPeer(id, raftAddress, config.time().nowMs() + ADMISSION_TTL_MS);
    }
    RaftClientReply reply;
    try {
      reply = setConfigurationAdd(id, raftAddress);
    } catch (IOException | RuntimeException e) {
      withdrawAdmission(id, raftAddress);
      throw e;
    }
    if (!reply.isSuccess()) {
      withdrawAdmission(id, raftAddress);
      throw new IOException("addPeer " + id + " failed", reply.getException());
    }
    LOG.info("{}: added Raft peer {} at {}", config.nodeId(), id, raftAddress);
  }

  private void admitRaftPeer(String id, String raftAddress, long untilMs) throws IOException {
    CommandResult r =
        calls.command(
            MapCommand.newBuilder()
                .setAdmitRaftPeer(
                    MapCommand.AdmitRaftPeer.newBuilder()
                        .setNodeId(id)
                        .setRaftAddress(raftAddress)
                        .setUntilMs(untilMs))
                .build());
    if (!r.getOk()) {
      throw new IOException("admitting " + id + " to Raft failed: " + r.getMessage());
    }
  }

  private void withdrawAdmission(String id, String raftAddress) {
    if (config.tls() == null) {
      return;
    }
    try {
      admitRaftPeer(id, raftAddress, 0);
    } catch (IOException | RuntimeException e) {
      LOG.warn(
          "{}: could not withdraw the Raft admission of {} (it lapses by itself within {} s)",
          config.nodeId(),
          id,
          ADMISSION_TTL_MS / 1000,
          e);
    }
  }

  private RaftClientReply setConfigurationAdd(String id, String raftAddress) throws IOException {
    return calls
        .admin()
        .admin()
        .setConfiguration(
            SetConfigurationRequest.Arguments.newBuilder()
                .setServersInNewConf(List.of(RaftWiring.peer(id, raftAddress)))
                .setMode(SetConfigurationRequest.Mode.ADD)
                .build());
  }

  /**
   * Removes a voter online (Raft setConfiguration, compare-and-set on the configuration this node
   * sees, retried if it changed meanwhile). The removed node should then be closed. Its entry in
   * the map is separate: submit RemoveMember once it owns nothing.
   */
  public void removePeer(String id) throws IOException {
    // An admission still running (the node was added moments ago, or a member has not seen it in
    // the configuration yet) would keep admitting it after the removal.
    withdrawAdmission(id, "");
    IOException last = null;
    for (int attempt = 0; attempt < 10; attempt++) {
      Collection<RaftPeer> current = server.getDivision(GROUP_ID).getRaftConf().getCurrentPeers();
      List<RaftPeer> next = new ArrayList<>();
      boolean found = false;
      for (RaftPeer p : current) {
        if (p.getId().toString().equals(id)) {
          found = true;
        } else {
          next.add(p);
        }
      }
      if (!found) {
        return;
      }
      RaftClientReply reply =
          calls
              .admin()
              .admin()
              .setConfiguration(
                  SetConfigurationRequest.Arguments.newBuilder()
                      .setServersInCurrentConf(new ArrayList<>(current))
                      .setServersInNewConf(next)
                      .setMode(SetConfigurationRequest.Mode.COMPARE_AND_SET)
                      .build());
      if (reply.isSuccess()) {
        LOG.info("{}: removed Raft peer {}", config.nodeId(), id);
        return;
      }
      last = new IOException("removePeer " + id + " failed", reply.getException());
      try {
        config.time().sleepMs(200);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new InterruptedIOException("interrupted");
      }
    }
    throw last;
  }

  // ---------------------------------------------------------------- lifecycle

  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    leaseKeeper.close();
    livenessMonitor.close();
    leaseExecutor.shutdownNow();
    timer.shutdownNow();
    closeQuietly("raft server", server);
    closeQuietly("Raft clients", calls);
    submitThreads.shutdownNow();
    catchUpThreads.shutdownNow();
    eventExecutor.shutdown();
    try {
      submitThreads.awaitTermination(5, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    awaitQuietly(leaseExecutor);
    awaitQuietly(eventExecutor);
    registered.completeExceptionally(new IOException("closed"));
    LOG.info("{}: control plane closed", config.nodeId());
  }

  private void closeQuietly(String what, AutoCloseable c) {
    if (c == null) {
      return;
    }
    try {
      c.close();
    } catch (Exception e) {
      LOG.warn("{}: closing {} failed", config.nodeId(), what, e);
    }
  }

  private static void awaitQuietly(ExecutorService e) {
    try {
      e.awaitTermination(5, TimeUnit.SECONDS);
    } catch (InterruptedException ie) {
      Thread.currentThread().interrupt();
    }
  }
}
