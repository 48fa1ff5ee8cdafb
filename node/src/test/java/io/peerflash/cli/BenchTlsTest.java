package io.peerflash.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.bench.BenchResult;
import io.peerflash.bench.Echo;
import io.peerflash.security.TlsDirectory;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The benchmark's floor over real sockets: an echo server with a node identity answers only a
 * client of the same CA, and each result says which transport it measured.
 */
class BenchTlsTest {
  @TempDir Path tmp;
  private ByteArrayOutputStream out;
  private ByteArrayOutputStream err;

  private int run(String... args) {
    out = new ByteArrayOutputStream();
    err = new ByteArrayOutputStream();
    // No channel factory: the command's own --certs / --insecure decide, as for a user.
    return new PeerFlashCli(
            null,
            new PrintStream(out, true, StandardCharsets.UTF_8),
            new PrintStream(err, true, StandardCharsets.UTF_8))
        .execute(args);
  }

  @BeforeEach
  void certificates() {
    Path certs = tmp.resolve("certs");
    assertThat(run("certs", "init", "--dir", certs.toString())).isZero();
    assertThat(run("certs", "node", "--dir", certs.toString(), "--id", "echo")).isZero();
    assertThat(
            run("certs", "client", "--dir", certs.toString(), "--name", "admin", "--role", "admin"))
        .isZero();
    Path other = tmp.resolve("other");
    assertThat(run("certs", "init", "--dir", other.toString())).isZero();
    assertThat(
            run("certs", "client", "--dir", other.toString(), "--name", "admin", "--role", "admin"))
        .isZero();
  }

  private String[] echoBench(int port, String json, String... security) {
    List<String> args =
        new java.util.ArrayList<>(
            List.of(
                "bench",
                "--workload",
                "echo",
                "--target",
                "127.0.0.1:" + port,
                "--qd",
                "1",
                "--duration",
                "300ms",
                "--warmup",
                "0s",
                "--no-progress",
                "--json",
                tmp.resolve(json).toString()));
    args.addAll(List.of(security));
    return args.toArray(String[]::new);
  }

  @Test
  void echoOverMutualTlsAnswersOnlyClientsOfItsCa() throws Exception {
    TlsDirectory identity = TlsDirectory.open(tmp.resolve("certs/echo"));
    try (Echo.Running echo = Echo.start("127.0.0.1", 0, 2, identity)) {
      String admin = tmp.resolve("certs/admin").toString();
      assertThat(run(echoBench(echo.port(), "tls.json", "--certs", admin))).isZero();
      List<BenchResult> tls = BenchResult.readFile(tmp.resolve("tls.json"));
      assertThat(tls)
          .singleElement()
          .satisfies(
              r -> {
                assertThat(r.note()).isEqualTo(BenchResult.TRANSPORT_TLS);
                assertThat(r.label()).contains("TLS");
                assertThat(r.ops()).isPositive();
              });

      // Plaintext, and a certificate of another CA, get no echo.
      assertThat(run(echoBench(echo.port(), "plain.json", "--insecure"))).isNotZero();
      String stranger = tmp.resolve("other/admin").toString();
      assertThat(run(echoBench(echo.port(), "other.json", "--certs", stranger))).isNotZero();
    }
  }

  @Test
  void plaintextEchoIsRecordedAsPlaintext() throws Exception {
    try (Echo.Running echo = Echo.start("127.0.0.1", 0, 2, null)) {
      assertThat(run(echoBench(echo.port(), "plain.json", "--insecure"))).isZero();
      assertThat(BenchResult.readFile(tmp.resolve("plain.json")))
          .singleElement()
          .satisfies(r -> assertThat(r.note()).isEqualTo(BenchResult.TRANSPORT_PLAINTEXT));
    }
  }

  @Test
  void echoServerNeedsANodeIdentityOrInsecure() {
    assertThat(run("bench", "echo-server", "--listen", "127.0.0.1:0")).isEqualTo(2);
    assertThat(err.toString(StandardCharsets.UTF_8)).contains("--certs DIR", "--insecure");
    String admin = tmp.resolve("certs/admin").toString();
    assertThat(run("bench", "echo-server", "--listen", "127.0.0.1:0", "--certs", admin))
        .isEqualTo(2);
    assertThat(err.toString(StandardCharsets.UTF_8)).contains("not a node identity");
    assertThat(
            run("bench", "echo-server", "--listen", "127.0.0.1:0", "--certs", admin, "--insecure"))
        .isEqualTo(2);
  }
}
