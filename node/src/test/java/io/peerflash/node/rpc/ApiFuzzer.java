package io.peerflash.node.rpc;

import static io.peerflash.node.rpc.FuzzValues.MAX_IO_BYTES;
import static io.peerflash.node.rpc.FuzzValues.MIB;
import static io.peerflash.node.rpc.FuzzValues.ODD_STRINGS;
import static io.peerflash.node.rpc.FuzzValues.OVERSIZED_MESSAGE_BYTES;
import static io.peerflash.node.rpc.FuzzValues.pick;
import static io.peerflash.node.rpc.FuzzValues.str;
import static io.peerflash.node.rpc.FuzzValues.u32;
import static io.peerflash.node.rpc.FuzzValues.u64;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.reflection.v1.ServerReflectionGrpc;
import io.grpc.reflection.v1.ServerReflectionRequest;
import io.grpc.reflection.v1.ServerReflectionResponse;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.grpc.stub.StreamObserver;
import io.peerflash.proto.v1.AddNodeRequest;
import io.peerflash.proto.v1.BlockImage;
import io.peerflash.proto.v1.ClusterServiceGrpc;
import io.peerflash.proto.v1.CreateVolumeRequest;
import io.peerflash.proto.v1.DeleteVolumeRequest;
import io.peerflash.proto.v1.DescribeCopiesRequest;
import io.peerflash.proto.v1.DrainNodeRequest;
import io.peerflash.proto.v1.FlushRequest;
import io.peerflash.proto.v1.ForwardedFlushRequest;
import io.peerflash.proto.v1.ForwardedIoServiceGrpc;
import io.peerflash.proto.v1.ForwardedReadRequest;
import io.peerflash.proto.v1.ForwardedWriteRequest;
import io.peerflash.proto.v1.ForwardedZeroRequest;
import io.peerflash.proto.v1.GetClusterStatusRequest;
import io.peerflash.proto.v1.GetStatusRequest;
import io.peerflash.proto.v1.GetVolumeRequest;
import io.peerflash.proto.v1.ListClusterEventsRequest;
import io.peerflash.proto.v1.ListClusterEventsResponse;
import io.peerflash.proto.v1.ListVolumesRequest;
import io.peerflash.proto.v1.MoveVolumeRequest;
import io.peerflash.proto.v1.NodeServiceGrpc;
import io.peerflash.proto.v1.ReadRequest;
import io.peerflash.proto.v1.ReadResponse;
import io.peerflash.proto.v1.RemoveNodeRequest;
import io.peerflash.proto.v1.ReplicaServiceGrpc;
import io.peerflash.proto.v1.ReplicateAck;
import io.peerflash.proto.v1.ReplicateRequest;
import io.peerflash.proto.v1.SetPolicyRequest;
import io.peerflash.proto.v1.SyncCopiesRequest;
import io.peerflash.proto.v1.TrimRequest;
import io.peerflash.proto.v1.Volume;
import io.peerflash.proto.v1.VolumePolicy;
import io.peerflash.proto.v1.VolumeServiceGrpc;
import io.peerflash.proto.v1.VolumeState;
import io.peerflash.proto.v1.WriteRequest;
import io.peerflash.proto.v1.WriteResponse;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import java.util.regex.Pattern;

/**
 * Random and boundary requests into every RPC of a running node, interleaved with valid I/O on a
 * model volume whose every acknowledged byte is kept in a byte array.
 *
 * <p>Properties: every answer (and every in-band code of a streamed answer) is OK or a documented
 * status code with a description, never INTERNAL or UNKNOWN; PERMISSION_DENIED exactly where the
 * caller's certificate makes it the answer (the fuzzer calls as the admin client, and makes replica
 * calls as the node owning the peer volume: a copy claiming any other owner, and any replica call
 * as the admin, is refused); a request on the model volume that breaks a documented limit is
 * refused with INVALID_ARGUMENT and a valid one is served; reads match the byte model; the node
 * keeps answering its health service. Violations are collected, not thrown, so that one run lists
 * every distinct failure; the caller fails the test on any.
 *
 * <p>Calls that may legitimately destroy data (DeleteVolume, replica copies at the current epoch,
 * drain, remove) never name the model volume or a live member. Every value a request carries is
 * drawn from the seeded generator only, never from an earlier answer, so a seed replays the same
 * requests in the same order.
 */
final class ApiFuzzer {
  static final String MODEL = "model";
  static final List<String> SCRATCH = List.of("s1", "s2", "s3");
  private static final long CALL_TIMEOUT_MS = 30_000;
  private static final long HEALTHY_WITHIN_S = 10;
  private static final int SECTOR = 512;
  private static final int BLOCK = 4096;
  private static final Pattern VALID_NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,127}");

  /** Budget and seed of a run, from -Dfuzz.seed, -Dfuzz.calls and -Dfuzz.seconds. */
  record Settings(long seed, long maxCalls, long maxSeconds) {
    static Settings fromSystemProperties(long defaultCalls, long defaultSeconds) {
      String seed = System.getProperty("fuzz.seed");
      return new Settings(
          seed == null || seed.isBlank() ? System.nanoTime() ^ 0x5DEECE66DL : Long.decode(seed),
          Long.getLong("fuzz.calls", defaultCalls),
          Long.getLong("fuzz.seconds", defaultSeconds));
    }
  }

  /**
   * The node under test and what the fuzzer must keep away from.
   *
   * @param selfId the member id of the node the channel reaches (cluster), else null
   * @param liveMembers members never drained nor removed (empty on a single node)
   * @param raftAddresses member id to Raft address (cluster), for AddNode
   * @param peerVolume a volume another node owns and this one holds as a replica (the target of
   *     replica copies), or null
   * @param peerOwner the member owning {@code peerVolume}
   * @param closedPort a loopback port nothing listens on
   * @param modelReplicas the model volume's replicas in its valid policies
   */
  record Target(
      String phase,
      boolean clustered,
      String selfId,
      List<String> liveMembers,
      Map<String, String> raftAddresses,
      String peerVolume,
      long peerVolumeSize,
      String peerOwner,
      long modelSize,
      int modelReplicas,
      Path sharedDir,
      int closedPort) {}

  /**
   * One distinct failure (a kind and an answer, whatever the numbers and names in it): its first
   * occurrence, the RPCs it was seen in, and how often it recurred.
   */
  static final class Violation {
    final String kind;
    final Set<String> rpcs = new LinkedHashSet<>();
    final long callIndex;
    final String args;
    final String got;
    long count = 1;

    Violation(String kind, String rpc, long callIndex, String args, String got) {
      this.kind = kind;
      this.rpcs.add(rpc);
      this.callIndex = callIndex;
      this.args = args;
      this.got = got;
    }
  }

  private record Result<T>(Status.Code code, String description, T value) {
    boolean ok() {
      return code == Status.Code.OK;
    }

    String got() {
      return code + (description == null ? "" : ": " + shorten(description, 400));
    }
  }

  private final Settings settings;
  private final Target target;
  private final SplittableRandom rng;
  // As the admin client.
  private ManagedChannel channel;
  // As the node target.peerOwner() (its certificate), for replica calls; null on a single node.
  private final ManagedChannel peerChannel;

  private final byte[] model;
  // Sectors whose content is unknown: a valid write that failed may or may not have landed.
  private final BitSet unknownSectors = new BitSet();
  // Per 4 KiB block of the model: the call that last changed it (for failure messages).
  private final long[] lastChangedBy;

  private long calls;
  private long startNanos;
  private boolean nodeDown;
  private final Map<String, Long> perRpc = new TreeMap<>();
  private final Map<String, Long> perCode = new TreeMap<>();
  private final Map<String, Long> perRpcNanos = new TreeMap<>();
  private final Map<String, Violation> violations = new LinkedHashMap<>();
  private String currentCall = "";
  // The last answer checked had an undocumented status (reported once, not again by an oracle).
  private boolean statusFlagged;
  // Sizes of the volumes known to exist (created here and not deleted since), by name.
  private final Map<String, Long> knownSizes = new HashMap<>();

  /**
   * @param channel to the node, as the admin client
   * @param peerChannel to the node, as the node {@code target.peerOwner()}; null on a single node
   */
  ApiFuzzer(Settings settings, Target target, ManagedChannel channel, ManagedChannel peerChannel) {
    this.settings = settings;
    this.target = target;
    this.channel = channel;
    this.peerChannel = peerChannel;
    this.rng = new SplittableRandom(settings.seed());
    this.model = new byte[Math.toIntExact(target.modelSize())];
    this.lastChangedBy = new long[Math.toIntExact(target.modelSize() / BLOCK)];
    Arrays.fill(lastChangedBy, -1);
    knownSizes.put(MODEL, target.modelSize());
    if (target.peerVolume() != null) {
      knownSizes.put(target.peerVolume(), target.peerVolumeSize());
    }
  }

  /** Talks to a restarted node from now on. */
  void retarget(ManagedChannel newChannel) {
    this.channel = newChannel;
    this.nodeDown = false;
  }

  long calls() {
    return calls;
  }

  List<Violation> violations() {
    return new ArrayList<>(violations.values());
  }

  // ---------------------------------------------------------------------------------------------
  // The run

  /** Fuzzes until the call or time budget runs out (or the node stops answering). */
  void run() {
    startNanos = System.nanoTime();
    long steps = 0;
    while (calls < settings.maxCalls() && elapsedSeconds() < settings.maxSeconds() && !nodeDown) {
      if (steps++ % 200 == 0) {
        checkHealth("during the run");
        if (nodeDown) {
          break;
        }
      }
      if (rng.nextInt(100) < 40) {
        validModelOp();
      } else {
        fuzzedCall();
      }
    }
  }

  double elapsedSeconds() {
    return (System.nanoTime() - startNanos) / 1e9;
  }

  /** "API fuzz: N calls in S s (seed X): per RPC counts, per status code counts". */
  String summary() {
    Map<String, String> seconds = new TreeMap<>();
    perRpcNanos.forEach((rpc, nanos) -> seconds.put(rpc, String.format("%.1f", nanos / 1e9)));
    return String.format(
        "API fuzz [%s]: %d calls in %.1f s (seed %d): per RPC %s, per status code %s; seconds"
            + " spent per RPC %s",
        target.phase(), calls, elapsedSeconds(), settings.seed(), perRpc, perCode, seconds);
  }

  /** Every distinct violation with its first occurrence and a command that replays it. */
  String report(String testMethod) {
    StringBuilder b = new StringBuilder();
    b.append(violations.size())
        .append(" distinct violation(s) in ")
        .append(target.phase())
        .append(" (seed ")
        .append(settings.seed())
        .append("):\n");
    int i = 1;
    for (Violation v : violations.values()) {
      b.append(String.format("%d. %s %s%n", i++, v.rpcs, v.kind));
      b.append("   request: ").append(v.rpcs.iterator().next()).append(' ').append(v.args);
      b.append('\n');
      b.append("   got:     ").append(v.got).append('\n');
      b.append("   first at call #")
          .append(v.callIndex)
          .append(", seen ")
          .append(v.count)
          .append(" time(s); replay: mvn -B -ntp -pl node -am test -Dtest='ApiFuzzTest#")
          .append(testMethod)
          .append("' -Dsurefire.failIfNoSpecifiedTests=false -Dfuzz.seed=")
          .append(settings.seed())
          .append(v.callIndex >= 0 ? " -Dfuzz.calls=" + (v.callIndex + 1) : "")
          .append('\n');
    }
    return b.toString();
  }

  // ---------------------------------------------------------------------------------------------
  // Calls and their checks

  private <T> Result<T> call(String rpc, String args, Supplier<T> body) {
    return call(rpc, args, false, body);
  }

  /**
   * @param deniedExpected the caller's identity may not make this call: it must be refused with
   *     PERMISSION_DENIED
   */
  private <T> Result<T> call(String rpc, String args, boolean deniedExpected, Supplier<T> body) {
    calls++;
    currentCall = args;
    perRpc.merge(rpc, 1L, Long::sum);
    Result<T> r;
    long t0 = System.nanoTime();
    try {
      r = new Result<>(Status.Code.OK, null, body.get());
    } catch (StatusRuntimeException e) {
      r = new Result<>(e.getStatus().getCode(), e.getStatus().getDescription(), null);
    }
    perRpcNanos.merge(rpc, System.nanoTime() - t0, Long::sum);
    perCode.merge(r.code().name(), 1L, Long::sum);
    checkStatus(rpc, args, r.code(), r.description(), deniedExpected);
    return r;
  }

  /** The status property: documented codes with a description only. */
  private void checkStatus(String rpc, String args, Status.Code code, String description) {
    checkStatus(rpc, args, code, description, false);
  }

  /**
   * The status property: documented codes with a description only; PERMISSION_DENIED if and only if
   * {@code deniedExpected}.
   */
  private void checkStatus(
      String rpc, String args, Status.Code code, String description, boolean deniedExpected) {
    statusFlagged = false;
    if (deniedExpected != (code == Status.Code.PERMISSION_DENIED)) {
      statusFlagged = true;
      violation(
          rpc,
          args,
          deniedExpected
              ? "a call this identity may not make was not refused with PERMISSION_DENIED"
              : "undocumented status PERMISSION_DENIED",
          code + ": " + shorten(String.valueOf(description), 400));
      return;
    }
    String problem =
        switch (code) {
          case OK,
              NOT_FOUND,
              ALREADY_EXISTS,
              INVALID_ARGUMENT,
              RESOURCE_EXHAUSTED,
              UNAVAILABLE,
              FAILED_PRECONDITION,
              DATA_LOSS,
              PERMISSION_DENIED ->
              null;
          case DEADLINE_EXCEEDED ->
              description != null
                      && (description.startsWith("deadline exceeded after")
                          || description.contains("CallOptions deadline"))
                  ? "no answer within the client's deadline of " + CALL_TIMEOUT_MS + " ms"
                  : null;
          case UNIMPLEMENTED ->
              !target.clustered() && (rpc.startsWith("Cluster.") || rpc.startsWith("Replica."))
                  ? null
                  : "undocumented status UNIMPLEMENTED";
          default -> "undocumented status " + code;
        };
    if (problem != null) {
      statusFlagged = true;
      violation(rpc, args, problem, code + ": " + shorten(String.valueOf(description), 400));
    } else if (code != Status.Code.OK && (description == null || description.isBlank())) {
      violation(rpc, args, "status " + code + " without a description", code.toString());
    }
  }

  /** A failure the test itself observed (e.g. the node did not start again). */
  void recordFailure(String what, String kind, Throwable t) {
    violation(what, "", kind, t.toString());
    nodeDown = true;
  }

  private void violation(String rpc, String args, String kind, String got) {
    String key = normalize(kind) + "|" + normalize(got);
    Violation v = violations.get(key);
    if (v != null) {
      v.count++;
      v.rpcs.add(rpc);
      return;
    }
    violations.put(key, new Violation(kind, rpc, calls - 1, args, got));
  }

  /** The same failure with other numbers or names is not a distinct one. */
  private static String normalize(String got) {
    return shorten(got.replaceAll("'[^']*'", "'_'").replaceAll("[0-9]+", "#"), 120);
  }

  private static String shorten(String s, int max) {
    return s.length() <= max ? s : s.substring(0, max) + "...(" + s.length() + " chars)";
  }

  private VolumeServiceGrpc.VolumeServiceBlockingStub volumes() {
    return VolumeServiceGrpc.newBlockingStub(channel)
        .withDeadlineAfter(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS);
  }

  private ClusterServiceGrpc.ClusterServiceBlockingStub cluster() {
    return ClusterServiceGrpc.newBlockingStub(channel)
        .withDeadlineAfter(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS);
  }

  private ReplicaServiceGrpc.ReplicaServiceBlockingStub replicas(boolean asAdmin) {
    return ReplicaServiceGrpc.newBlockingStub(asAdmin ? channel : peerChannel)
        .withDeadlineAfter(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS);
  }

  /** Whether the node's health service still answers SERVING; a violation if not. */
  boolean checkHealth(String when) {
    Result<HealthCheckResponse> r =
        call(
            "Health.Check",
            "service=\"\" (" + when + ")",
            () ->
                HealthGrpc.newBlockingStub(channel)
                    .withDeadlineAfter(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS)
                    .check(HealthCheckRequest.getDefaultInstance()));
    if (!r.ok() || r.value().getStatus() != HealthCheckResponse.ServingStatus.SERVING) {
      violation(
          "Health.Check",
          "service=\"\" (" + when + ") after: " + currentCall,
          "the node stopped serving",
          r.ok() ? r.value().getStatus().toString() : r.got());
      nodeDown = true;
      return false;
    }
    return true;
  }

  // ---------------------------------------------------------------------------------------------
  // The model volume: valid I/O

  private void validModelOp() {
    int k = rng.nextInt(100);
    if (k < 38) {
      long[] range = validRange();
      byte[] data = new byte[(int) range[1]];
      rng.nextBytes(data);
      write("Write", range[0], data);
    } else if (k < 70) {
      long[] range = validRange();
      read("Read", range[0], range[1]);
    } else if (k < 80) {
      long[] range = validRange();
      trim("Trim", range[0], range[1]);
    } else if (k < 87) {
      validWriteStream();
    } else if (k < 94) {
      flushModel("Flush");
    } else {
      int mode = 1 + rng.nextInt(3);
      int replicas = rng.nextInt(target.modelReplicas() + 1);
      int onPeerLoss = pick(rng, new int[] {0, 1, 3});
      setPolicy(MODEL, mode, replicas, onPeerLoss, false);
    }
  }

  /** A valid range of the model: 512-byte aligned (half of them 4 KiB), at most 1 MiB. */
  private long[] validRange() {
    long sectors = target.modelSize() / SECTOR;
    long lengthSectors = rng.nextInt(8) == 0 ? 1 + rng.nextInt(2048) : 1 + rng.nextInt(64);
    if (rng.nextBoolean()) {
      lengthSectors = Math.min(2048, (lengthSectors + 7) / 8 * 8);
      long blocks = target.modelSize() / BLOCK;
      long offset = rng.nextLong(blocks - lengthSectors / 8 + 1) * BLOCK;
      return new long[] {offset, lengthSectors * SECTOR};
    }
    long offset = rng.nextLong(sectors - lengthSectors + 1) * SECTOR;
    return new long[] {offset, lengthSectors * SECTOR};
  }

  /** Why an I/O request breaks a documented limit of a volume of {@code size}, or null. */
  static String ioProblem(long offset, long length, long size) {
    if (offset < 0) {
      return "offset at or past 2^63";
    }
    if (offset % SECTOR != 0) {
      return "offset not a multiple of 512";
    }
    if (length == 0) {
      return "length 0";
    }
    if (length < 0) {
      return "length at or past 2^63";
    }
    if (length % SECTOR != 0) {
      return "length not a multiple of 512";
    }
    if (length > MAX_IO_BYTES) {
      return "length over 1 MiB";
    }
    if (offset > Long.MAX_VALUE - length) {
      return "offset + length past 2^63";
    }
    if (offset + length > size) {
      return "range past the end of the volume";
    }
    return null;
  }

  private String ioArgs(String volume, long offset, long length, String what) {
    return "volume="
        + str(volume)
        + " offset="
        + u64(offset)
        + " "
        + what
        + "="
        + u64(length)
        + (volume.equals(MODEL) ? " (volume size " + target.modelSize() + ")" : "");
  }

  private void write(String rpc, long offset, byte[] data) {
    write(rpc, MODEL, offset, data, rng.nextLong());
  }

  private void write(String rpc, String volume, long offset, byte[] data, long requestId) {
    String args = ioArgs(volume, offset, data.length, "data bytes") + " request_id=" + requestId;
    Result<WriteResponse> r =
        call(
            rpc,
            args,
            () ->
                volumes()
                    .write(
                        WriteRequest.newBuilder()
                            .setVolume(volume)
                            .setOffset(offset)
                            .setData(ByteString.copyFrom(data))
                            .setRequestId(requestId)
                            .build()));
    if (r.ok() && r.value().getRequestId() != requestId) {
      violation(rpc, args, "response names another request_id", "" + r.value().getRequestId());
    }
    if (volume.equals(MODEL)) {
      modelWriteOutcome(rpc, args, offset, data, r.code(), r.got());
    } else {
      otherVolumeOutcome(rpc, args, "write", volume, offset, data.length, r.ok(), r.got());
    }
  }

  /**
   * On a volume other than the model only acceptance is checked: a request there may first meet
   * another refusal (not found, not the owner).
   */
  private void otherVolumeOutcome(
      String rpc,
      String args,
      String op,
      String volume,
      long offset,
      long length,
      boolean ok,
      String got) {
    Long size = knownSizes.get(volume);
    if (!ok || size == null) {
      return;
    }
    String problem =
        length >= OVERSIZED_MESSAGE_BYTES
            ? "message over the node's limit"
            : ioProblem(offset, length, size);
    if (problem != null) {
      violation(
          rpc,
          args + " (volume size " + size + ")",
          op + " on another volume acknowledged although " + problem,
          got);
    }
  }

  /** Checks a write's outcome on the model against the oracle and keeps the model in step. */
  private void modelWriteOutcome(
      String rpc, String args, long offset, byte[] data, Status.Code code, String got) {
    String problem =
        data.length >= OVERSIZED_MESSAGE_BYTES
            ? "message over the node's limit"
            : ioProblem(offset, data.length, target.modelSize());
    if (problem == null) {
      if (code == Status.Code.OK) {
        applyToModel(offset, data);
      } else {
        if (!statusFlagged) {
          violation(rpc, args, "valid write on the model volume refused", got);
        }
        markUnknown(offset, data.length);
      }
    } else if (code == Status.Code.OK) {
      violation(rpc, args, "write acknowledged although " + problem, got);
    } else {
      Status.Code expected =
          data.length >= OVERSIZED_MESSAGE_BYTES
              ? Status.Code.RESOURCE_EXHAUSTED
              : Status.Code.INVALID_ARGUMENT;
      if (code != expected && !statusFlagged) {
        violation(rpc, args, "write with " + problem + " not refused with " + expected, got);
      }
    }
  }

  private void read(String rpc, long offset, long length) {
    read(rpc, MODEL, offset, length);
  }

  private void read(String rpc, String volume, long offset, long length) {
    String args = ioArgs(volume, offset, length, "length");
    Result<ReadResponse> r =
        call(
            rpc,
            args,
            () ->
                volumes()
                    .read(
                        ReadRequest.newBuilder()
                            .setVolume(volume)
                            .setOffset(offset)
                            .setLength(length)
                            .build()));
    if (!volume.equals(MODEL)) {
      otherVolumeOutcome(rpc, args, "read", volume, offset, length, r.ok(), r.got());
      return;
    }
    String problem = ioProblem(offset, length, target.modelSize());
    if (problem == null) {
      if (!r.ok()) {
        if (!statusFlagged) {
          violation(rpc, args, "valid read on the model volume refused", r.got());
        }
        return;
      }
      byte[] got = r.value().getData().toByteArray();
      if (got.length != length) {
        violation(rpc, args, "read returned another length", got.length + " bytes");
        return;
      }
      compareWithModel(rpc, args, offset, got);
    } else if (r.ok()) {
      violation(
          rpc,
          args,
          "read served although " + problem,
          "OK with " + r.value().getData().size() + " bytes");
    } else if (r.code() != Status.Code.INVALID_ARGUMENT && !statusFlagged) {
      violation(rpc, args, "read with " + problem + " not refused with INVALID_ARGUMENT", r.got());
    }
  }

  private void trim(String rpc, long offset, long length) {
    trim(rpc, MODEL, offset, length);
  }

  private void trim(String rpc, String volume, long offset, long length) {
    String args = ioArgs(volume, offset, length, "length");
    Result<?> r =
        call(
            rpc,
            args,
            () ->
                volumes()
                    .trim(
                        TrimRequest.newBuilder()
                            .setVolume(volume)
                            .setOffset(offset)
                            .setLength(length)
                            .build()));
    if (!volume.equals(MODEL)) {
      otherVolumeOutcome(rpc, args, "trim", volume, offset, length, r.ok(), r.got());
      return;
    }
    String problem = ioProblem(offset, length, target.modelSize());
    if (problem == null) {
      if (r.ok()) {
        applyToModel(offset, new byte[(int) length]);
      } else {
        if (!statusFlagged) {
          violation(rpc, args, "valid trim on the model volume refused", r.got());
        }
        markUnknown(offset, length);
      }
    } else if (r.ok()) {
      violation(rpc, args, "trim acknowledged although " + problem, r.got());
    } else if (r.code() != Status.Code.INVALID_ARGUMENT && !statusFlagged) {
      violation(rpc, args, "trim with " + problem + " not refused with INVALID_ARGUMENT", r.got());
    }
  }

  private boolean flushModel(String rpc) {
    String args = "volume=" + str(MODEL);
    Result<?> r =
        call(rpc, args, () -> volumes().flush(FlushRequest.newBuilder().setVolume(MODEL).build()));
    if (!r.ok()) {
      violation(rpc, args, "flush of the model volume failed", r.got());
    }
    return r.ok();
  }

  private void setPolicy(
      String volume, int mode, int replicas, int onPeerLoss, boolean allowDegraded) {
    String args =
        "name="
            + str(volume)
            + " mode="
            + mode
            + " replicas="
            + u32(replicas)
            + " on_peer_loss="
            + onPeerLoss
            + (allowDegraded ? " allow_degraded=true" : "");
    Result<Volume> r =
        call(
            "SetPolicy",
            args,
            () ->
                volumes()
                    .setPolicy(
                        SetPolicyRequest.newBuilder()
                            .setName(volume)
                            .setPolicy(
                                VolumePolicy.newBuilder()
                                    .setModeValue(mode)
                                    .setReplicas(replicas)
                                    .setOnPeerLossValue(onPeerLoss))
                            .setAllowDegraded(allowDegraded)
                            .build()));
    if (!volume.equals(MODEL)) {
      return;
    }
    String problem =
        mode < 1 || mode > 3
            ? "mode " + mode + " out of range"
            : Integer.compareUnsigned(replicas, 2) > 0
                ? "replicas " + u32(replicas) + " over 2"
                : onPeerLoss < 0 || onPeerLoss > 3
                    ? "on_peer_loss " + onPeerLoss + " out of range"
                    : null;
    // A write-back volume wanting more replicas than the members besides its owner can hold is
    // refused unless the caller accepts a DEGRADED volume; the refusal names --allow-degraded.
    int holders = target.clustered() ? target.liveMembers().size() - 1 : Integer.MAX_VALUE;
    if (problem == null
        && mode == 1
        && !allowDegraded
        && Integer.compareUnsigned(replicas, holders) > 0) {
      if (r.ok()) {
        violation(
            "SetPolicy",
            args,
            "policy wanting more replicas than UP members accepted without allow_degraded",
            r.got());
      } else if (!statusFlagged
          && (r.code() != Status.Code.FAILED_PRECONDITION
              || !r.got().contains("--allow-degraded"))) {
        violation(
            "SetPolicy",
            args,
            "policy wanting more replicas than UP members not refused with FAILED_PRECONDITION"
                + " naming --allow-degraded",
            r.got());
      }
      return;
    }
    if (problem == null && !r.ok()) {
      if (!statusFlagged) {
        violation("SetPolicy", args, "valid policy of the model volume refused", r.got());
      }
    } else if (problem != null && r.ok()) {
      violation("SetPolicy", args, "policy accepted although " + problem, r.got());
    } else if (problem != null && r.code() != Status.Code.INVALID_ARGUMENT && !statusFlagged) {
      violation(
          "SetPolicy",
          args,
          "policy with " + problem + " not refused with INVALID_ARGUMENT",
          r.got());
    }
  }

  /** Valid writes in distinct 64 KiB slots of the model (a stream may reorder them). */
  private void validWriteStream() {
    int n = 2 + rng.nextInt(5);
    long slots = target.modelSize() / (64 * 1024);
    List<WriteRequest> requests = new ArrayList<>();
    List<Long> used = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      long slot = rng.nextLong(slots);
      int lengthSectors = 1 + rng.nextInt(128);
      long offset = slot * 64 * 1024 + rng.nextInt(129 - lengthSectors) * (long) SECTOR;
      byte[] data = new byte[lengthSectors * SECTOR];
      rng.nextBytes(data);
      if (used.contains(slot)) {
        continue;
      }
      used.add(slot);
      requests.add(
          WriteRequest.newBuilder()
              .setVolume(MODEL)
              .setOffset(offset)
              .setData(ByteString.copyFrom(data))
              .setRequestId(i)
              .build());
    }
    writeStream(requests);
  }

  /**
   * Sends requests on one WriteStream; every one must get exactly one answer. Requests to the model
   * are checked like unary writes; valid ones must not overlap each other.
   */
  private void writeStream(List<WriteRequest> requests) {
    long t0 = System.nanoTime();
    try {
      writeStreamTimed(requests);
    } finally {
      perRpcNanos.merge("WriteStream", System.nanoTime() - t0, Long::sum);
    }
  }

  private void writeStreamTimed(List<WriteRequest> requests) {
    StringBuilder argsBuilder = new StringBuilder("[");
    for (WriteRequest w : requests) {
      argsBuilder
          .append("{id=")
          .append(w.getRequestId())
          .append(' ')
          .append(ioArgs(w.getVolume(), w.getOffset(), w.getData().size(), "data bytes"))
          .append("} ");
    }
    String args = argsBuilder.append(']').toString();
    Map<Long, WriteResponse> answers = new HashMap<>();
    List<Long> duplicates = new ArrayList<>();
    Status[] end = new Status[1];
    CountDownLatch done = new CountDownLatch(1);
    calls++;
    currentCall = args;
    perRpc.merge("WriteStream", 1L, Long::sum);
    StreamObserver<WriteRequest> out =
        VolumeServiceGrpc.newStub(channel)
            .withDeadlineAfter(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS)
            .writeStream(
                new StreamObserver<>() {
                  @Override
                  public void onNext(WriteResponse r) {
                    synchronized (answers) {
                      if (answers.put(r.getRequestId(), r) != null) {
                        duplicates.add(r.getRequestId());
                      }
                    }
                  }

                  @Override
                  public void onError(Throwable t) {
                    end[0] = Status.fromThrowable(t);
                    done.countDown();
                  }

                  @Override
                  public void onCompleted() {
                    end[0] = Status.OK;
                    done.countDown();
                  }
                });
    for (WriteRequest w : requests) {
      out.onNext(w);
    }
    out.onCompleted();
    try {
      if (!done.await(CALL_TIMEOUT_MS + 5_000, TimeUnit.MILLISECONDS)) {
        end[0] = Status.DEADLINE_EXCEEDED.withDescription("deadline exceeded after the stream");
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
    perCode.merge(end[0].getCode().name(), 1L, Long::sum);
    checkStatus("WriteStream", args, end[0].getCode(), end[0].getDescription());
    synchronized (answers) {
      if (!duplicates.isEmpty()) {
        violation("WriteStream", args, "a request answered twice", "ids " + duplicates);
      }
      for (WriteRequest w : requests) {
        WriteResponse r = answers.get(w.getRequestId());
        String one =
            "{id="
                + w.getRequestId()
                + " "
                + ioArgs(w.getVolume(), w.getOffset(), w.getData().size(), "data bytes")
                + "} in "
                + args;
        if (r == null) {
          if (end[0].isOk()) {
            violation("WriteStream", one, "a request got no answer", "stream " + end[0]);
          }
          if (w.getVolume().equals(MODEL)
              && ioProblem(w.getOffset(), w.getData().size(), target.modelSize()) == null) {
            markUnknown(w.getOffset(), w.getData().size());
          }
          continue;
        }
        Status.Code code = Status.Code.values()[Math.max(0, Math.min(16, r.getCode()))];
        if (r.getCode() < 0 || r.getCode() > 16) {
          violation("WriteStream", one, "in-band code is no gRPC code", "" + r.getCode());
        }
        perCode.merge("in-band " + code.name(), 1L, Long::sum);
        checkStatus("WriteStream", one, code, code == Status.Code.OK ? null : r.getMessage());
        if (w.getVolume().equals(MODEL)) {
          modelWriteOutcome(
              "WriteStream",
              one,
              w.getOffset(),
              w.getData().toByteArray(),
              code,
              code == Status.Code.OK ? "OK" : code + ": " + shorten(r.getMessage(), 400));
        } else {
          otherVolumeOutcome(
              "WriteStream",
              one,
              "write",
              w.getVolume(),
              w.getOffset(),
              w.getData().size(),
              code == Status.Code.OK,
              code.toString());
        }
      }
    }
  }

  private void applyToModel(long offset, byte[] data) {
    System.arraycopy(data, 0, model, (int) offset, data.length);
    unknownSectors.clear((int) (offset / SECTOR), (int) ((offset + data.length) / SECTOR));
    for (long b = offset / BLOCK; b < (offset + data.length + BLOCK - 1) / BLOCK; b++) {
      lastChangedBy[(int) b] = calls - 1;
    }
  }

  private void markUnknown(long offset, long length) {
    unknownSectors.set((int) (offset / SECTOR), (int) ((offset + length) / SECTOR));
  }

  /** Compares known sectors; on a difference, reports it once and adopts what was read. */
  private void compareWithModel(String rpc, String args, long offset, byte[] got) {
    for (int i = 0; i < got.length; i += SECTOR) {
      int sector = (int) ((offset + i) / SECTOR);
      if (unknownSectors.get(sector)) {
        continue;
      }
      int at = (int) offset + i;
      int mismatch = Arrays.mismatch(got, i, i + SECTOR, model, at, at + SECTOR);
      if (mismatch >= 0) {
        long byteAt = at + mismatch;
        violation(
            rpc,
            args,
            "data differs from the byte model",
            "first difference at byte "
                + byteAt
                + ": got "
                + got[i + mismatch]
                + ", expected "
                + model[(int) byteAt]
                + " (block last changed by call #"
                + lastChangedBy[(int) (byteAt / BLOCK)]
                + ")");
        System.arraycopy(got, 0, model, (int) offset, got.length);
        return;
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Fuzzed calls

  private void fuzzedCall() {
    int k = rng.nextInt(1000);
    if (k < 60) {
      fuzzCreate();
    } else if (k < 100) {
      fuzzGetVolume();
    } else if (k < 115) {
      fuzzListVolumes();
    } else if (k < 165) {
      fuzzDelete();
    } else if (k < 225) {
      fuzzSetPolicy();
    } else if (k < 375) {
      fuzzWrite();
    } else if (k < 435) {
      fuzzWriteStream();
    } else if (k < 560) {
      fuzzRead();
    } else if (k < 600) {
      fuzzFlush();
    } else if (k < 680) {
      fuzzTrim();
    } else if (k < 695) {
      call(
          "Node.GetStatus",
          "",
          () ->
              NodeServiceGrpc.newBlockingStub(channel)
                  .withDeadlineAfter(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS)
                  .getStatus(GetStatusRequest.getDefaultInstance()));
    } else if (k < 715) {
      fuzzHealthCheck();
    } else if (k < 720) {
      fuzzHealthWatch();
    } else if (k < 740) {
      fuzzReflection();
    } else if (k < 745) {
      call(
          "Cluster.GetClusterStatus",
          "",
          () -> cluster().getClusterStatus(GetClusterStatusRequest.getDefaultInstance()));
    } else if (k < 750) {
      fuzzClusterEvents();
    } else if (k < 775) {
      fuzzMove();
    } else if (k < 795) {
      fuzzDrain();
    } else if (k < 815) {
      fuzzRemove();
    } else if (k < 835) {
      fuzzAddNode();
    } else if (k < 960) {
      fuzzReplicate();
    } else if (k < 975) {
      if (target.clustered()) {
        fuzzForwardedIo();
      } else {
        fuzzReplicate(); // a single node serves no forwarded I/O (UNIMPLEMENTED, as replicas)
      }
    } else if (k < 990) {
      fuzzDescribeCopies();
    } else {
      fuzzSyncCopies();
    }
  }

  /**
   * Forwarded NBD I/O: only a member node may forward, so the admin client is always refused
   * (PERMISSION_DENIED); the peer volume's owner, a member, gets the owner's ordinary answers
   * (never INTERNAL). Its writes go to scratch volumes only, so the model stays as the fuzzer knows
   * it; the model is only read and flushed.
   */
  private void fuzzForwardedIo() {
    boolean asAdmin = replicaCallAsAdmin();
    int op = rng.nextInt(4);
    String volume;
    int v = rng.nextInt(100);
    if (v < 30 && (op == 0 || op == 3)) {
      volume = MODEL;
    } else if (v < 85) {
      volume = pick(rng, SCRATCH);
    } else {
      volume = pick(rng, FuzzValues.ODD_STRINGS);
    }
    long size = knownSizes.getOrDefault(volume, target.modelSize());
    long offset = FuzzValues.offset(rng, size);
    String client = rng.nextBoolean() ? "admin" : pick(rng, FuzzValues.ODD_STRINGS);
    ForwardedIoServiceGrpc.ForwardedIoServiceBlockingStub stub =
        ForwardedIoServiceGrpc.newBlockingStub(asAdmin ? channel : peerChannel)
            .withDeadlineAfter(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS);
    String who = asAdmin ? " (as the admin client)" : "";
    boolean denied = asAdmin;
    switch (op) {
      case 0 -> {
        long length = FuzzValues.length(rng, size);
        call(
            "ForwardedIo.Read",
            "volume=" + str(volume) + " offset=" + u64(offset) + " length=" + length + who,
            denied,
            () ->
                stub.read(
                    ForwardedReadRequest.newBuilder()
                        .setVolume(volume)
                        .setOffset(offset)
                        .setLength((int) Math.min(length, Integer.MAX_VALUE))
                        .setOnBehalfOf(client)
                        .build()));
      }
      case 1 -> {
        byte[] data = randomData(FuzzValues.dataLength(rng));
        call(
            "ForwardedIo.Write",
            "volume=" + str(volume) + " offset=" + u64(offset) + " data=" + data.length + who,
            denied,
            () ->
                stub.write(
                    ForwardedWriteRequest.newBuilder()
                        .setVolume(volume)
                        .setOffset(offset)
                        .setData(com.google.protobuf.ByteString.copyFrom(data))
                        .setOnBehalfOf(client)
                        .build()));
      }
      case 2 -> {
        long length = FuzzValues.length(rng, size);
        call(
            "ForwardedIo.Zero",
            "volume=" + str(volume) + " offset=" + u64(offset) + " length=" + u64(length) + who,
            denied,
            () ->
                stub.zero(
                    ForwardedZeroRequest.newBuilder()
                        .setVolume(volume)
                        .setOffset(offset)
                        .setLength(length)
                        .setOnBehalfOf(client)
                        .build()));
      }
      default ->
          call(
              "ForwardedIo.Flush",
              "volume=" + str(volume) + who,
              denied,
              () ->
                  stub.flush(
                      ForwardedFlushRequest.newBuilder()
                          .setVolume(volume)
                          .setOnBehalfOf(client)
                          .build()));
    }
  }

  /** Any filter and position is a valid question about the history: OK (UNIMPLEMENTED alone). */
  private void fuzzClusterEvents() {
    long afterSeq = FuzzValues.pick(rng, new long[] {0, 1, 5, Long.MAX_VALUE, -1});
    String volume = rng.nextInt(3) == 0 ? "" : anyName();
    String node = rng.nextInt(3) == 0 ? "" : anyName();
    int limit = FuzzValues.pick(rng, new int[] {0, 1, 10, 1001, Integer.MAX_VALUE, -1});
    String args =
        "after_seq="
            + Long.toUnsignedString(afterSeq)
            + " volume="
            + str(volume)
            + " node="
            + str(node)
            + " limit="
            + u32(limit);
    Result<ListClusterEventsResponse> r =
        call(
            "Cluster.ListClusterEvents",
            args,
            () ->
                cluster()
                    .listClusterEvents(
                        ListClusterEventsRequest.newBuilder()
                            .setAfterSeq(afterSeq)
                            .setVolume(volume)
                            .setNode(node)
                            .setLimit(limit)
                            .build()));
    if (target.clustered() && !r.ok() && !statusFlagged) {
      violation("Cluster.ListClusterEvents", args, "a question about the history refused", r.got());
    }
  }

  /** Any name: the model, scratch volumes, the peer volume, member ids, or odd strings. */
  private String anyName() {
    int k = rng.nextInt(100);
    if (k < 20) {
      return MODEL;
    }
    if (k < 50) {
      return pick(rng, SCRATCH);
    }
    if (k < 55 && target.peerVolume() != null) {
      return target.peerVolume();
    }
    if (k < 58 && !target.liveMembers().isEmpty()) {
      return pick(rng, target.liveMembers());
    }
    return pick(rng, ODD_STRINGS);
  }

  /**
   * A name for a call that may destroy a volume: never the model volume (other spellings of it are
   * fair game: they must not reach it) and never the peer volume, whose loss would turn the replica
   * fuzzing into waits.
   */
  private String nameOtherThanModel() {
    String name = rng.nextInt(100) < 55 ? pick(rng, SCRATCH) : pick(rng, ODD_STRINGS);
    return name.equals(MODEL) || name.equals(target.peerVolume()) ? "s1" : name;
  }

  /** A member id for drain and remove: never a live member. */
  private String nonMemberId() {
    String id = pick(rng, ODD_STRINGS);
    if (rng.nextInt(4) == 0) {
      id = "n" + (3 + rng.nextInt(5));
    }
    return target.liveMembers().contains(id) ? "n9" : id;
  }

  private void fuzzCreate() {
    String name = anyName();
    long size = FuzzValues.volumeSize(rng);
    int mode = FuzzValues.enumValue(rng);
    int replicas = FuzzValues.replicas(rng);
    int onPeerLoss = FuzzValues.enumValue(rng);
    String args =
        "name="
            + str(name)
            + " size_bytes="
            + u64(size)
            + " mode="
            + mode
            + " replicas="
            + u32(replicas)
            + " on_peer_loss="
            + onPeerLoss;
    Result<Volume> r =
        call(
            "CreateVolume",
            args,
            () ->
                volumes()
                    .createVolume(
                        CreateVolumeRequest.newBuilder()
                            .setName(name)
                            .setSizeBytes(size)
                            .setPolicy(
                                VolumePolicy.newBuilder()
                                    .setModeValue(mode)
                                    .setReplicas(replicas)
                                    .setOnPeerLossValue(onPeerLoss))
                            .build()));
    String problem =
        !VALID_NAME.matcher(name).matches()
            ? "an invalid name"
            : size <= 0 || size % BLOCK != 0
                ? "size not a positive multiple of 4096"
                : size > 64 * FuzzValues.TIB
                    ? "size over 64 TiB"
                    : mode < 1 || mode > 3
                        ? "mode " + mode + " out of range"
                        : Integer.compareUnsigned(replicas, 2) > 0
                            ? "replicas over 2"
                            : onPeerLoss < 0 || onPeerLoss > 3
                                ? "on_peer_loss " + onPeerLoss + " out of range"
                                : null;
    if (problem != null && r.ok()) {
      violation("CreateVolume", args, "volume created although " + problem, r.got());
    } else if (problem != null
        && r.code() != Status.Code.INVALID_ARGUMENT
        && r.code() != Status.Code.ALREADY_EXISTS
        && !statusFlagged) {
      violation(
          "CreateVolume",
          args,
          "create with " + problem + " not refused with INVALID_ARGUMENT",
          r.got());
    }
    if (name.equals(MODEL) && r.ok()) {
      violation("CreateVolume", args, "the model volume was created again", r.got());
    }
    if (r.ok() && !name.equals(MODEL)) {
      knownSizes.put(name, size);
    }
  }

  private void fuzzGetVolume() {
    String name = anyName();
    Result<Volume> r =
        call(
            "GetVolume",
            "name=" + str(name),
            () -> volumes().getVolume(GetVolumeRequest.newBuilder().setName(name).build()));
    if (name.equals(MODEL) && !r.ok()) {
      violation("GetVolume", "name=" + str(name), "the model volume is not found", r.got());
    }
  }

  private void fuzzListVolumes() {
    Result<?> r =
        call(
            "ListVolumes",
            "",
            () -> volumes().listVolumes(ListVolumesRequest.getDefaultInstance()));
    if (!r.ok()) {
      violation("ListVolumes", "", "listing failed", r.got());
    }
  }

  private void fuzzDelete() {
    String name = nameOtherThanModel();
    Result<?> r =
        call(
            "DeleteVolume",
            "name=" + str(name),
            () -> volumes().deleteVolume(DeleteVolumeRequest.newBuilder().setName(name).build()));
    if (r.ok() || r.code() == Status.Code.NOT_FOUND) {
      knownSizes.remove(name);
    }
  }

  private void fuzzSetPolicy() {
    String name = anyName();
    if (name.equals(target.peerVolume())) {
      name = "s2"; // the peer volume keeps its replica on this node (see nameOtherThanModel)
    }
    int mode = FuzzValues.enumValue(rng);
    int replicas = FuzzValues.replicas(rng);
    int onPeerLoss = FuzzValues.enumValue(rng);
    if (name.equals(MODEL) && target.clustered() && onPeerLoss == 2) {
      // ON_PEER_LOSS_BLOCK with fewer peers than replicas would hold valid writes: documented.
      onPeerLoss = 1;
    }
    setPolicy(name, mode, replicas, onPeerLoss, rng.nextInt(4) == 0);
  }

  private byte[] randomData(int length) {
    byte[] data = new byte[length];
    if (length < OVERSIZED_MESSAGE_BYTES) {
      rng.nextBytes(data);
    }
    return data;
  }

  private void fuzzWrite() {
    String name = anyName();
    long offset = FuzzValues.offset(rng, target.modelSize());
    byte[] data = randomData(FuzzValues.dataLength(rng));
    write("Write", name, offset, data, rng.nextLong());
  }

  private void fuzzRead() {
    String name = anyName();
    long offset = FuzzValues.offset(rng, target.modelSize());
    long length = FuzzValues.length(rng, target.modelSize());
    read("Read", name, offset, length);
  }

  private void fuzzTrim() {
    String name = anyName();
    long offset = FuzzValues.offset(rng, target.modelSize());
    long length = FuzzValues.length(rng, target.modelSize());
    trim("Trim", name, offset, length);
  }

  private void fuzzFlush() {
    String name = anyName();
    if (name.equals(MODEL)) {
      flushModel("Flush");
      return;
    }
    call(
        "Flush",
        "volume=" + str(name),
        () -> volumes().flush(FlushRequest.newBuilder().setVolume(name).build()));
  }

  /** Fuzzed writes on one stream; a valid one on the model goes to a scratch volume instead. */
  private void fuzzWriteStream() {
    int n = 1 + rng.nextInt(6);
    List<WriteRequest> requests = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      String name = anyName();
      long offset = FuzzValues.offset(rng, target.modelSize());
      int length = FuzzValues.dataLength(rng);
      if (length >= OVERSIZED_MESSAGE_BYTES) {
        length = (int) (MIB + 4096); // an oversized message would end the whole stream
      }
      byte[] data = randomData(length);
      if (name.equals(MODEL) && ioProblem(offset, length, target.modelSize()) == null) {
        name = "s1"; // writes on one stream may apply in any order: keep the model exact
      }
      requests.add(
          WriteRequest.newBuilder()
              .setVolume(name)
              .setOffset(offset)
              .setData(ByteString.copyFrom(data))
              .setRequestId(i)
              .build());
    }
    writeStream(requests);
  }

  private void fuzzHealthCheck() {
    String service =
        rng.nextBoolean()
            ? pick(rng, List.of("", "peerflash.v1.VolumeService", "grpc.health.v1.Health"))
            : pick(rng, ODD_STRINGS);
    call(
        "Health.Check",
        "service=" + str(service),
        () ->
            HealthGrpc.newBlockingStub(channel)
                .withDeadlineAfter(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS)
                .check(HealthCheckRequest.newBuilder().setService(service).build()));
  }

  /** Watch streams forever: take the first answer, then cancel. */
  private void fuzzHealthWatch() {
    long t0 = System.nanoTime();
    try {
      fuzzHealthWatchTimed();
    } finally {
      perRpcNanos.merge("Health.Watch", System.nanoTime() - t0, Long::sum);
    }
  }

  private void fuzzHealthWatchTimed() {
    String service = rng.nextBoolean() ? "" : pick(rng, ODD_STRINGS);
    String args = "service=" + str(service);
    calls++;
    currentCall = args;
    perRpc.merge("Health.Watch", 1L, Long::sum);
    CountDownLatch first = new CountDownLatch(1);
    Status[] failed = new Status[1];
    @SuppressWarnings("unchecked")
    ClientCallStreamObserver<HealthCheckRequest>[] call = new ClientCallStreamObserver[1];
    HealthGrpc.newStub(channel)
        .withDeadlineAfter(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS)
        .watch(
            HealthCheckRequest.newBuilder().setService(service).build(),
            new ClientResponseObserver<HealthCheckRequest, HealthCheckResponse>() {
              @Override
              public void beforeStart(ClientCallStreamObserver<HealthCheckRequest> stream) {
                call[0] = stream;
              }

              @Override
              public void onNext(HealthCheckResponse value) {
                first.countDown();
              }

              @Override
              public void onError(Throwable t) {
                synchronized (failed) {
                  if (failed[0] == null) {
                    failed[0] = Status.fromThrowable(t);
                  }
                }
                first.countDown();
              }

              @Override
              public void onCompleted() {
                first.countDown();
              }
            });
    try {
      first.await(CALL_TIMEOUT_MS + 5_000, TimeUnit.MILLISECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
    Status before;
    synchronized (failed) {
      before = failed[0];
      failed[0] = Status.CANCELLED; // from here on, the cancel below
    }
    call[0].cancel("the first answer is enough", null);
    Status.Code code = before == null ? Status.Code.OK : before.getCode();
    perCode.merge(code.name(), 1L, Long::sum);
    checkStatus("Health.Watch", args, code, before == null ? null : before.getDescription());
  }

  private void fuzzReflection() {
    long t0 = System.nanoTime();
    try {
      fuzzReflectionTimed();
    } finally {
      perRpcNanos.merge("Reflection.Info", System.nanoTime() - t0, Long::sum);
    }
  }

  private void fuzzReflectionTimed() {
    int n = 1 + rng.nextInt(3);
    List<ServerReflectionRequest> requests = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      String s =
          rng.nextBoolean()
              ? pick(
                  rng,
                  List.of(
                      "peerflash.v1.VolumeService",
                      "peerflash.v1.WriteRequest",
                      "peerflash/v1/volume.proto",
                      "peerflash.v1.ReplicaService",
                      "grpc.health.v1.Health"))
              : pick(rng, ODD_STRINGS);
      ServerReflectionRequest.Builder b =
          ServerReflectionRequest.newBuilder().setHost(rng.nextInt(4) == 0 ? s : "");
      switch (rng.nextInt(6)) {
        case 0 -> b.setListServices(s);
        case 1 -> b.setFileByFilename(s);
        case 2 -> b.setFileContainingSymbol(s);
        case 3 ->
            b.setFileContainingExtension(
                io.grpc.reflection.v1.ExtensionRequest.newBuilder()
                    .setContainingType(s)
                    .setExtensionNumber(pick(rng, new int[] {0, 1, -1, Integer.MAX_VALUE})));
        case 4 -> b.setAllExtensionNumbersOfType(s);
        default -> {
          // no message_request at all
        }
      }
      requests.add(b.build());
    }
    String args = requests.toString().replace('\n', ' ');
    args = shorten(args, 300);
    calls++;
    currentCall = args;
    perRpc.merge("Reflection.Info", 1L, Long::sum);
    List<ServerReflectionResponse> answers = new ArrayList<>();
    Status[] end = new Status[1];
    CountDownLatch done = new CountDownLatch(1);
    StreamObserver<ServerReflectionRequest> out =
        ServerReflectionGrpc.newStub(channel)
            .withDeadlineAfter(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS)
            .serverReflectionInfo(
                new StreamObserver<>() {
                  @Override
                  public void onNext(ServerReflectionResponse r) {
                    synchronized (answers) {
                      answers.add(r);
                    }
                  }

                  @Override
                  public void onError(Throwable t) {
                    end[0] = Status.fromThrowable(t);
                    done.countDown();
                  }

                  @Override
                  public void onCompleted() {
                    end[0] = Status.OK;
                    done.countDown();
                  }
                });
    requests.forEach(out::onNext);
    out.onCompleted();
    awaitStream(done, end);
    perCode.merge(end[0].getCode().name(), 1L, Long::sum);
    checkStatus("Reflection.Info", args, end[0].getCode(), end[0].getDescription());
    synchronized (answers) {
      for (ServerReflectionResponse r : answers) {
        if (r.hasErrorResponse()) {
          Status.Code code = Status.fromCodeValue(r.getErrorResponse().getErrorCode()).getCode();
          perCode.merge("in-band " + code.name(), 1L, Long::sum);
          if (code != Status.Code.NOT_FOUND
              && code != Status.Code.INVALID_ARGUMENT
              && code != Status.Code.UNIMPLEMENTED) {
            violation(
                "Reflection.Info",
                args,
                "in-band error " + code,
                r.getErrorResponse().getErrorMessage());
          }
        }
      }
    }
  }

  private static void awaitStream(CountDownLatch done, Status[] end) {
    try {
      if (!done.await(CALL_TIMEOUT_MS + 5_000, TimeUnit.MILLISECONDS)) {
        end[0] = Status.DEADLINE_EXCEEDED.withDescription("deadline exceeded after the stream");
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
  }

  private long timeoutMs() {
    return pick(rng, new long[] {0, 1, 100, 5_000, 20_000, -1L, Long.MIN_VALUE});
  }

  private void fuzzMove() {
    String volume = anyName();
    String to;
    if (rng.nextBoolean() && !target.liveMembers().isEmpty()) {
      to = pick(rng, target.liveMembers());
    } else {
      to = nonMemberId();
    }
    if (volume.equals(MODEL) && target.liveMembers().contains(to)) {
      to = target.selfId(); // the model stays where the valid I/O goes
    }
    if (volume.equals(target.peerVolume()) && target.liveMembers().contains(to)) {
      to = target.peerOwner(); // and the peer volume stays a replica here
    }
    long timeoutMs = timeoutMs();
    boolean forwarded = rng.nextInt(4) == 0;
    String movedTo = to;
    call(
        "Cluster.MoveVolume",
        "volume="
            + str(volume)
            + " to="
            + str(to)
            + " timeout_ms="
            + u64(timeoutMs)
            + " forwarded="
            + forwarded,
        () ->
            cluster()
                .moveVolume(
                    MoveVolumeRequest.newBuilder()
                        .setVolume(volume)
                        .setTo(movedTo)
                        .setTimeoutMs(timeoutMs)
                        .setForwarded(forwarded)
                        .build()));
  }

  private void fuzzDrain() {
    String node = nonMemberId();
    call(
        "Cluster.DrainNode",
        "node=" + str(node),
        () -> cluster().drainNode(DrainNodeRequest.newBuilder().setNode(node).build()));
  }

  private void fuzzRemove() {
    String node = nonMemberId();
    call(
        "Cluster.RemoveNode",
        "node=" + str(node),
        () -> cluster().removeNode(RemoveNodeRequest.newBuilder().setNode(node).build()));
  }

  /**
   * AddNode only ever names an address nothing listens on, a voter's own address, or a malformed
   * one: a listening stranger would be made a voter of the cluster under test.
   */
  private void fuzzAddNode() {
    String node =
        rng.nextInt(3) == 0 && !target.liveMembers().isEmpty()
            ? pick(rng, target.liveMembers())
            : nonMemberId();
    List<String> addresses = new ArrayList<>();
    addresses.add("127.0.0.1:" + target.closedPort());
    addresses.add("localhost:" + target.closedPort());
    addresses.add("[::1]:" + target.closedPort());
    addresses.addAll(
        List.of(
            "",
            ":",
            "host",
            "host:",
            ":1",
            "127.0.0.1:0",
            "127.0.0.1:-1",
            "127.0.0.1:65536",
            "127.0.0.1:99999999999",
            "no-such-host.invalid:" + target.closedPort(),
            "\u00fc\u00f1\u00ee.invalid:" + target.closedPort(),
            "a\u0000b:" + target.closedPort(),
            "n".repeat(100_000) + ":" + target.closedPort()));
    addresses.addAll(target.raftAddresses().values());
    String address = pick(rng, addresses);
    long timeoutMs = pick(rng, new long[] {0, 1, 1_000, -1L});
    call(
        "Cluster.AddNode",
        "node=" + str(node) + " raft_address=" + str(address) + " timeout_ms=" + u64(timeoutMs),
        () ->
            cluster()
                .addNode(
                    AddNodeRequest.newBuilder()
                        .setNode(node)
                        .setRaftAddress(address)
                        .setTimeoutMs(timeoutMs)
                        .build()));
  }

  private void fuzzDescribeCopies() {
    String name = anyName();
    boolean asAdmin = replicaCallAsAdmin();
    call(
        "Replica.DescribeCopies",
        "volume=" + str(name) + (asAdmin ? " (as the admin client)" : ""),
        asAdmin && target.clustered(),
        () ->
            replicas(asAdmin)
                .describeCopies(DescribeCopiesRequest.newBuilder().setVolume(name).build()));
  }

  /**
   * A sync of held copies, as the peer volume's owner asks for one at a FLUSH. Refused with
   * PERMISSION_DENIED whenever the request claims another owner than the node whose certificate
   * sends it, as Replicate is, and for the admin client. Like copies, a sync for a volume this node
   * does not hold as a replica waits for the map to catch up (2 s) before it fails: rare.
   */
  private void fuzzSyncCopies() {
    int v = rng.nextInt(100);
    String volume = v < 2 ? MODEL : v < 4 ? pick(rng, ODD_STRINGS) : target.peerVolume();
    if (volume == null) {
      volume = "s3";
    }
    long epoch = target.peerVolume() == null ? 1 : peerEpoch();
    int e = rng.nextInt(100);
    long sentEpoch = e < 70 ? epoch : e < 80 ? epoch - 1 : e < 90 ? 0 : e < 97 ? -1L : epoch + 1;
    String owner =
        rng.nextInt(100) < 85 && target.peerOwner() != null
            ? target.peerOwner()
            : pick(rng, ODD_STRINGS);
    boolean asAdmin = replicaCallAsAdmin();
    SyncCopiesRequest req =
        SyncCopiesRequest.newBuilder()
            .setVolume(volume)
            .setEpoch(sentEpoch)
            .setOwnerId(owner)
            .build();
    call(
        "Replica.SyncCopies",
        "volume="
            + str(volume)
            + " epoch="
            + u64(sentEpoch)
            + " owner_id="
            + str(owner)
            + (asAdmin ? " (as the admin client)" : ""),
        asAdmin ? target.clustered() : !owner.equals(target.peerOwner()),
        () -> replicas(asAdmin).syncCopies(req));
  }

  /**
   * Whether a replica call goes as the admin client (which may not make one) rather than as the
   * peer volume's owner: always on a single node, where these services are not served at all.
   */
  private boolean replicaCallAsAdmin() {
    return peerChannel == null || rng.nextInt(10) == 0;
  }

  /**
   * Replica copies, resets and releases. Those at the current epoch only go to the peer volume; the
   * model volume only gets stale epochs. Requests for a volume this node does not hold as a replica
   * wait for the map to catch up (2 s) before they fail, so they are rare.
   */
  private void fuzzReplicate() {
    long t0 = System.nanoTime();
    try {
      fuzzReplicateTimed();
    } finally {
      perRpcNanos.merge("Replica.Replicate", System.nanoTime() - t0, Long::sum);
    }
  }

  private void fuzzReplicateTimed() {
    int n = 1 + rng.nextInt(3);
    List<ReplicateRequest> requests = new ArrayList<>();
    long peerBlocks = target.peerVolume() == null ? 256 : target.peerVolumeSize() / BLOCK;
    // The peer volume's epoch as the node holds it; read without counting it as a fuzzed call.
    long epoch = target.peerVolume() == null ? 1 : peerEpoch();
    for (int i = 0; i < n; i++) {
      // Each request this node must wait on costs 2 s: 1 in 400 for each kind.
      int v = rng.nextInt(1000);
      String volume = v < 3 ? MODEL : v < 5 ? pick(rng, ODD_STRINGS) : target.peerVolume();
      if (volume == null) {
        volume = "s3";
      }
      int e = rng.nextInt(1000);
      long sentEpoch =
          e < 600 ? epoch : e < 750 ? epoch - 1 : e < 850 ? 0 : e < 997 ? -1L : epoch + 1;
      if (volume.equals(MODEL) && sentEpoch >= 0) {
        sentEpoch = 0; // never the model's current epoch: stale, or 2^64-1
      }
      String owner =
          rng.nextInt(100) < 85 && target.peerOwner() != null
              ? target.peerOwner()
              : pick(rng, ODD_STRINGS);
      ReplicateRequest.Builder b =
          ReplicateRequest.newBuilder()
              .setBatchId(i)
              .setVolume(volume)
              .setEpoch(sentEpoch)
              .setOwnerId(owner);
      int blocks = rng.nextInt(5);
      for (int j = 0; j < blocks; j++) {
        long block =
            pick(
                rng,
                new long[] {
                  0,
                  1,
                  peerBlocks - 1,
                  peerBlocks,
                  -1L,
                  Long.MAX_VALUE,
                  Long.MIN_VALUE,
                  1L << 32,
                  rng.nextLong(peerBlocks),
                  rng.nextLong(peerBlocks)
                });
        long seq =
            pick(
                rng,
                new long[] {
                  0, 1, 2, 1 + rng.nextInt(1 << 20), Long.MAX_VALUE, -1L, Long.MIN_VALUE, 1L << 40
                });
        int length = pick(rng, new int[] {0, 1, 4095, 4096, 4096, 4096, 4097, 8192});
        boolean zero = rng.nextInt(4) == 0;
        b.addBlocks(
            BlockImage.newBuilder()
                .setBlock(block)
                .setSeq(seq)
                .setData(ByteString.copyFrom(randomData(length)))
                .setZero(zero));
      }
      if (rng.nextInt(3) == 0) {
        int released = rng.nextInt(4);
        int seqs = rng.nextInt(4) == 0 ? rng.nextInt(4) : released;
        for (int j = 0; j < released; j++) {
          b.addReleasedBlocks(
              pick(rng, new long[] {0, peerBlocks - 1, peerBlocks, -1L, Long.MAX_VALUE, 7}));
        }
        for (int j = 0; j < seqs; j++) {
          b.addReleasedSeqs(pick(rng, new long[] {0, 1, Long.MAX_VALUE, -1L, 1L << 40}));
        }
      }
      if (rng.nextInt(6) == 0) {
        b.setResetBelowSeq(pick(rng, new long[] {1, 2, Long.MAX_VALUE, -1L, 1L << 40}));
      }
      requests.add(b.build());
    }
    boolean asAdmin = replicaCallAsAdmin();
    String args = describeReplicate(requests) + (asAdmin ? " (as the admin client)" : "");
    calls++;
    currentCall = args;
    perRpc.merge("Replica.Replicate", 1L, Long::sum);
    List<ReplicateAck> acks = new ArrayList<>();
    Status[] end = new Status[1];
    CountDownLatch done = new CountDownLatch(1);
    StreamObserver<ReplicateRequest> out =
        ReplicaServiceGrpc.newStub(asAdmin ? channel : peerChannel)
            .withDeadlineAfter(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS)
            .replicate(
                new StreamObserver<>() {
                  @Override
                  public void onNext(ReplicateAck a) {
                    synchronized (acks) {
                      acks.add(a);
                    }
                  }

                  @Override
                  public void onError(Throwable t) {
                    end[0] = Status.fromThrowable(t);
                    done.countDown();
                  }

                  @Override
                  public void onCompleted() {
                    end[0] = Status.OK;
                    done.countDown();
                  }
                });
    requests.forEach(out::onNext);
    out.onCompleted();
    awaitStream(done, end);
    perCode.merge(end[0].getCode().name(), 1L, Long::sum);
    boolean streamDenied = asAdmin && target.clustered();
    checkStatus("Replica.Replicate", args, end[0].getCode(), end[0].getDescription(), streamDenied);
    synchronized (acks) {
      if (streamDenied && !acks.isEmpty()) {
        violation(
            "Replica.Replicate",
            args,
            "a refused stream acked copies",
            acks.size() + " acks for " + requests.size() + " requests");
      }
      if (end[0].isOk() && acks.size() != requests.size()) {
        violation(
            "Replica.Replicate",
            args,
            "not every request acked",
            acks.size() + " acks for " + requests.size() + " requests");
      }
      for (ReplicateAck a : acks) {
        Status.Code code = Status.fromCodeValue(a.getCode()).getCode();
        perCode.merge("in-band " + code.name(), 1L, Long::sum);
        String one = "batch " + a.getBatchId() + " of " + args;
        // The stream comes from the certificate of node target.peerOwner(): a copy claiming any
        // other owner must be refused, whatever else it says.
        boolean claimsAnotherOwner =
            a.getBatchId() >= 0
                && a.getBatchId() < requests.size()
                && !requests.get((int) a.getBatchId()).getOwnerId().equals(target.peerOwner());
        checkStatus(
            "Replica.Replicate",
            one,
            code,
            code == Status.Code.OK ? null : a.getMessage(),
            claimsAnotherOwner);
      }
    }
  }

  private long peerEpoch() {
    try {
      return volumes()
          .getVolume(GetVolumeRequest.newBuilder().setName(target.peerVolume()).build())
          .getEpoch();
    } catch (StatusRuntimeException e) {
      return 1;
    }
  }

  private static String describeReplicate(List<ReplicateRequest> requests) {
    StringBuilder b = new StringBuilder("[");
    for (ReplicateRequest r : requests) {
      b.append("{batch_id=")
          .append(r.getBatchId())
          .append(" volume=")
          .append(str(r.getVolume()))
          .append(" epoch=")
          .append(u64(r.getEpoch()))
          .append(" owner_id=")
          .append(str(r.getOwnerId()))
          .append(" blocks=[");
      for (BlockImage i : r.getBlocksList()) {
        b.append("(block=")
            .append(u64(i.getBlock()))
            .append(" seq=")
            .append(u64(i.getSeq()))
            .append(" data=")
            .append(i.getData().size())
            .append("B zero=")
            .append(i.getZero())
            .append(")");
      }
      b.append("] released_blocks=[");
      r.getReleasedBlocksList().forEach(x -> b.append(u64(x)).append(' '));
      b.append("] released_seqs=[");
      r.getReleasedSeqsList().forEach(x -> b.append(u64(x)).append(' '));
      b.append("] reset_below_seq=").append(u64(r.getResetBelowSeq())).append("} ");
    }
    return b.append(']').toString();
  }

  // ---------------------------------------------------------------------------------------------
  // After the run

  /**
   * The end-of-run properties: the model volume can be flushed, reads back as the model, its
   * backing file (after the flush) holds the model, it is healthy, and its policy can still be
   * changed and it flushed again; the node is still serving.
   */
  void verifyModel(String when, boolean changePolicy) {
    String phase = "after the run (" + when + ")";
    if (!checkHealth(phase)) {
      return;
    }
    boolean flushed = flushModel("Flush");
    for (long offset = 0; offset < target.modelSize(); offset += MIB) {
      read("Read", offset, Math.min(MIB, target.modelSize() - offset));
    }
    if (flushed) {
      compareBackingFile(phase);
    }
    // Healthy once re-protection has caught up with the run's last policy change or move: a
    // replica the policy wants is named and filled within moments, not at once.
    long healthyBy = System.nanoTime() + TimeUnit.SECONDS.toNanos(HEALTHY_WITHIN_S);
    Result<Volume> v;
    while (true) {
      v =
          call(
              "GetVolume",
              "name=" + str(MODEL) + " (" + phase + ")",
              () -> volumes().getVolume(GetVolumeRequest.newBuilder().setName(MODEL).build()));
      if (!v.ok() || v.value().getState() == VolumeState.HEALTHY || System.nanoTime() > healthyBy) {
        break;
      }
      sleepQuietly(50);
    }
    if (!v.ok()) {
      violation("GetVolume", "name=\"model\" (" + phase + ")", "model volume unreadable", v.got());
    } else if (v.value().getState() != VolumeState.HEALTHY || v.value().getCorruptBlocks() != 0) {
      violation(
          "GetVolume",
          "name=\"model\" (" + phase + ")",
          "model volume not healthy within " + HEALTHY_WITHIN_S + " s",
          v.value().getState() + ": " + shorten(v.value().getStateDetail(), 400));
    }
    if (changePolicy) {
      setPolicy(MODEL, 2, 0, 0, false);
      setPolicy(MODEL, 1, target.modelReplicas(), 1, false);
      byte[] data = new byte[BLOCK];
      rng.nextBytes(data);
      write("Write", 0, data);
      flushModel("Flush");
      read("Read", 0, BLOCK);
      compareBackingFile(phase + ", after a policy change");
    }
    checkHealth(phase);
  }

  private static void sleepQuietly(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private void compareBackingFile(String phase) {
    Path file = target.sharedDir().resolve(MODEL);
    byte[] onDisk = new byte[model.length];
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
      ByteBuffer buf = ByteBuffer.wrap(onDisk);
      while (buf.hasRemaining() && ch.read(buf, buf.position()) > 0) {
        // read on
      }
    } catch (IOException e) {
      violation("(backing file)", file.toString(), "backing file unreadable", e.toString());
      return;
    }
    for (int s = 0; s < model.length / SECTOR; s++) {
      if (unknownSectors.get(s)) {
        continue;
      }
      int at = s * SECTOR;
      int mismatch = Arrays.mismatch(onDisk, at, at + SECTOR, model, at, at + SECTOR);
      if (mismatch >= 0) {
        long byteAt = at + mismatch;
        violation(
            "(backing file)",
            file + " (" + phase + ")",
            "flushed backing file differs from the byte model",
            "first difference at byte "
                + byteAt
                + " (block last changed by call #"
                + lastChangedBy[(int) (byteAt / BLOCK)]
                + ")");
        return;
      }
    }
    if (Files.exists(file)) {
      try {
        if (Files.size(file) != target.modelSize()) {
          violation(
              "(backing file)",
              file + " (" + phase + ")",
              "backing file size differs from the volume size",
              Files.size(file) + " bytes");
        }
      } catch (IOException e) {
        violation("(backing file)", file.toString(), "backing file unreadable", e.toString());
      }
    }
  }
}
