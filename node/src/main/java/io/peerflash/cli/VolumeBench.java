package io.peerflash.cli;

import com.google.protobuf.ByteString;
import com.google.protobuf.BytesValue;
import com.google.protobuf.UnsafeByteOperations;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.peerflash.bench.BenchResult;
import io.peerflash.bench.Echo;
import io.peerflash.bench.LoadDriver;
import io.peerflash.bench.Offsets;
import io.peerflash.bench.Report;
import io.peerflash.bench.Workload;
import io.peerflash.client.PeerFlashClient;
import io.peerflash.client.PeerFlashException;
import io.peerflash.client.WriteStreamSession;
import io.peerflash.proto.v1.NodeStatus;
import io.peerflash.proto.v1.ReadRequest;
import io.peerflash.proto.v1.ReadResponse;
import io.peerflash.proto.v1.Volume;
import io.peerflash.proto.v1.VolumeServiceGrpc;
import io.peerflash.proto.v1.WriteRequest;
import io.peerflash.proto.v1.WriteResponse;
import java.io.IOException;
import java.time.Duration;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Consumer;
import picocli.CommandLine.ParameterException;

/**
 * The node workloads of {@code peerflash bench} against one volume: its creation, the working set,
 * each workload at each queue depth (with the echo floor interleaved at QD1 when {@code --floor} is
 * given) and the operations themselves.
 */
final class VolumeBench {
  private final BenchCommand cmd;

  VolumeBench(BenchCommand cmd) {
    this.cmd = cmd;
  }

  void run(PeerFlashCli cli, BenchCommand.Plan plan, List<BenchResult> results) throws Exception {
    try (PeerFlashClient c = connect(cli)) {
      ensureVolume(c);
      // One call that follows redirects: afterwards the client knows the owner's address.
      c.readByteString(cmd.volume, 0, 4096);
      String owner = c.ownerOf(cmd.volume);
      if (owner == null) {
        owner = PeerFlashClient.parseTargets(cmd.client.target).get(0);
      }
      ManagedChannel ownerChannel = cli.benchChannel(owner);
      ManagedChannel floorChannel = cmd.floor == null ? null : cli.benchChannel(cmd.floor);
      BytesValue echo = EchoBench.echoRequest(cmd.seed);
      if (floorChannel != null) {
        try {
          Echo.call(floorChannel, echo);
        } catch (StatusRuntimeException e) {
          floorChannel.shutdownNow();
          ownerChannel.shutdownNow();
          throw new ParameterException(
              cmd.spec.commandLine(),
              "--floor " + cmd.floor + ": no echo server answers there: " + e.getStatus());
        }
      }
      PeerFlashClient watch =
          cmd.sustained
              ? cli.clientBuilder(owner)
                  .deadline(Duration.ofSeconds(2))
                  .retryBudget(Duration.ZERO)
                  .build()
              : null;
      try {
        Data data = new Data(cmd.seed);
        boolean filled = false;
        long missCursor = 0;
        for (Workload w : plan.workloads()) {
          if (w.needsWorkingSet() && !filled) {
            fillWorkingSet(cli, c, data);
            filled = true;
          }
          for (int qd : plan.depths()) {
            long phaseSplit = 0;
            LoadDriver.NodeWatcher watcher = null;
            if (watch != null) {
              watcher =
                  () -> {
                    NodeStatus s = watch.status();
                    return new LoadDriver.NodeSample(
                        s.getCacheSizeBytes(), s.getDirtyBytes(), s.getDestagedBytes());
                  };
              phaseSplit = watch.status().getCacheSizeBytes();
            }
            LoadDriver driver = new LoadDriver(cmd.settings(plan, w, qd, watcher, phaseSplit));
            Ops ops = new Ops(c, ownerChannel, w, data, missCursor);
            LoadDriver.Outcome o;
            String how;
            if (qd == 1 && floorChannel != null) {
              how = "";
              LoadDriver.Paired p =
                  driver.runPaired(
                      ops::runSync, i -> Echo.call(floorChannel, echo), BenchCommand.FLOOR_SLICE);
              o = p.run();
              String runId = cmd.runId(w);
              results.add(
                  cmd.result(
                      Workload.ECHO,
                      qd,
                      "grpc-echo",
                      "gRPC echo 4 KiB (blocking unary), interleaved with " + runId,
                      "",
                      -1,
                      p.reference(),
                      Report.ECHO + "-" + runId));
            } else if (qd == 1 || plan.threads()) {
              how = qd == 1 ? "" : ", " + qd + " threads";
              o = driver.runThreads(ops::runSync, qd);
            } else if (plan.stream() && w != Workload.MIX && w.writes()) {
              how = ", WriteStream";
              try (WriteStreamSession session = c.openWriteStream(cmd.volume, qd)) {
                ops.session = session;
                o = driver.runPipelined(ops::startAsync, qd);
              }
            } else {
              how = ", async calls";
              o = driver.runPipelined(ops::startAsync, qd);
            }
            missCursor += o.ops() + qd * 1000L + 100_000L;
            results.add(
                cmd.result(
                    w,
                    qd,
                    "peerflash",
                    cmd.label != null ? cmd.label : describe(w) + how,
                    modeName(),
                    cmd.replicas,
                    o,
                    cmd.runId(w)));
          }
        }
      } finally {
        ownerChannel.shutdownNow();
        if (floorChannel != null) {
          floorChannel.shutdownNow();
        }
        if (watch != null) {
          watch.close();
        }
      }
      if (cmd.deleteVolume) {
        c.deleteVolume(cmd.volume);
      }
    }
  }

  private PeerFlashClient connect(PeerFlashCli cli) {
    try {
      PeerFlashClient.parseTargets(cmd.client.target);
    } catch (IllegalArgumentException e) {
      throw new ParameterException(
          cmd.spec.commandLine(),
          "--target must be HOST[:PORT] or HOST[:PORT],HOST[:PORT],...: " + e.getMessage());
    }
    return cli.benchClientBuilder(cmd.client.target).build();
  }

  private String modeName() {
    return Formats.mode(cmd.mode);
  }

  private String describe(Workload w) {
    return w.description() + ", " + modeName() + ", replicas " + cmd.replicas;
  }

  /** Creates the volume, or brings an existing one to the wanted policy. */
  private void ensureVolume(PeerFlashClient c) {
    try {
      c.createVolume(cmd.volume, cmd.sizeBytes, cmd.mode, cmd.replicas);
      return;
    } catch (PeerFlashException e) {
      if (e.code() != Status.Code.ALREADY_EXISTS) {
        throw e;
      }
    }
    Volume v = c.getVolume(cmd.volume);
    if (v.getPolicy().getMode() != cmd.mode || v.getPolicy().getReplicas() != cmd.replicas) {
      c.setPolicy(cmd.volume, cmd.mode, cmd.replicas);
    }
    if (v.getSizeBytes() < cmd.sizeBytes) {
      throw new ParameterException(
          cmd.spec.commandLine(),
          "volume "
              + cmd.volume
              + " exists with "
              + Formats.size(v.getSizeBytes())
              + ", smaller than --size "
              + Formats.size(cmd.sizeBytes));
    }
  }

  private void fillWorkingSet(PeerFlashCli cli, PeerFlashClient c, Data data) throws IOException {
    if (!cmd.noProgress) {
      cli.err().println("writing the working set: " + Formats.size(cmd.workingSetBytes) + "...");
    }
    c.writeWithRetry(
        cmd.volume,
        0,
        cmd.workingSetBytes,
        Workload.SEQ_WRITE.blockBytes(),
        BenchCommand.FILL_IN_FLIGHT,
        (pos, n) -> data.big(pos / Workload.SEQ_WRITE.blockBytes()).substring(0, n));
    // Destage the working set now: otherwise its destage runs during the measured reads and is
    // charged to them (read hits measured 1.2x to 2x the echo depending on the overlap).
    c.flush(cmd.volume);
  }

  /** Random data, made once: 4 KiB blocks and 1 MiB chunks. */
  static final class Data {
    final ByteString[] small = new ByteString[BenchCommand.DATA_BUFFERS];
    final ByteString[] big = new ByteString[4];

    Data(long dataSeed) {
      SplittableRandom rnd = new SplittableRandom(dataSeed);
      for (int i = 0; i < small.length; i++) {
        byte[] b = new byte[4096];
        rnd.nextBytes(b);
        small[i] = UnsafeByteOperations.unsafeWrap(b);
      }
      for (int i = 0; i < big.length; i++) {
        byte[] b = new byte[Workload.SEQ_WRITE.blockBytes()];
        rnd.nextBytes(b);
        big[i] = UnsafeByteOperations.unsafeWrap(b);
      }
    }

    ByteString small(long i) {
      return small[(int) Math.floorMod(i, (long) small.length)];
    }

    ByteString big(long i) {
      return big[(int) Math.floorMod(i, (long) big.length)];
    }
  }

  /** The operations of one workload against one volume. */
  private final class Ops {
    final PeerFlashClient c;
    final VolumeServiceGrpc.VolumeServiceStub async;
    final Workload w;
    final Data data;
    final long missCursor;
    WriteStreamSession session;

    Ops(PeerFlashClient c, ManagedChannel owner, Workload w, Data data, long missCursor) {
      this.c = c;
      this.async = VolumeServiceGrpc.newStub(owner);
      this.w = w;
      this.data = data;
      this.missCursor = missCursor;
    }

    boolean isRead(long i) {
      return w == Workload.READ_HIT
          || w == Workload.READ_MISS
          || (w == Workload.MIX && Math.floorMod(mix(i), 10) < 7);
    }

    private long mix(long i) {
      return new SplittableRandom(cmd.seed ^ 0x5DEECE66DL ^ i).nextLong();
    }

    long offset(long i) {
      return switch (w) {
        case WRITE -> Offsets.random(cmd.seed, i, 0, cmd.sizeBytes, 4096);
        case READ_HIT, MIX -> Offsets.random(cmd.seed, i, 0, cmd.workingSetBytes, 4096);
        case READ_MISS ->
            Offsets.unique(
                cmd.seed,
                missCursor + i,
                cmd.workingSetBytes,
                cmd.sizeBytes - cmd.workingSetBytes,
                4096);
        case SEQ_WRITE -> Offsets.sequential(i, 0, cmd.sizeBytes, w.blockBytes());
        case ECHO -> throw new IllegalStateException();
      };
    }

    ByteString payload(long i) {
      return w == Workload.SEQ_WRITE ? data.big(i) : data.small(i);
    }

    void runSync(long i) {
      long off = offset(i);
      if (isRead(i)) {
        ByteString got = c.readByteString(cmd.volume, off, 4096);
        if (got.size() != 4096) {
          throw new IllegalStateException("short read: " + got.size() + " bytes");
        }
      } else {
        c.write(cmd.volume, off, payload(i));
      }
    }

    void startAsync(long i, Consumer<Throwable> done) {
      long off = offset(i);
      if (isRead(i)) {
        async.read(
            ReadRequest.newBuilder().setVolume(cmd.volume).setOffset(off).setLength(4096).build(),
            BenchCommand.<ReadResponse>observer(done));
      } else if (session != null) {
        session.write(cmd.volume, off, payload(i)).whenComplete((ok, e) -> done.accept(e));
      } else {
        async.write(
            WriteRequest.newBuilder()
                .setVolume(cmd.volume)
                .setOffset(off)
                .setData(payload(i))
                .build(),
            BenchCommand.<WriteResponse>observer(done));
      }
    }
  }
}
