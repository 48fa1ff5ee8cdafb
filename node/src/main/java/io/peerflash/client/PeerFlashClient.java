package io.peerflash.client;

import com.google.protobuf.ByteString;
import com.google.protobuf.UnsafeByteOperations;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.AbstractStub;
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
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * Java client of a PeerFlash node. Thread-safe; one instance can be shared by many threads.
 *
 * <p>Every failed call throws {@link PeerFlashException}. Each call has a deadline ({@link
 * #DEFAULT_DEADLINE} unless configured), except {@link #flush} and {@link #setPolicy}, which wait
 * for destaging and therefore get no deadline unless one is given explicitly: a large dirty volume
 * on slow shared storage can legitimately take longer than any fixed I/O timeout.
 */
public final class PeerFlashClient implements AutoCloseable {
  public static final Duration DEFAULT_DEADLINE = Duration.ofSeconds(60);

  private final ManagedChannel channel;
  private final boolean ownsChannel;
  private final Duration deadline;
  private final Duration flushDeadline;
  private final VolumeServiceGrpc.VolumeServiceBlockingStub volumes;
  private final VolumeServiceGrpc.VolumeServiceStub asyncVolumes;
  private final NodeServiceGrpc.NodeServiceBlockingStub node;

  /** A client over a channel the caller keeps ownership of (e.g. an in-process channel). */
  public PeerFlashClient(ManagedChannel channel) {
    this(channel, false, DEFAULT_DEADLINE, null);
  }

  private PeerFlashClient(
      ManagedChannel channel, boolean ownsChannel, Duration deadline, Duration flushDeadline) {
    this.channel = Objects.requireNonNull(channel, "channel");
    this.ownsChannel = ownsChannel;
    this.deadline = deadline;
    this.flushDeadline = flushDeadline;
    this.volumes = VolumeServiceGrpc.newBlockingStub(channel);
    this.asyncVolumes = VolumeServiceGrpc.newStub(channel);
    this.node = NodeServiceGrpc.newBlockingStub(channel);
  }

  /** Connects over plaintext to {@code HOST:PORT}; {@link #close()} shuts the channel down. */
  public static PeerFlashClient connect(String hostPort) {
    return builder().target(hostPort).build();
  }

  public static Builder builder() {
    return new Builder();
  }

  /**
   * A view of this client whose every call, flush and set-policy included, uses {@code deadline}
   * (null: none). The view shares the channel and never closes it; keep this client open while the
   * view is in use.
   */
  public PeerFlashClient withDeadline(Duration deadline) {
    return new PeerFlashClient(channel, false, deadline, deadline);
  }

  /** The channel calls go through (e.g. to watch its connectivity state). */
  public ManagedChannel channel() {
    return channel;
  }

  public Volume createVolume(String name, long sizeBytes, CacheMode mode, int replicas) {
    CreateVolumeRequest request =
        CreateVolumeRequest.newBuilder()
            .setName(name)
            .setSizeBytes(sizeBytes)
            .setPolicy(policy(mode, replicas))
            .build();
    return call(() -> timed(volumes, deadline).createVolume(request));
  }

  public Volume getVolume(String name) {
    GetVolumeRequest request = GetVolumeRequest.newBuilder().setName(name).build();
    return call(() -> timed(volumes, deadline).getVolume(request));
  }

  public List<Volume> listVolumes() {
    return call(
        () ->
            timed(volumes, deadline)
                .listVolumes(ListVolumesRequest.getDefaultInstance())
                .getVolumesList());
  }

  public void deleteVolume(String name) {
    DeleteVolumeRequest request = DeleteVolumeRequest.newBuilder().setName(name).build();
    call(() -> timed(volumes, deadline).deleteVolume(request));
  }

  /**
   * Changes the volume's policy. Leaving write-back destages every dirty block first, so this uses
   * the flush deadline (none by default).
   */
  public Volume setPolicy(String name, CacheMode mode, int replicas) {
    SetPolicyRequest request =
        SetPolicyRequest.newBuilder().setName(name).setPolicy(policy(mode, replicas)).build();
    return call(() -> timed(volumes, flushDeadline).setPolicy(request));
  }

  public void write(String name, long offset, byte[] data) {
    write(name, offset, UnsafeByteOperations.unsafeWrap(data));
  }

  /** Writes the buffer's remaining bytes; they must not change until this returns. */
  public void write(String name, long offset, ByteBuffer data) {
    write(name, offset, UnsafeByteOperations.unsafeWrap(data));
  }

  public void write(String name, long offset, ByteString data) {
    WriteRequest request =
        WriteRequest.newBuilder().setVolume(name).setOffset(offset).setData(data).build();
    call(() -> timed(volumes, deadline).write(request));
  }

  public byte[] read(String name, long offset, int length) {
    return readByteString(name, offset, length).toByteArray();
  }

  /** Like {@link #read} but without copying the received bytes. */
  public ByteString readByteString(String name, long offset, int length) {
    ReadRequest request =
        ReadRequest.newBuilder().setVolume(name).setOffset(offset).setLength(length).build();
    return call(() -> timed(volumes, deadline).read(request).getData());
  }

  /** Waits until every write acknowledged before the call is durable on shared storage. */
  public FlushResponse flush(String name) {
    FlushRequest request = FlushRequest.newBuilder().setVolume(name).build();
    return call(() -> timed(volumes, flushDeadline).flush(request));
  }

  public void trim(String name, long offset, long length) {
    TrimRequest request =
        TrimRequest.newBuilder().setVolume(name).setOffset(offset).setLength(length).build();
    call(() -> timed(volumes, deadline).trim(request));
  }

  public NodeStatus status() {
    return call(() -> timed(node, deadline).getStatus(GetStatusRequest.getDefaultInstance()));
  }

  /**
   * Opens a pipelined writer over the WriteStream RPC with at most {@code maxInFlight}
   * unacknowledged writes. The stream itself has no deadline; {@link WriteStreamSession#close()}
   * waits up to this client's deadline for the last acknowledgements.
   */
  public WriteStreamSession openWriteStream(int maxInFlight) {
    return new WriteStreamSession(asyncVolumes, maxInFlight, deadline);
  }

  @Override
  public void close() {
    if (!ownsChannel) {
      return;
    }
    channel.shutdown();
    try {
      if (!channel.awaitTermination(5, TimeUnit.SECONDS)) {
        channel.shutdownNow();
      }
    } catch (InterruptedException e) {
      channel.shutdownNow();
      Thread.currentThread().interrupt();
    }
  }

  private static VolumePolicy policy(CacheMode mode, int replicas) {
    if (replicas < 0) {
      throw new IllegalArgumentException("replicas must not be negative: " + replicas);
    }
    return VolumePolicy.newBuilder().setMode(mode).setReplicas(replicas).build();
  }

  // The deadline is fixed per call, not per stub, because a gRPC deadline is an absolute instant.
  private static <S extends AbstractStub<S>> S timed(S stub, Duration deadline) {
    return deadline == null
        ? stub
        : stub.withDeadlineAfter(deadline.toNanos(), TimeUnit.NANOSECONDS);
  }

  private static <T> T call(Supplier<T> rpc) {
    try {
      return rpc.get();
    } catch (StatusRuntimeException e) {
      throw PeerFlashException.from(e);
    }
  }

  /** Configures a client: where it connects and its deadlines. */
  public static final class Builder {
    private ManagedChannel channel;
    private boolean ownsChannel;
    private String target;
    private Duration deadline = DEFAULT_DEADLINE;
    private Duration flushDeadline;

    private Builder() {}

    /** Plaintext connection to {@code HOST:PORT}, owned by the client. */
    public Builder target(String hostPort) {
      this.target = Objects.requireNonNull(hostPort, "hostPort");
      this.channel = null;
      return this;
    }

    /** An existing channel; {@code closeWithClient} hands its ownership to the client. */
    public Builder channel(ManagedChannel channel, boolean closeWithClient) {
      this.channel = Objects.requireNonNull(channel, "channel");
      this.ownsChannel = closeWithClient;
      this.target = null;
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

    public PeerFlashClient build() {
      if (channel == null && target == null) {
        throw new IllegalStateException("set a target or a channel");
      }
      if (channel != null) {
        return new PeerFlashClient(channel, ownsChannel, deadline, flushDeadline);
      }
      ManagedChannel ch = ManagedChannelBuilder.forTarget(target).usePlaintext().build();
      return new PeerFlashClient(ch, true, deadline, flushDeadline);
    }
  }
}
