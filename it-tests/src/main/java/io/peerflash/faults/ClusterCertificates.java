package io.peerflash.faults;

import io.peerflash.security.CertificateIssuer;
import io.peerflash.security.CertificateIssuer.Validity;
import io.peerflash.security.Identity;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;

/**
 * The certificates of one test cluster, made with {@link CertificateIssuer} in a temporary
 * directory of this host: the CA ({@code ca/}, its key stays here), one identity directory per node
 * ({@code <node-id>/}, the only one its container gets) and client identities ({@code admin/} and
 * whatever a scenario issues). {@link #close} deletes them all.
 */
public final class ClusterCertificates implements AutoCloseable {
  // Beyond the nodes' expiry warning (30 days), so the nodes' logs and status carry no warning.
  private static final int VALIDITY_DAYS = 90;

  private final Path dir;
  private final CertificateIssuer ca;

  private ClusterCertificates(Path dir, CertificateIssuer ca) {
    this.dir = dir;
    this.ca = ca;
  }

  /** A new CA named {@code clusterName} in a new temporary directory. */
  public static ClusterCertificates create(String clusterName) {
    try {
      Path dir = Files.createTempDirectory("peerflash-it-certs-");
      CertificateIssuer ca = CertificateIssuer.createCa(clusterName, Validity.days(VALIDITY_DAYS));
      ca.writeCaDirectory(dir.resolve("ca"));
      return new ClusterCertificates(dir, ca);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException("cannot create the test CA", e);
    }
  }

  /**
   * Issues a node's identity directory {@code <nodeId>/}: its certificate names {@code hosts} (host
   * names and IP addresses peers and clients dial it by) besides localhost and 127.0.0.1.
   */
  public Path issueNode(String nodeId, List<String> hosts) {
    try {
      Path d = dir.resolve(nodeId);
      ca.writeIdentityDirectory(d, ca.issueNode(nodeId, hosts, Validity.days(VALIDITY_DAYS)));
      return d;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException("cannot issue the certificate of node " + nodeId, e);
    }
  }

  /**
   * Issues a client's identity directory {@code <name>/} with a role; for {@code io}, optionally
   * limited to {@code volumes} and read-only for data.
   */
  public Path issueClient(
      String name, Identity.Role role, List<String> volumes, boolean dataReadOnly) {
    try {
      Path d = dir.resolve(name);
      ca.writeIdentityDirectory(
          d,
          ca.issueClient(
              name, role, volumes, List.of(), dataReadOnly, Validity.days(VALIDITY_DAYS)));
      return d;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException("cannot issue the certificate of client " + name, e);
    }
  }

  /** The identity directory of a node or client issued before. */
  public Path directory(String name) {
    Path d = dir.resolve(name);
    if (!Files.isDirectory(d)) {
      throw new IllegalArgumentException("no identity " + name + " in " + dir);
    }
    return d;
  }

  /** Deletes every file made here, the CA key included. */
  @Override
  public void close() {
    try (Stream<Path> files = Files.walk(dir)) {
      files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    } catch (IOException ignored) {
      // best effort: a temporary directory
    }
  }
}
