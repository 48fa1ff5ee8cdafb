package io.peerflash.client;

import com.google.protobuf.ByteString;
import com.google.protobuf.UnsafeByteOperations;
import io.grpc.Deadline;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.CreateVolumeRequest;
import io.peerflash.proto.v1.DeleteVolumeRequest;
import io.peerflash.proto.v1.FlushRequest;
import io.peerflash.proto.v1.FlushResponse;
import io.peerflash.proto.v1.GetStatusRequest;
import io.peerflash.proto.v1.GetVolumeRequest;
import io.peerflash.proto.v1.ListVolumesRequest;
import io.peerflash.proto.v1.NodeServiceGrpc;
import io.peerflash.proto.v1.NodeStatus;
import io.peerflash.proto.v1.ReadRequest;
import io.peerflash.proto.v1.SetPolicyRequest;
import io.peerflash.proto.v1.TrimRequest;
import io.peerflash.proto.v1.Volume;
import io.peerflash.proto.v1.VolumePolicy;
import io.peerflash.proto.v1.VolumeServiceGrpc;
import io.peerflash.proto.v1.WriteRequest;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * Java client of a PeerFlash node or cluster. Thread-safe; one instance can be shared by many
 * threads.
 *
 * <p>Every failed call throws {@link PeerFlashException}. Each call has a deadline ({@link
 * #DEFAULT_DEADLINE} unless configured), except {@link #flush} and {@link #setPolicy}, which wait
 * for destaging and therefore get no deadline unless one is given explicitly: a large dirty volume
 * on slow shared storage can legitimately take longer than any fixed I/O timeout.
 *
 * <h2>Clusters: redirects and failover</h2>
 *
 * <p>The client may be given several node addresses ({@code HOST:PORT,HOST:PORT,...}); it keeps one
 * channel per address, opened on first use. Calls about a volume (write, read, trim, flush,
 * getVolume, setPolicy, deleteVolume) go to the node last seen owning it, else to the last node
 * that answered, else to the first target. Other calls (createVolume, listVolumes, status) go to
 * any node that answers.
 *
 * <ul>
 *   <li><b>Redirects.</b> A node that does not own the volume fails the call with
 *       FAILED_PRECONDITION and a {@code peerflash-owner: NODEID@HOST:PORT} trailer; the client
 *       remembers that owner and resends there, following at most {@value #MAX_REDIRECTS} redirects
 *       in a row. A longer chain, or a redirect to an owner that has just proved unreachable, means
 *       ownership is moving: it is handled like an unreachable node below.
 *   <li><b>Failover.</b> On UNAVAILABLE (node dead, unreachable, shutting down), or
 *       DEADLINE_EXCEEDED before a connection was established, the call is resent to the next known
 *       address (targets, then owners learned from redirects); once every address has failed, the
 *       client backs off (50 ms, doubling, at most 1 s) and starts over, until the retry budget
 *       ({@link #DEFAULT_RETRY_BUDGET} from the first failure, and never past the call's deadline)
 *       runs out; then the last failure is thrown. A failover lasting a few seconds is thus
 *       invisible to callers.
 *   <li><b>Fail fast.</b> While no node has ever answered this client (wrong addresses, cluster not
 *       started), a call fails as soon as each address has been tried once: there is nothing to
 *       fail over from.
 *   <li><b>Retried calls are assumed idempotent.</b> A write is idempotent by (volume, offset,
 *       data): writing the same bytes again is harmless for a block device, so a write whose
 *       outcome is unknown (the node died after receiving it) is simply sent again; likewise read,
 *       trim, flush, getVolume and setPolicy. A retried createVolume or deleteVolume whose first
 *       attempt did take effect reports ALREADY_EXISTS or NOT_FOUND.
 *   <li>Any other failure is thrown at once, with the server's code.
 * </ul>
 *
 * <p>A {@link WriteStreamSession} is bound to one node and neither follows redirects nor fails
 * over; {@link #writeWithRetry} builds a resilient pipelined upload on top of it.
 */
public final class PeerFlashClient implements AutoCloseable {
  public static final Duration DEFAULT_DEADLINE = Duration.ofSeconds(60);

  /** How long a call keeps retrying unreachable nodes, from its first failure. */
  public static final Duration DEFAULT_RETRY_BUDGET = Duration.ofSeconds(15);

  /** How long a TCP connection attempt may take before the node is deemed unreachable. */
  public static final Duration CONNECT_TIMEOUT = Duration.ofSeconds(3);

  /** Redirects followed in a row before the client backs off and asks again. */
  public static final int MAX_REDIRECTS = 3;

  /** Opens a channel to a node's client address {@code HOST:PORT}; tests pass in-process ones. */
  @FunctionalInterface
  public interface ChannelFactory {
    ManagedChannel open(String address);
  }

  /**
   * The bytes of an upload for {@link #writeWithRetry}: {@code length} bytes at {@code position}
   * from the start of the upload. May be asked again for a chunk that must be resent.
   */
  @FunctionalInterface
  public interface ChunkSource {
    ByteString read(long position, int length) throws IOException;
  }

  private final Routing routing;
  private final boolean ownsRouting;

  /** Longest single attempt of a block I/O call before the client tries another node. */
  static final Duration IO_ATTEMPT_TIMEOUT = Duration.ofSeconds(5);

  private final Duration deadline;
  private final Duration flushDeadline;
  private final Duration retryBudget;
  private final FailoverCaller caller;

  /**
   * A client over a channel the caller keeps ownership of (e.g. an in-process channel). It cannot
   * follow redirects to other nodes; use {@link Builder#channelFactory} for that.
   */
  public PeerFlashClient(ManagedChannel channel) {
    this(
        new Routing(Objects.requireNonNull(channel, "channel").authority(), channel, false, null),
        false,
        DEFAULT_DEADLINE,
        null,
        DEFAULT_RETRY_BUDGET);
  }

  private PeerFlashClient(
      Routing routing,
      boolean ownsRouting,
      Duration deadline,
      Duration flushDeadline,
      Duration retryBudget) {
    this.routing = routing;
    this.ownsRouting = ownsRouting;
    this.deadline = deadline;
    this.flushDeadline = flushDeadline;
    this.retryBudget = retryBudget;
    this.caller = new FailoverCaller(routing, retryBudget);
  }

  /**
   * Connects to {@code HOST:PORT}, or to a cluster given as {@code HOST:PORT,HOST:PORT,...}, with
   * {@code security} (mutual TLS, or plaintext to an insecure cluster); {@link #close()} shuts the
   * channels down.
   */
  public static PeerFlashClient connect(String targets, ClientSecurity security) {
    return builder().target(targets).security(security).build();
  }

  public static Builder builder() {
    return new Builder();
  }

  /** The client port a node listens on unless told otherwise. */
  public static final int DEFAULT_PORT = 7601;

  /**
   * Parses {@code HOST[:PORT][,HOST[:PORT]...]} (blanks around commas ignored, duplicates dropped);
   * a host without a port ({@code localhost}, {@code 10.0.0.5}, {@code [::1]}) gets {@link
   * #DEFAULT_PORT}.
   *
   * @throws IllegalArgumentException naming the first malformed entry
   */
  public static List<String> parseTargets(String targets) {
    Objects.requireNonNull(targets, "targets");
    List<String> result = new ArrayList<>();
    for (String part : targets.split(",", -1)) {
      String t = part.trim();
      if (t.isEmpty()) {
        continue;
      }
      if (t.indexOf(':') < 0 || (t.startsWith("[") && t.endsWith("]"))) {
        t = t + ":" + DEFAULT_PORT; // a host name, an IPv4 address or a bracketed IPv6 one
      }
      int colon = t.lastIndexOf(':');
      if (colon <= 0 || colon == t.length() - 1) {
        throw new IllegalArgumentException("target must be HOST:PORT, got '" + t + "'");
      }
      String port = t.substring(colon + 1);
      int p;
      try {
        p = Integer.parseInt(port);
      } catch (NumberFormatException e) {
        p = -1;
      }
      if (p < 0 || p > 65535) {
        throw new IllegalArgumentException("bad port in target '" + t + "'");
      }
      if (!result.contains(t)) {
        result.add(t);
      }
    }
    if (result.isEmpty()) {
      throw new IllegalArgumentException("no target given");
    }
    return result;
  }

  /**
   * A view of this client whose every call, flush and set-policy included, uses {@code deadline}
   * (null: none). The view shares the channels and never closes them; keep this client open while
   * the view is in use.
   */
  public PeerFlashClient withDeadline(Duration deadline) {
    return new PeerFlashClient(routing, false, deadline, deadline, retryBudget);
  }

  /** The channel to the node calls without a volume go to first (e.g. to watch its state). */
  public ManagedChannel channel() {
    return routing.channel(routing.first(null));
  }

  /** The address of {@code volume}'s owner as last seen by this client, or null. */
  public String ownerOf(String volume) {
    return routing.owner(volume);
  }

  public Volume createVolume(String name, long sizeBytes, CacheMode mode, int replicas) {
    return createVolume(name, sizeBytes, policy(mode, replicas));
  }

  /** Creates a volume with a whole policy (mode, replicas, on-peer-loss). */
  public Volume createVolume(String name, long sizeBytes, VolumePolicy policy) {
    return createVolume(name, sizeBytes, policy, false);
  }

  /**
   * Creates a volume; with {@code adoptExisting} the file already on shared storage under its name
   * becomes its content (size 0: the file's size).
   */
  public Volume createVolume(
      String name, long sizeBytes, VolumePolicy policy, boolean adoptExisting) {
    CreateVolumeRequest request =
        CreateVolumeRequest.newBuilder()
            .setName(name)
            .setSizeBytes(sizeBytes)
            .setPolicy(policy)
            .setAdoptExisting(adoptExisting)
            .build();
    return createVolume(request);
  }

  /** Creates a volume from a whole request (e.g. with {@code allow_degraded}). */
  public Volume createVolume(CreateVolumeRequest request) {
    return call(null, deadline, (ch, d) -> volumes(ch, d).createVolume(request));
  }

  public Volume getVolume(String name) {
    GetVolumeRequest request = GetVolumeRequest.newBuilder().setName(name).build();
    return call(name, deadline, (ch, d) -> volumes(ch, d).getVolume(request));
  }

  public List<Volume> listVolumes() {
    return call(
        null,
        deadline,
        (ch, d) ->
            volumes(ch, d).listVolumes(ListVolumesRequest.getDefaultInstance()).getVolumesList());
  }

  public void deleteVolume(String name) {
    DeleteVolumeRequest request = DeleteVolumeRequest.newBuilder().setName(name).build();
    call(name, deadline, (ch, d) -> volumes(ch, d).deleteVolume(request));
  }

  /**
   * Changes the volume's policy. Leaving write-back destages every dirty block first, so this uses
   * the flush deadline (none by default).
   */
  public Volume setPolicy(String name, CacheMode mode, int replicas) {
    return setPolicy(name, policy(mode, replicas));
  }

  /** Replaces a volume's policy; an unspecified on-peer-loss is kept. */
  public Volume setPolicy(String name, VolumePolicy policy) {
    return setPolicy(SetPolicyRequest.newBuilder().setName(name).setPolicy(policy).build());
  }

  /** Changes a volume's policy from a whole request (e.g. with {@code allow_degraded}). */
  public Volume setPolicy(SetPolicyRequest request) {
    return call(request.getName(), flushDeadline, (ch, d) -> volumes(ch, d).setPolicy(request));
  }

  /** See {@link #write(String, long, ByteString)}. */
  public boolean write(String name, long offset, byte[] data) {
    return write(name, offset, UnsafeByteOperations.unsafeWrap(data));
  }

  /** Writes the buffer's remaining bytes; they must not change until this returns. */
  public boolean write(String name, long offset, ByteBuffer data) {
    return write(name, offset, UnsafeByteOperations.unsafeWrap(data));
  }

  /**
   * Writes {@code data} at {@code offset}. Follows redirects and, after UNAVAILABLE, resends the
   * same bytes to another node: safe because a write is idempotent by (volume, offset, data).
   *
   * @return true when the write went through to shared storage before its ack because a replica
   *     could not take its copy (the volume is short of copies until re-protection ends)
   */
  public boolean write(String name, long offset, ByteString data) {
    WriteRequest request =
        WriteRequest.newBuilder().setVolume(name).setOffset(offset).setData(data).build();
    return ioCall(name, VolumeServiceGrpc.getWriteMethod(), request).getWentThrough();
  }

  public byte[] read(String name, long offset, int length) {
    return readByteString(name, offset, length).toByteArray();
  }

  /** Like {@link #read} but without copying the received bytes. */
  public ByteString readByteString(String name, long offset, int length) {
    ReadRequest request =
        ReadRequest.newBuilder().setVolume(name).setOffset(offset).setLength(length).build();
    return ioCall(name, VolumeServiceGrpc.getReadMethod(), request).getData();
  }

  /** Waits until every write acknowledged before the call is durable on shared storage. */
  public FlushResponse flush(String name) {
    FlushRequest request = FlushRequest.newBuilder().setVolume(name).build();
    return call(name, flushDeadline, (ch, d) -> volumes(ch, d).flush(request));
  }

  public void trim(String name, long offset, long length) {
    TrimRequest request =
        TrimRequest.newBuilder().setVolume(name).setOffset(offset).setLength(length).build();
    ioCall(name, VolumeServiceGrpc.getTrimMethod(), request);
  }

  /** The status of one node: the first that answers. */
  public NodeStatus status() {
    return call(
        null,
        deadline,
        (ch, d) -> {
          NodeServiceGrpc.NodeServiceBlockingStub stub = NodeServiceGrpc.newBlockingStub(ch);
          return (d == null ? stub : stub.withDeadline(d))
              .getStatus(GetStatusRequest.getDefaultInstance());
        });
  }

  /** The cluster map as the answering node holds it (UNIMPLEMENTED on a single node). */
  public io.peerflash.proto.v1.ClusterStatus clusterStatus() {
    return call(
        null,
        deadline,
        (ch, d) -> {
          io.peerflash.proto.v1.ClusterServiceGrpc.ClusterServiceBlockingStub stub =
              io.peerflash.proto.v1.ClusterServiceGrpc.newBlockingStub(ch);
          return (d == null ? stub : stub.withDeadline(d))
              .getClusterStatus(io.peerflash.proto.v1.GetClusterStatusRequest.getDefaultInstance());
        });
  }

  /**
   * The cluster's event history as the answering node holds it: failovers, fencing, re-protection,
   * moves, drains, membership and policy changes (UNIMPLEMENTED on a single node).
   */
  public io.peerflash.proto.v1.ListClusterEventsResponse clusterEvents(
      io.peerflash.proto.v1.ListClusterEventsRequest request) {
    return call(
        null,
        deadline,
        (ch, d) -> {
          io.peerflash.proto.v1.ClusterServiceGrpc.ClusterServiceBlockingStub stub =
              io.peerflash.proto.v1.ClusterServiceGrpc.newBlockingStub(ch);
          return (d == null ? stub : stub.withDeadline(d)).listClusterEvents(request);
        });
  }

  /** How long {@link #moveVolume(String, String)} lets the owner take. */
  public static final Duration DEFAULT_MOVE_TIMEOUT = Duration.ofMinutes(2);

  /**
   * Hands {@code volume} to the node {@code to} (an UP member) without losing an acknowledged
   * write; I/O on the volume pauses briefly (this client retries it). Moving to the current owner
   * succeeds without change. Any node may be asked: it forwards to the owner.
   */
  public io.peerflash.proto.v1.MoveVolumeResponse moveVolume(String volume, String to) {
    return moveVolume(volume, to, DEFAULT_MOVE_TIMEOUT);
  }

  /** Like {@link #moveVolume(String, String)}, with a bound on the owner's work. */
  public io.peerflash.proto.v1.MoveVolumeResponse moveVolume(
      String volume, String to, Duration timeout) {
    io.peerflash.proto.v1.MoveVolumeRequest request =
        io.peerflash.proto.v1.MoveVolumeRequest.newBuilder()
            .setVolume(volume)
            .setTo(to)
            .setTimeoutMs(timeout.toMillis())
            .build();
    // The answer can take as long as the move itself, plus the forwarding.
    Duration callDeadline = timeout.plusSeconds(30);
    return adminCall(callDeadline, (ch, d) -> admin(ch, d).moveVolume(request));
  }

  /**
   * Marks {@code node} DRAINING (no new placements; it moves its volumes away, owners replace it as
   * a replica) and reports what it still holds. Calling it again only reports.
   */
  public io.peerflash.proto.v1.DrainNodeResponse drainNode(String node) {
    io.peerflash.proto.v1.DrainNodeRequest request =
        io.peerflash.proto.v1.DrainNodeRequest.newBuilder().setNode(node).build();
    return adminCall(deadline, (ch, d) -> admin(ch, d).drainNode(request));
  }

  /** Cancels a drain: the DRAINING member is UP again; what it moved stays moved. */
  public io.peerflash.proto.v1.DrainNodeResponse cancelDrain(String node) {
    io.peerflash.proto.v1.DrainNodeRequest request =
        io.peerflash.proto.v1.DrainNodeRequest.newBuilder().setNode(node).setCancel(true).build();
    return adminCall(deadline, (ch, d) -> admin(ch, d).drainNode(request));
  }

  /** Removes a drained (or DOWN) member holding nothing from the map and the Raft group. */
  public io.peerflash.proto.v1.RemoveNodeResponse removeNode(String node) {
    io.peerflash.proto.v1.RemoveNodeRequest request =
        io.peerflash.proto.v1.RemoveNodeRequest.newBuilder().setNode(node).build();
    return adminCall(deadline, (ch, d) -> admin(ch, d).removeNode(request));
  }

  /**
   * Adds the running node {@code node}, whose Raft server listens at {@code raftAddress}, as a Raft
   * voter; returns once it has registered in the cluster map.
   */
  public io.peerflash.proto.v1.AddNodeResponse addNode(
      String node, String raftAddress, Duration timeout) {
    io.peerflash.proto.v1.AddNodeRequest request =
        io.peerflash.proto.v1.AddNodeRequest.newBuilder()
            .setNode(node)
            .setRaftAddress(raftAddress)
            .setTimeoutMs(timeout.toMillis())
            .build();
    return adminCall(timeout.plusSeconds(10), (ch, d) -> admin(ch, d).addNode(request));
  }

  private static io.peerflash.proto.v1.ClusterServiceGrpc.ClusterServiceBlockingStub admin(
      ManagedChannel ch, Deadline d) {
    io.peerflash.proto.v1.ClusterServiceGrpc.ClusterServiceBlockingStub stub =
        io.peerflash.proto.v1.ClusterServiceGrpc.newBlockingStub(ch);
    return d == null ? stub : stub.withDeadline(d);
  }

  /**
   * A cluster administration call. An UNAVAILABLE the node itself sent (a move that failed, say) is
   * thrown rather than resent; only a node that could not be reached (the status carries the
   * transport's cause) is tried again.
   */
  private <T> T adminCall(Duration callDeadline, FailoverCaller.Attempt<T> attempt) {
    return call(
        null,
        callDeadline,
        (ch, d) -> {
          try {
            return attempt.run(ch, d);
          } catch (StatusRuntimeException e) {
            if (e.getStatus().getCode() == Status.Code.UNAVAILABLE
                && e.getStatus().getCause() == null) {
              throw PeerFlashException.from(e);
            }
            throw e;
          }
        });
  }

  /**
   * Opens a pipelined writer over the WriteStream RPC with at most {@code maxInFlight}
   * unacknowledged writes, to the node calls without a volume go to. The stream itself has no
   * deadline; {@link WriteStreamSession#close()} waits up to this client's deadline for the last
   * acknowledgements.
   */
  public WriteStreamSession openWriteStream(int maxInFlight) {
    return openWriteStream(null, maxInFlight);
  }

  /**
   * Like {@link #openWriteStream(int)}, but to the node last seen owning {@code volume}. The
   * session stays bound to that node: see {@link WriteStreamSession} for what happens when it stops
   * owning the volume or dies.
   */
  public WriteStreamSession openWriteStream(String volume, int maxInFlight) {
    ManagedChannel ch = routing.channel(routing.first(volume));
    return new WriteStreamSession(VolumeServiceGrpc.newStub(ch), maxInFlight, deadline);
  }

  /**
   * Writes {@code length} bytes from {@code source} at {@code offset} of {@code volume} in chunks
   * of {@code chunkBytes}, pipelined over write streams with at most {@code maxInFlight} chunks
   * unanswered, riding out redirects and failovers.
   *
   * <p>The first chunk is sent with {@link #write(String, long, ByteString)}, which finds the
   * volume's owner; the rest go over a {@link WriteStreamSession} to that owner. When a streamed
   * chunk fails with UNAVAILABLE, FAILED_PRECONDITION, CANCELLED or DEADLINE_EXCEEDED (the owner
   * moved or died, or the stream broke), no further chunk is streamed; once the stream is closed,
   * every such chunk is read again from {@code source} and resent with {@code write}, which follows
   * the redirect or fails over (and throws if that does not succeed within the retry budget); then
   * a new stream is opened to the owner for the remaining chunks. Resending is safe because writes
   * are idempotent by (volume, offset, data). Any other failure is thrown once the stream is
   * closed, leaving the range partly written.
   *
   * @return the chunks that went through to shared storage before their ack because a replica could
   *     not take their copy (see {@link #write(String, long, ByteString)})
   * @throws PeerFlashException on a failure that could not be retried
   * @throws IOException from {@code source}
   */
  public long writeWithRetry(
      String volume, long offset, long length, int chunkBytes, int maxInFlight, ChunkSource source)
      throws IOException {
    return ChunkedUpload.write(
        this, routing, volume, offset, length, chunkBytes, maxInFlight, source);
  }

  private <T> T call(String volume, Duration callDeadline, FailoverCaller.Attempt<T> attempt) {
    return caller.call(volume, callDeadline, null, attempt);
  }

  @Override
  public void close() {
    if (ownsRouting) {
      routing.close();
    }
  }

  /** A policy of a mode and a replica count (on-peer-loss left to the default). */
  public static VolumePolicy policy(CacheMode mode, int replicas) {
    if (replicas < 0) {
      throw new IllegalArgumentException("replicas must not be negative: " + replicas);
    }
    return VolumePolicy.newBuilder().setMode(mode).setReplicas(replicas).build();
  }

  private static VolumeServiceGrpc.VolumeServiceBlockingStub volumes(
      ManagedChannel ch, Deadline d) {
    VolumeServiceGrpc.VolumeServiceBlockingStub stub = VolumeServiceGrpc.newBlockingStub(ch);
    return d == null ? stub : stub.withDeadline(d);
  }

  /**
   * A block I/O call: besides the call deadline, each attempt is bounded by {@link
   * #IO_ATTEMPT_TIMEOUT}, so a node that froze with the connection open (a long pause, SIGSTOP)
   * costs one attempt, not the whole call; the next attempt finds the volume's new owner. I/O is
   * idempotent, so the retry is safe. The deadlines are kept by the waiting thread ({@link
   * TimedBlockingCall}), not by gRPC timers, which cost every call a tenth of a round trip.
   */
  private <ReqT, RespT> RespT ioCall(
      String volume, MethodDescriptor<ReqT, RespT> method, ReqT request) {
    return caller.call(
        volume,
        deadline,
        IO_ATTEMPT_TIMEOUT,
        (ch, d) -> TimedBlockingCall.call(ch, method, request, d));
  }

  /** Configures a client: where it connects, its deadlines and its retry budget. */
  public static final class Builder {
    private ManagedChannel channel;
    private boolean ownsChannel;
    private List<String> targets;
    private ChannelFactory channelFactory;
    private Duration deadline = DEFAULT_DEADLINE;
    private Duration flushDeadline;
    private Duration retryBudget = DEFAULT_RETRY_BUDGET;

    private Builder() {}

    /**
     * Plaintext connections, owned by the client, to {@code HOST:PORT} or to several nodes of a
     * cluster, {@code HOST:PORT,HOST:PORT,...}.
     *
     * @throws IllegalArgumentException when malformed (see {@link #parseTargets})
     */
    public Builder target(String targets) {
      this.targets = parseTargets(targets);
      this.channel = null;
      return this;
    }

    /**
     * An existing channel; {@code closeWithClient} hands its ownership to the client. Without a
     * {@link #channelFactory}, redirects to other nodes cannot be followed.
     */
    public Builder channel(ManagedChannel channel, boolean closeWithClient) {
      this.channel = Objects.requireNonNull(channel, "channel");
      this.ownsChannel = closeWithClient;
      this.targets = null;
      return this;
    }

    /**
     * How channels to node addresses (targets, and owners learned from redirects) are opened. The
     * client closes them. See also {@link #security}.
     */
    public Builder channelFactory(ChannelFactory channelFactory) {
      this.channelFactory = channelFactory;
      return this;
    }

    /**
     * Mutual TLS with a client identity, or (for an insecure cluster) plaintext: channels come from
     * {@link ClientSecurity#open}. A client connecting to targets needs this or a {@link
     * #channelFactory}: nothing falls back to plaintext by itself.
     */
    public Builder security(ClientSecurity security) {
      this.channelFactory = security::open;
      return this;
    }

    /** Deadline of every call except flush and set-policy; null for none. */
    public Builder deadline(Duration deadline) {
      this.deadline = deadline;
      return this;
    }

    /** Deadline of flush and set-policy; null (the default) for none. */
    public Builder flushDeadline(Duration flushDeadline) {
      this.flushDeadline = flushDeadline;
      return this;
    }

    /**
     * How long a call keeps retrying unreachable nodes after its first failure (never past its
     * deadline); zero or null disables retries (redirects are still followed).
     */
    public Builder retryBudget(Duration retryBudget) {
      this.retryBudget =
          retryBudget == null || retryBudget.isNegative() ? Duration.ZERO : retryBudget;
      return this;
    }

    private ChannelFactory requireChannelFactory() {
      if (channelFactory == null) {
        throw new IllegalStateException(
            "choose how to connect: security(ClientSecurity.certs(dir)) for mutual TLS, or"
                + " security(ClientSecurity.insecure()) for a cluster run with insecure=true");
      }
      return channelFactory;
    }

    public PeerFlashClient build() {
      Routing routing;
      if (channel != null) {
        routing = new Routing(channel.authority(), channel, ownsChannel, channelFactory);
      } else if (targets != null) {
        routing = new Routing(targets, requireChannelFactory());
      } else {
        throw new IllegalStateException("set a target or a channel");
      }
      return new PeerFlashClient(routing, true, deadline, flushDeadline, retryBudget);
    }
  }
}
