package io.peerflash.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.Server;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.peerflash.bench.BenchResult;
import io.peerflash.bench.Echo;
import io.peerflash.client.FakeVolumeService;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class BenchCommandTest {
  private final FakeVolumeService fake = new FakeVolumeService();
  private Server server;
  private Echo.Running echo;
  private String serverName;
  private String echoName;
  private ByteArrayOutputStream out;
  private ByteArrayOutputStream err;

  @TempDir Path tmp;

  @BeforeEach
  void start() throws Exception {
    serverName = InProcessServerBuilder.generateName();
    server =
        InProcessServerBuilder.forName(serverName)
            .addService(fake)
            .addService(fake.nodeService)
            .build()
            .start();
    echoName = InProcessServerBuilder.generateName();
    echo = Echo.start(InProcessServerBuilder.forName(echoName), 4);
  }

  @AfterEach
  void stop() throws Exception {
    server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    echo.close();
  }

  /** Runs the CLI; --target echo:1 reaches the echo server, anything else the fake node. */
  private int run(String... args) {
    out = new ByteArrayOutputStream();
    err = new ByteArrayOutputStream();
    PeerFlashCli cli =
        new PeerFlashCli(
            target ->
                InProcessChannelBuilder.forName(target.startsWith("echo") ? echoName : serverName)
                    .directExecutor()
                    .build(),
            new PrintStream(out, true, StandardCharsets.UTF_8),
            new PrintStream(err, true, StandardCharsets.UTF_8));
    return cli.execute(args);
  }

  private String out() {
    return out.toString(StandardCharsets.UTF_8);
  }

  private String err() {
    return err.toString(StandardCharsets.UTF_8);
  }

  @Test
  void echoFloorAtTwoQueueDepthsWithJsonAndPlot() throws Exception {
    Path json = tmp.resolve("echo.json");
    Path png = tmp.resolve("echo.png");
    int code =
        run(
            "bench",
            "--workload",
            "echo",
            "--target",
            "echo:1",
            "--qd",
            "1,8",
            "--duration",
            "300ms",
            "--warmup",
            "0s",
            "--id",
            "echo",
            "--json",
            json.toString(),
            "--png",
            png.toString());
    assertThat(code).as(err()).isZero();
    assertThat(out()).contains("WORKLOAD", "P99.9 us", "echo", "results: " + json);
    List<BenchResult> results = BenchResult.readFile(json);
    assertThat(results).extracting(BenchResult::qd).containsExactly(1, 8);
    assertThat(results)
        .allSatisfy(
            r -> {
              assertThat(r.id()).isEqualTo("echo");
              assertThat(r.system()).isEqualTo("grpc-echo");
              assertThat(r.ops()).isPositive();
              assertThat(r.errors()).isZero();
            });
    assertThat(results.get(1).label()).contains("stream");
    assertThat(Files.size(png)).isPositive();
    // Progress went to stderr (not a terminal: whole lines).
    assertThat(err()).contains("echo qd1 [", "IOPS, p99");

    assertThat(
            run(
                "bench",
                "--workload",
                "echo",
                "--target",
                "echo:1",
                "--qd",
                "4",
                "--api",
                "unary",
                "--duration",
                "200ms",
                "--warmup",
                "0s",
                "--no-progress"))
        .as(err())
        .isZero();
    assertThat(err()).isEmpty();
  }

  @Test
  void aFloorIsMeasuredInterleavedWithTheQd1Run() throws Exception {
    Path json = tmp.resolve("floor.json");
    int code =
        run(
            "bench",
            "--workload",
            "read-hit",
            "--qd",
            "1,4",
            "--duration",
            "500ms",
            "--warmup",
            "0s",
            "--volume",
            "f1",
            "--size",
            "8MiB",
            "--working-set",
            "1MiB",
            "--id",
            "read-hit",
            "--floor",
            "echo:1",
            "--json",
            json.toString(),
            "--no-progress");
    assertThat(code).as(err()).isZero();
    List<BenchResult> results = BenchResult.readFile(json);
    // QD1 paired with its echo; QD4 alone.
    assertThat(results)
        .extracting(r -> r.id() + "/" + r.workload() + "/qd" + r.qd())
        .containsExactly(
            "echo-read-hit/echo/qd1", "read-hit/read-hit/qd1", "read-hit/read-hit/qd4");
    assertThat(results).allSatisfy(r -> assertThat(r.ops()).isPositive());
    assertThat(results.get(0).label()).contains("interleaved with read-hit");
    assertThat(results.get(0).system()).isEqualTo("grpc-echo");
    // Each of the pair had about half of the 500 ms.
    assertThat(results.get(0).seconds()).isLessThan(0.45);
    assertThat(results.get(1).seconds()).isLessThan(0.45);

    assertThat(run("bench", "--workload", "echo", "--target", "echo:1", "--floor", "echo:1"))
        .isEqualTo(2);
    assertThat(err()).contains("--floor is for node workloads");
    assertThat(
            run(
                "bench",
                "--workload",
                "write",
                "--volume",
                "f2",
                "--duration",
                "200ms",
                "--floor",
                "nowhere"))
        .isEqualTo(2);
  }

  @Test
  void volumeWorkloadsCreateTheVolumeAndReport() throws Exception {
    Path json = tmp.resolve("res/wb.json");
    int code =
        run(
            "bench",
            "--workload",
            "write,read-hit,read-miss,mix,seq-write",
            "--qd",
            "1,4",
            "--duration",
            "200ms",
            "--warmup",
            "0s",
            "--volume",
            "b1",
            "--size",
            "8MiB",
            "--working-set",
            "1MiB",
            "--replicas",
            "1",
            "--id",
            "wb-r1",
            "--json",
            json.toString(),
            "--no-progress");
    assertThat(code).as(err()).isZero();
    List<BenchResult> results = BenchResult.readFile(json);
    assertThat(results).hasSize(10);
    assertThat(results)
        .allSatisfy(
            r -> {
              assertThat(r.ops()).as(r.workload() + " qd" + r.qd()).isPositive();
              assertThat(r.errors()).isZero();
              assertThat(r.mode()).isEqualTo("write-back");
              assertThat(r.replicas()).isEqualTo(1);
            });
    assertThat(results.get(9).blockBytes()).isEqualTo(1 << 20);
    // QD4 writes went over the write stream; reads as unary calls.
    assertThat(fake.streamedWrites.get()).isPositive();
    assertThat(fake.reads.get()).isPositive();
    assertThat(fake.contents("b1")).isNotEqualTo(new byte[8 << 20]);

    // The volume exists now: a second run reuses it (and changes its policy), then deletes it.
    assertThat(
            run(
                "bench",
                "--workload",
                "write",
                "--qd",
                "2",
                "--driver",
                "threads",
                "--api",
                "unary",
                "--duration",
                "200ms",
                "--warmup",
                "0s",
                "--volume",
                "b1",
                "--size",
                "8MiB",
                "--replicas",
                "0",
                "--sustained",
                "--delete-volume",
                "--no-progress"))
        .as(err())
        .isZero();
    assertThat(out()).contains("burst", "destage-bound");
    assertThat(run("volume", "list")).isZero();
    assertThat(out()).doesNotContain("b1");

    // The report of what was measured.
    assertThat(run("bench", "report", "--in", tmp.resolve("res").toString())).isZero();
    assertThat(out()).contains("not run", "report: ");
    assertThat(tmp.resolve("res/report.md")).exists();
    assertThat(tmp.resolve("res/latency.png")).exists();
  }

  @Test
  void badArgumentsAreUsageErrors() {
    assertThat(run("bench", "--workload", "scan")).isEqualTo(2);
    assertThat(err()).contains("unknown workload 'scan'");
    assertThat(run("bench", "--qd", "0")).isEqualTo(2);
    assertThat(run("bench", "--duration", "0s")).isEqualTo(2);
    assertThat(run("bench", "--workload", "echo,write")).isEqualTo(2);
    assertThat(err()).contains("give it alone");
    assertThat(run("bench", "--replicas", "3")).isEqualTo(2);
    assertThat(run("bench", "--api", "grpc")).isEqualTo(2);
    assertThat(run("bench", "--size", "4KiB")).isEqualTo(2);
    assertThat(run("bench", "echo-server", "--listen", "nowhere")).isEqualTo(2);
    assertThat(run("bench", "report", "--in", tmp.resolve("none").toString())).isEqualTo(2);
    assertThat(run("bench", "report", "--in", tmp.toString())).isEqualTo(1);
    assertThat(err()).contains("no results");
  }

  @Test
  void progressLine() {
    assertThat(BenchProgress.line("write qd32", 0.5, false, 12_345, 850, 0))
        .isEqualTo("write qd32 [##########..........]  50% now 12.3k IOPS, p99 850 us");
    assertThat(BenchProgress.line("read qd1", 0.05, true, 900, 1500, 3))
        .isEqualTo(
            "read qd1 [#...................]   5% now 900 IOPS, p99 1.5 ms (warm-up), 3 errors");
  }
}
