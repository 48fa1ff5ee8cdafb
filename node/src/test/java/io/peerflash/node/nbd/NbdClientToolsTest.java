package io.peerflash.node.nbd;

import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.security.Identity;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Debian's NBD clients (libnbd's nbdinfo and nbdcopy, qemu-img, qemu-io, fio's nbd engine) against
 * a real node, over TCP with TLS (a client certificate of role io, PeerFlash's own identity
 * directory as libnbd's {@code tls-certificates} and qemu's {@code tls-creds-x509} directory) and
 * over the Unix socket.
 */
@org.junit.jupiter.api.Timeout(value = 10, unit = java.util.concurrent.TimeUnit.MINUTES)
class NbdClientToolsTest {
  enum Transport {
    TLS,
    UNIX
  }

  @TempDir Path dir;
  NbdTestNode node;
  Path client;

  @BeforeEach
  void start() throws Exception {
    node = new NbdTestNode(dir, "768MiB", Map.of());
    client = node.certs.client("nbd-io", Identity.Role.IO);
  }

  @AfterEach
  void stop() {
    node.close();
  }

  private String uri(Transport t, String volume) {
    return t == Transport.TLS ? node.tlsUri(volume, client) : node.unixUri(volume);
  }

  /** qemu's options for the volume as a raw image: before the image, then the image itself. */
  private List<String> qemuImage(Transport t, String volume) {
    if (t == Transport.UNIX) {
      return List.of(
          "--image-opts",
          "driver=raw,file.driver=nbd,file.path=" + node.socket + ",file.export=" + volume);
    }
    return List.of(
        "--object",
        "tls-creds-x509,id=tls0,endpoint=client,dir=" + client,
        "--image-opts",
        "driver=raw,file.driver=nbd,file.host=localhost,file.port="
            + node.tcpPort()
            + ",file.export="
            + volume
            + ",file.tls-creds=tls0");
  }

  @ParameterizedTest
  @EnumSource(Transport.class)
  void nbdinfoShowsSizeAndBlockSizes(Transport t) throws Exception {
    node.createVolume("disk", 64L << 20);
    String json = ClientTools.ok(30, "nbdinfo", "--json", uri(t, "disk"));
    assertThat(json)
        .contains("\"export-size\": " + (64L << 20))
        .contains("\"block_size_minimum\": 512")
        .contains("\"block_size_preferred\": 4096")
        .contains("\"block_size_maximum\": " + (32 << 20))
        .contains("\"can_flush\": true")
        .contains("\"can_fua\": true")
        .contains("\"can_multi_conn\": true")
        .contains("\"base:allocation\"");
  }

  @ParameterizedTest
  @EnumSource(Transport.class)
  void qemuImgConvertsAnImageInAndNbdcopyCopiesItOutByteEqual(Transport t) throws Exception {
    long size = 256L << 20;
    node.createVolume("vm", size);
    Path source = dir.resolve("source.img");
    Random random = new Random(7);
    byte[] chunk = new byte[1 << 20];
    try (OutputStream out = Files.newOutputStream(source)) {
      for (long at = 0; at < size; at += chunk.length) {
        random.nextBytes(chunk);
        if ((at >> 20) % 16 == 3) {
          java.util.Arrays.fill(chunk, (byte) 0); // zero runs too, which the copy may skip
        }
        out.write(chunk);
      }
    }
    List<String> convert = new ArrayList<>(List.of("qemu-img", "convert", "-n", "-f", "raw"));
    if (t == Transport.TLS) {
      convert.addAll(List.of("--object", qemuImage(t, "vm").get(1)));
      convert.addAll(List.of("--target-image-opts", source.toString(), qemuImage(t, "vm").get(3)));
    } else {
      convert.addAll(List.of("--target-image-opts", source.toString(), qemuImage(t, "vm").get(1)));
    }
    ClientTools.ok(300, convert.toArray(String[]::new));

    List<String> compare = new ArrayList<>(List.of("qemu-img", "compare"));
    List<String> image = qemuImage(t, "vm");
    compare.addAll(image.subList(0, image.size() - 1));
    compare.add("driver=raw,file.driver=file,file.filename=" + source);
    compare.add(image.get(image.size() - 1));
    String same = ClientTools.ok(300, compare.toArray(String[]::new));
    assertThat(same).contains("Images are identical");

    Path copy = dir.resolve("copy.img");
    ClientTools.ok(300, "nbdcopy", uri(t, "vm"), copy.toString());
    assertThat(Files.size(copy)).isEqualTo(size);
    assertThat(Files.mismatch(source, copy)).as("first differing byte").isEqualTo(-1L);
  }

  @ParameterizedTest
  @EnumSource(Transport.class)
  void qemuIoWritesWithFuaFlushesAndReadsBack(Transport t) throws Exception {
    node.createVolume("io", 16L << 20);
    List<String> cmd = new ArrayList<>(List.of("qemu-io"));
    cmd.addAll(qemuImage(t, "io"));
    cmd.addAll(
        List.of(
            "-c", "write -f -P 0xab 0 64k",
            "-c", "write -P 0xcd 1m 1536k",
            "-c", "flush",
            "-c", "write -z 4m 8m",
            "-c", "read -P 0xab 0 64k",
            "-c", "read -P 0xcd 1m 1536k",
            "-c", "read -P 0 4m 8m"));
    String out = ClientTools.ok(60, cmd.toArray(String[]::new));
    assertThat(out)
        .doesNotContain("failed")
        .doesNotContain("error")
        .contains("read 8388608/8388608");
  }

  @ParameterizedTest
  @EnumSource(Transport.class)
  void fioRandomWritesVerifyAtQueueDepthOneAndThirtyTwoWithSeveralJobs(Transport t)
      throws Exception {
    node.createVolume("fio", 128L << 20);
    // fio's nbd engine does not let a URI name local files (tls-certificates=DIR): libnbd then
    // reads the client's certificates from $HOME/.pki/libnbd, or as root from /etc/pki/libnbd.
    // Rather than touching /etc, a root test runs fio as nobody with its own home.
    Path home = dir.resolve("home");
    Path pki = home.resolve(".pki/libnbd");
    Files.createDirectories(pki);
    for (String f : new String[] {"ca-cert.pem", "client-cert.pem", "client-key.pem"}) {
      Files.copy(client.resolve(f), pki.resolve(f));
    }
    List<String> asUser = new ArrayList<>();
    if ("root".equals(System.getProperty("user.name"))) {
      java.nio.file.attribute.UserPrincipalLookupService users =
          dir.getFileSystem().getUserPrincipalLookupService();
      java.nio.file.attribute.UserPrincipal nobody = users.lookupPrincipalByName("nobody");
      dir.toFile().setExecutable(true, false);
      for (Path p : new Path[] {home, home.resolve(".pki"), pki}) {
        Files.setOwner(p, nobody);
      }
      for (String f : new String[] {"ca-cert.pem", "client-cert.pem", "client-key.pem"}) {
        Files.setOwner(pki.resolve(f), nobody);
      }
      asUser.addAll(
          List.of("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"));
    }
    String uri = t == Transport.TLS ? "nbds://localhost:" + node.tcpPort() + "/fio" : uri(t, "fio");
    for (int depth : new int[] {1, 32}) {
      List<String> cmd = new ArrayList<>(t == Transport.TLS ? asUser : List.of());
      cmd.addAll(
          List.of(
              "fio",
              "--name=verify-qd" + depth,
              "--ioengine=nbd",
              "--uri=" + uri,
              "--rw=randwrite",
              "--bs=4k",
              "--iodepth=" + depth,
              "--numjobs=4",
              "--size=8m",
              "--offset_increment=32m",
              "--verify=crc32c",
              "--verify_fatal=1",
              "--verify_state_save=0",
              "--group_reporting"));
      String out = ClientTools.ok(Map.of("HOME", home.toString()), 300, cmd.toArray(String[]::new));
      assertThat(out).contains("err= 0").doesNotContain("verify: bad").doesNotContain("fio: pid=");
    }
  }

  @org.junit.jupiter.api.Test
  void aCertificateSeesOnlyItsVolumesAndAReadOnlyGrantGetsEperm() throws Exception {
    node.createVolume("vm-1-root", 4L << 20);
    node.createVolume("vm-1-data", 4L << 20);
    node.createVolume("other", 4L << 20);
    Path scoped = node.certs.client("vm-1", Identity.Role.IO, List.of(), List.of("vm-1-"), false);
    String list =
        ClientTools.ok(
            30,
            "nbdinfo",
            "--list",
            "--json",
            "nbds://localhost:" + node.tcpPort() + "/?tls-certificates=" + scoped);
    assertThat(list).contains("\"vm-1-root\"").contains("\"vm-1-data\"").doesNotContain("other");
    ClientTools.Result refused =
        ClientTools.run(
            30,
            "nbdinfo",
            "nbds://localhost:" + node.tcpPort() + "/other?tls-certificates=" + scoped);
    assertThat(refused.exit()).as(refused.out()).isNotZero();
    assertThat(refused.out()).contains("error to opt_go request");

    Path readOnly =
        node.certs.client("vm-1-reader", Identity.Role.IO, List.of("vm-1-root"), List.of(), true);
    String script =
        String.join(
            "\n",
            "h.set_strict_mode(0)",
            "h.set_uri_allow_local_file(True)",
            "h.connect_uri('nbds://localhost:"
                + node.tcpPort()
                + "/vm-1-root?tls-certificates="
                + readOnly
                + "')",
            "print('read-only', h.is_read_only())",
            "try:",
            "    h.pwrite(b'x' * 512, 0)",
            "    print('written')",
            "except nbd.Error as e:",
            "    print('errno', e.errno)",
            "print('read', len(h.pread(4096, 0)))");
    // nbdsh runs the first python3 on PATH: Debian's, which has the nbd module.
    String out = ClientTools.ok(Map.of("PATH", "/usr/bin:/bin"), 30, "nbdsh", "-c", script);
    assertThat(out).contains("read-only True").contains("errno EPERM").contains("read 4096");
  }

  @org.junit.jupiter.api.Test
  void volumeStatNamesTheNbdUrisClientsUse() throws Exception {
    node.createVolume("disk", 8L << 20);
    java.util.List<String> uris;
    try (io.peerflash.client.PeerFlashClient c =
        io.peerflash.client.PeerFlashClient.builder()
            .target("127.0.0.1:" + node.node.port())
            .security(node.certs.adminSecurity())
            .build()) {
      uris = c.getVolume("disk").getNbdUrisList();
    }
    assertThat(uris)
        .containsExactly(
            "nbds://127.0.0.1:" + node.tcpPort() + "/disk",
            "nbd+unix:///disk?socket=" + node.socket.toAbsolutePath());
    for (String uri : uris) {
      String withCerts = uri.startsWith("nbds:") ? uri + "?tls-certificates=" + client : uri;
      assertThat(ClientTools.ok(30, "nbdinfo", "--size", withCerts).trim())
          .isEqualTo(Long.toString(8L << 20));
    }
  }
}
