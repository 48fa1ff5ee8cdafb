package io.peerflash.cli;

import com.google.protobuf.ByteString;
import com.google.protobuf.BytesValue;
import com.google.protobuf.UnsafeByteOperations;
import io.grpc.CallOptions;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.netty.channel.ChannelOption;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.ClientResponseObserver;
import io.grpc.stub.StreamObserver;
import io.peerflash.bench.BenchArgs;
import io.peerflash.bench.BenchResult;
import io.peerflash.bench.Echo;
import io.peerflash.bench.LoadDriver;
import io.peerflash.bench.Offsets;
import io.peerflash.bench.Plots;
import io.peerflash.bench.Report;
import io.peerflash.bench.Workload;
import io.peerflash.cli.Converters.ModeConverter;
import io.peerflash.cli.Converters.SizeConverter;
import io.peerflash.client.ClientSecurity;
import io.peerflash.client.PeerFlashClient;
import io.peerflash.client.PeerFlashException;
import io.peerflash.client.WriteStreamSession;
import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.NodeStatus;
import io.peerflash.proto.v1.ReadRequest;
import io.peerflash.proto.v1.ReadResponse;
import io.peerflash.proto.v1.Volume;
import io.peerflash.proto.v1.VolumeServiceGrpc;
import io.peerflash.proto.v1.WriteRequest;
import io.peerflash.proto.v1.WriteResponse;
import io.peerflash.security.TlsDirectory;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.function.Consumer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.ParentCommand;
import picocli.CommandLine.Spec;

/**
 * {@code peerflash bench}: latency and IOPS of a running cluster (or of a gRPC echo server, the
 * floor), with HdrHistogram percentiles, as a table, JSON and a PNG plot.
 */
@Command(
    name = "bench",
    sortOptions = false,
    subcommands = {BenchCommand.EchoServer.class, BenchCommand.ReportCommand.class},
    description = {
      "Measure latency (p50, p99, p99.9, max) and IOPS of workloads against a running node or"
          + " cluster, at one or more queue depths. Prints a table; --json and --png save the"
          + " results and a latency plot.",
      "Workloads: write (4 KiB random), read-hit (4 KiB random reads of a working set written"
          + " first), read-miss (4 KiB reads of blocks never read before), mix (70%% read-hit, 30%%"
          + " write), seq-write (1 MiB sequential), echo (4 KiB gRPC echo against"
          + " 'peerflash bench echo-server': the floor).",
      "QD1 is one thread making blocking calls; deeper queues are pipelined from one thread"
          + " (writes on a WriteStream, reads as asynchronous calls) unless --driver threads."
    })
final class BenchCommand implements Callable<Integer> {
  /** Data buffers rotated through by writes; never modified once made. */
  static final int DATA_BUFFERS = 64;

  /** Unanswered 1 MiB writes while filling the working set. */
  static final int FILL_IN_FLIGHT = 8;

  /** How long a --floor run stays on one of its two operations before switching. */
  static final Duration FLOOR_SLICE = Duration.ofMillis(100);

  @Mixin ClientOptions client;
  @Spec CommandSpec spec;

  @Option(
      names = "--workload",
      paramLabel = "W[,W...]",
      defaultValue = "write",
      description =
          "write, read-hit, read-miss, mix, seq-write or echo (default: ${DEFAULT-VALUE}).")
  String workloads;

  @Option(
      names = "--qd",
      paramLabel = "N[,N...]",
      defaultValue = "1,32",
      description = "Queue depths, each run in turn (default: ${DEFAULT-VALUE}).")
  String queueDepths;

  @Option(
      names = "--duration",
      paramLabel = "TIME",
      defaultValue = "10s",
      description = "Measured time per workload and queue depth (default: ${DEFAULT-VALUE}).")
  String duration;

  @Option(
      names = "--warmup",
      paramLabel = "TIME",
      defaultValue = "2s",
      description = "Unmeasured time before each run (default: ${DEFAULT-VALUE}).")
  String warmup;

  @Option(
      names = "--volume",
      paramLabel = "NAME",
      defaultValue = "bench",
      description = "Volume to use; created when missing (default: ${DEFAULT-VALUE}).")
  String volume;

  @Option(
      names = "--size",
      paramLabel = "SIZE",
      defaultValue = "1GiB",
      converter = SizeConverter.class,
      description = "Size of a volume created (default: ${DEFAULT-VALUE}).")
  long sizeBytes;

  @Option(
      names = "--mode",
      paramLabel = "MODE",
      defaultValue = "write-back",
      converter = ModeConverter.class,
      description =
          "Volume mode: write-back, write-through or write-around (default: ${DEFAULT-VALUE}).")
  CacheMode mode;

  @Option(
      names = "--replicas",
      paramLabel = "N",
      defaultValue = "0",
      description = "Volume replicas, 0-2 (default: ${DEFAULT-VALUE}).")
  int replicas;

  @Option(
      names = "--working-set",
      paramLabel = "SIZE",
      defaultValue = "64MiB",
      converter = SizeConverter.class,
      description =
          "Start of the volume read-hit and mix use, written first; must fit in the cache"
              + " (default: ${DEFAULT-VALUE}).")
  long workingSetBytes;

  @Option(
      names = "--api",
      paramLabel = "API",
      defaultValue = "auto",
      description =
          "Calls of writes and echoes at QD > 1: stream (one pipelined stream), unary"
              + " (concurrent calls) or auto: stream (default: ${DEFAULT-VALUE}).")
  String api;

  @Option(
      names = "--driver",
      paramLabel = "D",
      defaultValue = "pipeline",
      description =
          "How QD > 1 is kept up: pipeline (asynchronous, one thread) or threads (one blocking"
              + " thread per outstanding request) (default: ${DEFAULT-VALUE}).")
  String driver;

  @Option(
      names = "--sustained",
      description =
          "Watch the owner node (dirty data, destage rate) every second, and report the phase"
              + " after the writes exceeded its cache separately (destage-bound).")
  boolean sustained;

  @Option(
      names = "--id",
      paramLabel = "ID",
      description = "Name of the run in the results, e.g. wb-r1 (default: the workload).")
  String id;

  @Option(names = "--label", paramLabel = "TEXT", description = "Description of the run.")
  String label;

  @Option(names = "--json", paramLabel = "FILE", description = "Write the results as JSON.")
  Path json;

  @Option(names = "--png", paramLabel = "FILE", description = "Draw the latency percentiles.")
  Path png;

  @Option(names = "--delete-volume", description = "Delete the volume at the end.")
  boolean deleteVolume;

  @Option(
      names = "--floor",
      paramLabel = "HOST:PORT",
      description =
          "At QD1, alternate every 100 ms between the workload and a 4 KiB echo to the echo server"
              + " at HOST:PORT ('bench echo-server'), and report the echo as run echo-<id>: the"
              + " ratio to the floor is then measured at the same moments.")
  String floor;

  @Option(names = "--no-progress", description = "No progress bar on stderr.")
  boolean noProgress;

  // The transport of the measured calls (see call()); empty when a test supplies the channels.
  private String transport = "";

  @Option(
      names = "--seed",
      paramLabel = "N",
      defaultValue = "1",
      description = "Seed of offsets and data (default: ${DEFAULT-VALUE}).")
  long seed;

  /**
   * Channels of the benchmark's load: plaintext, and responses delivered on the transport thread.
   * The callbacks only record a latency and start the next request, so they need no pool; a pool
   * would add a thread hand-off to every measured request.
   */
  static ManagedChannel directChannel(String address, ClientSecurity security) {
    return security
        .apply(NettyChannelBuilder.forTarget(address))
        .directExecutor()
        .maxInboundMessageSize(Echo.MAX_INBOUND_MESSAGE_BYTES)
        .withOption(
            ChannelOption.CONNECT_TIMEOUT_MILLIS, (int) PeerFlashClient.CONNECT_TIMEOUT.toMillis())
        .build();
  }

  /** What the options say, checked. */
  record Plan(
      List<Workload> workloads,
      List<Integer> depths,
      Duration duration,
      Duration warmup,
      boolean stream,
      boolean threads) {}

  Plan plan() {
    try {
      List<Workload> ws = BenchArgs.workloads(workloads);
      if (ws.contains(Workload.ECHO) && ws.size() > 1) {
        throw new IllegalArgumentException(
            "echo runs against an echo server, not a node: give it alone");
      }
      if (floor != null && ws.contains(Workload.ECHO)) {
        throw new IllegalArgumentException("--floor is for node workloads; echo is the floor");
      }
      if (floor != null) {
        PeerFlashClient.parseTargets(floor);
      }
      Duration d = BenchArgs.duration(duration);
      if (d.isZero()) {
        throw new IllegalArgumentException("--duration must be positive");
      }
      String a = api.trim().toLowerCase(Locale.ROOT);
      if (!a.equals("auto") && !a.equals("stream") && !a.equals("unary")) {
        throw new IllegalArgumentException("--api must be auto, stream or unary, got " + api);
      }
      String dr = driver.trim().toLowerCase(Locale.ROOT);
      if (!dr.equals("pipeline") && !dr.equals("threads")) {
        throw new IllegalArgumentException("--driver must be pipeline or threads, got " + driver);
      }
      if (replicas < 0 || replicas > 2) {
        throw new IllegalArgumentException("--replicas must be 0, 1 or 2, got " + replicas);
      }
      if (sizeBytes < Workload.SEQ_WRITE.blockBytes() || sizeBytes % 4096 != 0) {
        throw new IllegalArgumentException(
            "--size must be a multiple of 4 KiB and at least 1 MiB, got " + sizeBytes);
      }
      boolean usesWorkingSet =
          ws.stream().anyMatch(w -> w.needsWorkingSet() || w == Workload.READ_MISS);
      if (usesWorkingSet && (workingSetBytes < 4096 || workingSetBytes >= sizeBytes)) {
        // Reads that miss go to the blocks after the working set.
        throw new IllegalArgumentException(
            "--working-set must be at least 4 KiB and smaller than --size, got " + workingSetBytes);
      }
      return new Plan(
          ws,
          BenchArgs.queueDepths(queueDepths),
          d,
          BenchArgs.duration(warmup),
          !a.equals("unary"),
          dr.equals("threads"));
    } catch (IllegalArgumentException e) {
      throw new ParameterException(spec.commandLine(), e.getMessage());
    }
  }

  @Override
  public Integer call() throws Exception {
    Plan plan = plan();
    PeerFlashCli cli = client.cli();
    client.applySecurity();
    // Recorded with every result, so a report can tell TLS runs from plaintext ones.
    transport =
        !cli.needsSecurity()
            ? ""
            : cli.security().tls() ? BenchResult.TRANSPORT_TLS : BenchResult.TRANSPORT_PLAINTEXT;
    PrintStream out = cli.out();
    List<BenchResult> results = new ArrayList<>();
    if (plan.workloads().get(0) == Workload.ECHO) {
      runEcho(cli, plan, results);
    } else {
      runVolume(cli, plan, results);
    }
    printTable(out, results);
    if (json != null) {
      BenchResult.writeFile(json, results);
      out.println("results: " + json);
    }
    if (png != null) {
      List<Plots.Panel> panels = new ArrayList<>();
      for (int qd : plan.depths()) {
        List<BenchResult> rs = new ArrayList<>();
        for (BenchResult r : results) {
          if (r.qd() == qd) {
            rs.add(r);
          }
        }
        panels.add(new Plots.Panel("queue depth " + qd, rs));
      }
      Plots.writePng(Plots.percentiles(panels), png);
      out.println("plot: " + png);
    }
    long errors = results.stream().mapToLong(BenchResult::errors).sum();
    return errors == 0 ? PeerFlashCli.EXIT_OK : PeerFlashCli.EXIT_FAILURE;
  }

  // ------------------------------------------------------------------------------------------
  // Echo: the floor

  private void runEcho(PeerFlashCli cli, Plan plan, List<BenchResult> results)
      throws InterruptedException {
    String target = PeerFlashClient.parseTargets(client.target).get(0);
    ManagedChannel channel = cli.benchChannel(target);
    try {
      BytesValue request = echoRequest();
      // Fail fast when nothing answers there.
      Echo.call(channel, request);
      for (int qd : plan.depths()) {
        LoadDriver driver = new LoadDriver(settings(plan, Workload.ECHO, qd, null, 0));
        LoadDriver.Outcome o;
        String how;
        if (qd == 1 || plan.threads()) {
          how = qd == 1 ? "blocking unary" : qd + " threads, blocking unary";
          o = driver.runThreads(i -> Echo.call(channel, request), qd);
        } else if (plan.stream()) {
          how = "one bidi stream, pipelined";
          EchoStream s = new EchoStream(channel);
          try {
            o = driver.runPipelined((i, done) -> s.send(request, done), qd);
          } finally {
            s.close();
          }
        } else {
          how = "asynchronous unary, pipelined";
          o =
              driver.runPipelined(
                  (i, done) ->
                      ClientCalls.asyncUnaryCall(
                          channel.newCall(Echo.UNARY, CallOptions.DEFAULT),
                          request,
                          observer(done)),
                  qd);
        }
        results.add(
            result(
                Workload.ECHO,
                qd,
                "grpc-echo",
                label != null
                    ? label
                    : "gRPC echo 4 KiB ("
                        + how
                        + (transport.isEmpty() ? "" : ", " + transport)
                        + ")",
                "",
                -1,
                o,
                runId(Workload.ECHO)));
      }
    } finally {
      channel.shutdownNow();
    }
  }

  private BytesValue echoRequest() {
    byte[] bytes = new byte[Workload.ECHO.blockBytes()];
    new SplittableRandom(seed).nextBytes(bytes);
    return BytesValue.newBuilder().setValue(UnsafeByteOperations.unsafeWrap(bytes)).build();
  }

  /** Pipelined echoes on one bidi stream; answers come back in order. */
  private static final class EchoStream {
    private final ClientCallStreamObserver<BytesValue> requests;
    private final ConcurrentLinkedQueue<Consumer<Throwable>> waiting =
        new ConcurrentLinkedQueue<>();

    EchoStream(ManagedChannel channel) {
      requests =
          (ClientCallStreamObserver<BytesValue>)
              ClientCalls.asyncBidiStreamingCall(
                  channel.newCall(Echo.STREAM, CallOptions.DEFAULT),
                  new StreamObserver<BytesValue>() {
                    @Override
                    public void onNext(BytesValue value) {
                      Consumer<Throwable> done = waiting.poll();
                      if (done != null) {
                        done.accept(null);
                      }
                    }

                    @Override
                    public void onError(Throwable t) {
                      for (Consumer<Throwable> d; (d = waiting.poll()) != null; ) {
                        d.accept(t);
                      }
                    }

                    @Override
                    public void onCompleted() {
                      onError(Status.UNAVAILABLE.withDescription("stream ended").asException());
                    }
                  });
    }

    void send(BytesValue request, Consumer<Throwable> done) {
      synchronized (this) {
        waiting.add(done);
        requests.onNext(request);
      }
    }

    void close() {
      synchronized (this) {
        requests.onCompleted();
      }
    }
  }

  // ------------------------------------------------------------------------------------------
  // PeerFlash volumes

  private void runVolume(PeerFlashCli cli, Plan plan, List<BenchResult> results) throws Exception {
    try (PeerFlashClient c = connect(cli)) {
      ensureVolume(c);
      // One call that follows redirects: afterwards the client knows the owner's address.
      c.readByteString(volume, 0, 4096);
      String owner = c.ownerOf(volume);
      if (owner == null) {
        owner = PeerFlashClient.parseTargets(client.target).get(0);
      }
      ManagedChannel ownerChannel = cli.benchChannel(owner);
      ManagedChannel floorChannel = floor == null ? null : cli.benchChannel(floor);
      BytesValue echo = echoRequest();
      if (floorChannel != null) {
        try {
          Echo.call(floorChannel, echo);
        } catch (StatusRuntimeException e) {
          floorChannel.shutdownNow();
          ownerChannel.shutdownNow();
          throw new ParameterException(
              spec.commandLine(),
              "--floor " + floor + ": no echo server answers there: " + e.getStatus());
        }
      }
      PeerFlashClient watch =
          sustained
              ? cli.clientBuilder(owner)
                  .deadline(Duration.ofSeconds(2))
                  .retryBudget(Duration.ZERO)
                  .build()
              : null;
      try {
        Data data = new Data(seed);
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
            LoadDriver driver = new LoadDriver(settings(plan, w, qd, watcher, phaseSplit));
            Ops ops = new Ops(c, ownerChannel, w, data, missCursor);
            LoadDriver.Outcome o;
            String how;
            if (qd == 1 && floorChannel != null) {
              how = "";
              LoadDriver.Paired p =
                  driver.runPaired(ops::runSync, i -> Echo.call(floorChannel, echo), FLOOR_SLICE);
              o = p.run();
              String runId = runId(w);
              results.add(
                  result(
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
              try (WriteStreamSession session = c.openWriteStream(volume, qd)) {
                ops.session = session;
                o = driver.runPipelined(ops::startAsync, qd);
              }
            } else {
              how = ", async calls";
              o = driver.runPipelined(ops::startAsync, qd);
            }
            missCursor += o.ops() + qd * 1000L + 100_000L;
            results.add(
                result(
                    w,
                    qd,
                    "peerflash",
                    label != null ? label : describe(w) + how,
                    modeName(),
                    replicas,
                    o,
                    runId(w)));
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
      if (deleteVolume) {
        c.deleteVolume(volume);
      }
    }
  }

  private PeerFlashClient connect(PeerFlashCli cli) {
    try {
      PeerFlashClient.parseTargets(client.target);
    } catch (IllegalArgumentException e) {
      throw new ParameterException(
          spec.commandLine(),
          "--target must be HOST[:PORT] or HOST[:PORT],HOST[:PORT],...: " + e.getMessage());
    }
    return cli.benchClientBuilder(client.target).build();
  }

  private String modeName() {
    return Formats.mode(mode);
  }

  private String describe(Workload w) {
    return w.description() + ", " + modeName() + ", replicas " + replicas;
  }

  /** Creates the volume, or brings an existing one to the wanted policy. */
  private void ensureVolume(PeerFlashClient c) {
    try {
      c.createVolume(volume, sizeBytes, mode, replicas);
      return;
    } catch (PeerFlashException e) {
      if (e.code() != Status.Code.ALREADY_EXISTS) {
        throw e;
      }
    }
    Volume v = c.getVolume(volume);
    if (v.getPolicy().getMode() != mode || v.getPolicy().getReplicas() != replicas) {
      c.setPolicy(volume, mode, replicas);
    }
    if (v.getSizeBytes() < sizeBytes) {
      throw new ParameterException(
          spec.commandLine(),
          "volume "
              + volume
              + " exists with "
              + Formats.size(v.getSizeBytes())
              + ", smaller than --size "
              + Formats.size(sizeBytes));
    }
  }

  private void fillWorkingSet(PeerFlashCli cli, PeerFlashClient c, Data data) throws IOException {
    if (!noProgress) {
      cli.err().println("writing the working set: " + Formats.size(workingSetBytes) + "...");
    }
    c.writeWithRetry(
        volume,
        0,
        workingSetBytes,
        Workload.SEQ_WRITE.blockBytes(),
        FILL_IN_FLIGHT,
        (pos, n) -> data.big(pos / Workload.SEQ_WRITE.blockBytes()).substring(0, n));
    // Destage the working set now: otherwise its destage runs during the measured reads and is
    // charged to them (read hits measured 1.2x to 2x the echo depending on the overlap).
    c.flush(volume);
  }

  /** Random data, made once: 4 KiB blocks and 1 MiB chunks. */
  static final class Data {
    final ByteString[] small = new ByteString[DATA_BUFFERS];
    final ByteString[] big = new ByteString[4];

    Data(long seed) {
      SplittableRandom rnd = new SplittableRandom(seed);
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
      return new SplittableRandom(seed ^ 0x5DEECE66DL ^ i).nextLong();
    }

    long offset(long i) {
      return switch (w) {
        case WRITE -> Offsets.random(seed, i, 0, sizeBytes, 4096);
        case READ_HIT, MIX -> Offsets.random(seed, i, 0, workingSetBytes, 4096);
        case READ_MISS ->
            Offsets.unique(
                seed, missCursor + i, workingSetBytes, sizeBytes - workingSetBytes, 4096);
        case SEQ_WRITE -> Offsets.sequential(i, 0, sizeBytes, w.blockBytes());
        case ECHO -> throw new IllegalStateException();
      };
    }

    ByteString payload(long i) {
      return w == Workload.SEQ_WRITE ? data.big(i) : data.small(i);
    }

    void runSync(long i) {
      long off = offset(i);
      if (isRead(i)) {
        ByteString got = c.readByteString(volume, off, 4096);
        if (got.size() != 4096) {
          throw new IllegalStateException("short read: " + got.size() + " bytes");
        }
      } else {
        c.write(volume, off, payload(i));
      }
    }

    void startAsync(long i, Consumer<Throwable> done) {
      long off = offset(i);
      if (isRead(i)) {
        async.read(
            ReadRequest.newBuilder().setVolume(volume).setOffset(off).setLength(4096).build(),
            BenchCommand.<ReadResponse>observer(done));
      } else if (session != null) {
        session.write(volume, off, payload(i)).whenComplete((ok, e) -> done.accept(e));
      } else {
        async.write(
            WriteRequest.newBuilder().setVolume(volume).setOffset(off).setData(payload(i)).build(),
            BenchCommand.<WriteResponse>observer(done));
      }
    }
  }

  static <T> StreamObserver<T> observer(Consumer<Throwable> done) {
    return new ClientResponseObserver<Object, T>() {
      @Override
      public void beforeStart(ClientCallStreamObserver<Object> requestStream) {}

      @Override
      public void onNext(T value) {}

      @Override
      public void onError(Throwable t) {
        done.accept(t);
      }

      @Override
      public void onCompleted() {
        done.accept(null);
      }
    };
  }

  // ------------------------------------------------------------------------------------------
  // Measuring and reporting

  private LoadDriver.Settings settings(
      Plan plan, Workload w, int qd, LoadDriver.NodeWatcher watcher, long phaseSplit) {
    LoadDriver.Settings s =
        LoadDriver.Settings.of(plan.warmup(), plan.duration(), w.blockBytes())
            .withPhaseSplit(phaseSplit)
            .withWatcher(watcher);
    if (!noProgress) {
      s = s.withProgress(new Progress(client.cli(), w.cliName() + " qd" + qd));
    }
    return s;
  }

  /** The id of this invocation's run of {@code w}: --id, or the workload's name. */
  private String runId(Workload w) {
    return id != null ? id : w.cliName();
  }

  private BenchResult result(
      Workload w,
      int qd,
      String system,
      String text,
      String modeText,
      int replicaCount,
      LoadDriver.Outcome o,
      String runId) {
    if (o.firstError() != null && o.errors() > 0) {
      client
          .cli()
          .err()
          .println(
              "warning: "
                  + w.cliName()
                  + " qd"
                  + qd
                  + ": "
                  + o.errors()
                  + " operations failed; first: "
                  + o.firstError());
    }
    return new BenchResult(
        runId,
        text,
        system,
        w.cliName(),
        qd,
        w.blockBytes(),
        modeText,
        replicaCount,
        o.seconds(),
        o.ops(),
        o.errors(),
        io.peerflash.bench.Latency.ofNanos(o.latencyNanos()),
        BenchResult.curve(o.latencyNanos()),
        o.phases(),
        o.timeline(),
        o.cacheBytes(),
        transport);
  }

  static void printTable(PrintStream out, List<BenchResult> results) {
    Table t =
        new Table(
            "WORKLOAD", "QD", "IOPS", "MiB/s", "P50 us", "P99 us", "P99.9 us", "MAX us", "ERRORS");
    for (BenchResult r : results) {
      t.row(
          r.workload(),
          r.qd(),
          Report.count(r.iops()),
          String.format(Locale.ROOT, "%.1f", r.mibPerSec()),
          us(r.latency().p50()),
          us(r.latency().p99()),
          us(r.latency().p999()),
          us(r.latency().max()),
          r.errors());
      for (BenchResult.Phase p : r.phases()) {
        t.row(
            "  " + p.name(),
            "",
            Report.count(p.iops()),
            "",
            us(p.latency().p50()),
            us(p.latency().p99()),
            us(p.latency().p999()),
            us(p.latency().max()),
            "");
      }
    }
    t.print(out);
  }

  private static String us(double v) {
    return String.format(Locale.ROOT, v >= 100 ? "%.0f" : "%.1f", v);
  }

  /** A progress bar on stderr: redrawn in place on a terminal, a line every 5 s elsewhere. */
  static final class Progress implements LoadDriver.ProgressListener {
    static final int BAR_WIDTH = 20;
    private final PrintStream err;
    private final boolean interactive;
    private final String what;
    private int calls;
    private String last = "";

    Progress(PeerFlashCli cli, String what) {
      this.err = cli.err();
      this.interactive = cli.interactive();
      this.what = what;
    }

    @Override
    public void interval(
        double fractionDone, boolean warmingUp, double iops, double p99Micros, long errors) {
      String line = line(what, fractionDone, warmingUp, iops, p99Micros, errors);
      calls++;
      if (interactive) {
        err.print("\r" + line + " ".repeat(Math.max(0, last.length() - line.length())));
        if (fractionDone >= 1) {
          err.println();
        }
      } else if (calls % 5 == 0 || fractionDone >= 1) {
        err.println(line);
      }
      err.flush();
      last = line;
    }

    /**
     * E.g. {@code write qd32 [#########...........] 45% now 12.3k IOPS, p99 850 us}: the rate and
     * p99 of the last interval only ("now"), where the final table gives the whole run's.
     */
    static String line(
        String what,
        double fractionDone,
        boolean warmingUp,
        double iops,
        double p99Micros,
        long errors) {
      int filled = (int) Math.round(Math.max(0, Math.min(1, fractionDone)) * BAR_WIDTH);
      return String.format(
          Locale.ROOT,
          "%s [%s%s] %3d%% now %s IOPS, p99 %s%s%s",
          what,
          "#".repeat(filled),
          ".".repeat(BAR_WIDTH - filled),
          (int) Math.floor(Math.max(0, Math.min(1, fractionDone)) * 100),
          Report.count(iops),
          Plots.micros(Math.round(p99Micros)),
          warmingUp ? " (warm-up)" : "",
          errors > 0 ? ", " + errors + " errors" : "");
    }
  }

  // ------------------------------------------------------------------------------------------
  // Subcommands

  @Command(
      name = "echo-server",
      sortOptions = false,
      description = {
        "Serve a 4 KiB gRPC echo the way a node serves writes and cache hits (Netty, answered on"
            + " the transport thread, mutual TLS with a node identity), as the floor for"
            + " 'peerflash bench --workload echo' and 'bench --floor'. Runs until SIGTERM or"
            + " Ctrl-C."
      })
  static final class EchoServer implements Callable<Integer> {
    @ParentCommand BenchCommand parent;

    @Option(
        names = "--listen",
        paramLabel = "HOST:PORT",
        defaultValue = "127.0.0.1:7690",
        description = "Address to serve on (default: ${DEFAULT-VALUE}; port 0 picks one).")
    String listen;

    @Option(
        names = "--rpc-threads",
        paramLabel = "N",
        defaultValue = "0",
        description =
            "Request threads; 0 answers on the transport thread, as a node answers a write or a"
                + " cache hit that needs no wait (default: ${DEFAULT-VALUE}).")
    int rpcThreads;

    @Option(
        names = "--certs",
        paramLabel = "DIR",
        description =
            "A node identity directory (e.g. made by 'peerflash certs node --id echo'): mutual TLS"
                + " as a node's client port has it; clients need a certificate of the same CA.")
    Path certs;

    @Option(names = "--insecure", description = "Plaintext, for clients run with --insecure.")
    boolean insecure;

    @Spec CommandSpec spec;

    /** The identity to serve as, or null for plaintext; exactly one of the two options is given. */
    private TlsDirectory identity() {
      if (insecure == (certs != null)) {
        throw new ParameterException(
            spec.commandLine(),
            "give --certs DIR (a node identity directory: 'peerflash certs node --id echo') or"
                + " --insecure (plaintext)");
      }
      if (insecure) {
        return null;
      }
      TlsDirectory dir;
      try {
        dir = TlsDirectory.open(certs);
      } catch (IOException | GeneralSecurityException e) {
        throw new ParameterException(
            spec.commandLine(), "--certs " + certs + ": " + e.getMessage());
      }
      if (!dir.isNode()) {
        throw new ParameterException(
            spec.commandLine(),
            "--certs "
                + certs
                + " holds "
                + dir.identity().describe()
                + ", not a node identity (server-cert.pem, server-key.pem)");
      }
      return dir;
    }

    @Override
    public Integer call() throws IOException, InterruptedException {
      int colon = listen.lastIndexOf(':');
      int port;
      try {
        port = Integer.parseInt(listen.substring(colon + 1));
      } catch (NumberFormatException | IndexOutOfBoundsException e) {
        port = -1;
      }
      if (colon <= 0 || port < 0 || port > 65535) {
        throw new ParameterException(
            spec.commandLine(), "--listen must be HOST:PORT, got '" + listen + "'");
      }
      if (rpcThreads < 0) {
        throw new ParameterException(spec.commandLine(), "--rpc-threads must be 0 or more");
      }
      TlsDirectory tls = identity();
      PeerFlashCli cli = (PeerFlashCli) spec.root().userObject();
      Echo.Running server = Echo.start(listen.substring(0, colon), port, rpcThreads, tls);
      Thread hook = new Thread(server::close, "peerflash-echo-stop");
      Runtime.getRuntime().addShutdownHook(hook);
      cli.out()
          .println(
              "echo server listening on "
                  + listen.substring(0, colon)
                  + ":"
                  + server.port()
                  + (tls == null
                      ? " (plaintext)"
                      : " (mutual TLS as " + tls.identity().describe() + ")"));
      cli.out().flush();
      try {
        server.server().awaitTermination();
      } finally {
        // Also when the command's thread is interrupted (an embedding program stopping it).
        server.close();
        try {
          Runtime.getRuntime().removeShutdownHook(hook);
        } catch (IllegalStateException shuttingDown) {
          // The hook is running or has run.
        }
      }
      return PeerFlashCli.EXIT_OK;
    }
  }

  @Command(
      name = "report",
      sortOptions = false,
      description = {
        "Combine results files (from --json, and from the peer's load client) into a Markdown"
            + " report with every ratio and the targets, and PNG plots."
      })
  static final class ReportCommand implements Callable<Integer> {
    @Option(
        names = "--in",
        required = true,
        paramLabel = "DIR",
        description = "Directory of *.json results files.")
    Path in;

    @Option(
        names = "--out",
        paramLabel = "DIR",
        description = "Where report.md and the plots go (default: --in).")
    Path outDir;

    @Option(
        names = "--context",
        paramLabel = "TEXT",
        description = "A line under the title (machine, settings); repeatable.")
    List<String> context;

    @Spec CommandSpec spec;

    @Override
    public Integer call() throws IOException {
      PeerFlashCli cli = (PeerFlashCli) spec.root().userObject();
      if (!Files.isDirectory(in)) {
        throw new ParameterException(spec.commandLine(), "--in " + in + " is not a directory");
      }
      List<BenchResult> all = new ArrayList<>();
      List<Path> files = new ArrayList<>();
      try (DirectoryStream<Path> ds = Files.newDirectoryStream(in, "*.json")) {
        ds.forEach(files::add);
      }
      files.sort(null);
      for (Path f : files) {
        try {
          all.addAll(BenchResult.readFile(f));
        } catch (IOException e) {
          cli.err().println("skipping " + f + ": " + e.getMessage());
        }
      }
      if (all.isEmpty()) {
        cli.err().println("error: no results in " + in);
        return PeerFlashCli.EXIT_FAILURE;
      }
      Report report = new Report(all);
      Path md = report.write(outDir != null ? outDir : in, context == null ? List.of() : context);
      for (Report.Verdict v : report.verdicts()) {
        cli.out()
            .println(
                String.format(
                    Locale.ROOT,
                    "%-8s %s: %s (%s, limit %s)",
                    v.met() == null ? "not run" : v.met() ? "met" : "MISSED",
                    v.target(),
                    v.measured(),
                    v.ratio(),
                    v.limit()));
      }
      cli.out().println("report: " + md);
      return PeerFlashCli.EXIT_OK;
    }
  }
}
