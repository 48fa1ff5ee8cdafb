package io.peerflash.node.cluster;

import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.client.PeerFlashClient;
import io.peerflash.proto.v1.CacheMode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The Python client of docs/security.md ("Clients in other languages") runs as written against a
 * node with mutual TLS: stubs generated from proto/ by protoc's Python and gRPC plugins (Debian's
 * protobuf-compiler and protobuf-compiler-grpc, the code grpcio-tools generates), then the
 * document's script, run by Debian's python3 (the one python3-grpcio is for) with its certificate
 * directory and port pointed at this test's node.
 */
class PythonGrpcClientDocTest {
  @TempDir Path dir;
  private InProcessCluster cluster;
  private final Path repository = Path.of("").toAbsolutePath().getParent();

  @BeforeEach
  void start() throws Exception {
    cluster = new InProcessCluster(dir.resolve("cluster"), 1, Map.of());
  }

  @AfterEach
  void stop() {
    if (cluster != null) {
      cluster.close();
    }
  }

  private static String run(Path cwd, Map<String, String> env, String... command)
      throws IOException, InterruptedException {
    ProcessBuilder pb =
        new ProcessBuilder(command).directory(cwd.toFile()).redirectErrorStream(true);
    pb.environment().putAll(env);
    Process p = pb.start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertThat(p.waitFor(60, TimeUnit.SECONDS))
        .as("finished: " + String.join(" ", command))
        .isTrue();
    assertThat(p.exitValue()).as(String.join(" ", command) + "\n" + out).isZero();
    return out;
  }

  @Test
  void theDocumentedPythonClientListsVolumesOverMutualTls() throws Exception {
    try (PeerFlashClient admin = cluster.client("n1")) {
      admin.createVolume("from-python", 1 << 20, CacheMode.WRITE_BACK, 0);
    }
    String doc = Files.readString(repository.resolve("docs/security.md"));
    int section = doc.indexOf("## Clients in other languages");
    assertThat(section).as("the section in docs/security.md").isPositive();
    Matcher block = Pattern.compile("```python\\n(.*?)```", Pattern.DOTALL).matcher(doc);
    assertThat(block.find(section)).as("a python block in the section").isTrue();
    String script = block.group(1);
    // The document's example cluster (local-cluster in /tmp/peerflash, n1 on 7601) is this test's.
    assertThat(script).contains("\"/tmp/peerflash/certs/admin\"").contains("\"127.0.0.1:7601\"");
    script =
        script
            .replace("\"/tmp/peerflash/certs/admin\"", "\"" + cluster.certs.admin() + "\"")
            .replace("\"127.0.0.1:7601\"", "\"" + cluster.clientAddress.get("n1") + "\"");

    Path stubs = Files.createDirectories(dir.resolve("stubs"));
    Path protoRoot = repository.resolve("proto/src/main/proto");
    List<String> protoc = new ArrayList<>();
    protoc.add("protoc");
    protoc.add("-I" + protoRoot);
    protoc.add("--python_out=" + stubs);
    protoc.add("--grpc_python_out=" + stubs);
    protoc.add("--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin");
    try (var files = Files.list(protoRoot.resolve("peerflash/v1"))) {
      files.filter(f -> f.toString().endsWith(".proto")).forEach(f -> protoc.add(f.toString()));
    }
    run(dir, Map.of(), protoc.toArray(String[]::new));
    Path py = dir.resolve("client.py");
    Files.writeString(py, script);

    String out =
        run(dir, Map.of("PYTHONPATH", stubs.toString()), "/usr/bin/python3", py.toString());
    assertThat(out).contains("name: \"from-python\"");
  }
}
