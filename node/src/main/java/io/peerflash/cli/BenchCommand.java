package io.peerflash.cli;

import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.netty.channel.ChannelOption;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.grpc.stub.StreamObserver;
import io.peerflash.bench.BenchArgs;
import io.peerflash.bench.BenchResult;
import io.peerflash.bench.Echo;
import io.peerflash.bench.LoadDriver;
import io.peerflash.bench.Plots;
import io.peerflash.bench.Workload;
import io.peerflash.cli.Converters.ModeConverter;
import io.peerflash.cli.Converters.SizeConverter;
import io.peerflash.client.ClientSecurity;
import io.peerflash.client.PeerFlashClient;
import io.peerflash.proto.v1.CacheMode;
import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.function.Consumer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/**
 * {@code peerflash bench}: latency and IOPS of a running cluster (or of a gRPC echo server, the
 * floor), with HdrHistogram percentiles, as a table, JSON and a PNG plot.
 */
@Command(
    name = "bench",
    sortOptions = false,
    subcommands = {BenchEchoServerCommand.class, BenchReportCommand.class},
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
  String transport = "";

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
      if (replicas < 0 || replicas > io.peerflash.replication.data.Replicas.MAX_REPLICAS) {
        throw new IllegalArgumentException(
            "--replicas must be 0 to "
                + io.peerflash.replication.data.Replicas.MAX_REPLICAS
                + ", got "
                + replicas);
      }
      if (sizeBytes < Workload.SEQ_WRITE.blockBytes()
          || sizeBytes % io.peerflash.util.Blocks.BLOCK_BYTES != 0) {
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
      new EchoBench(this).run(cli, plan, results);
    } else {
      new VolumeBench(this).run(cli, plan, results);
    }
    BenchTable.print(out, results);
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
  // Measuring

  LoadDriver.Settings settings(
      Plan plan, Workload w, int qd, LoadDriver.NodeWatcher watcher, long phaseSplit) {
    LoadDriver.Settings s =
        LoadDriver.Settings.of(plan.warmup(), plan.duration(), w.blockBytes())
            .withPhaseSplit(phaseSplit)
            .withWatcher(watcher);
    if (!noProgress) {
      s = s.withProgress(new BenchProgress(client.cli(), w.cliName() + " qd" + qd));
    }
    return s;
  }

  /** The id of this invocation's run of {@code w}: --id, or the workload's name. */
  String runId(Workload w) {
    return id != null ? id : w.cliName();
  }

  BenchResult result(
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
}
