package io.peerflash.testing;

import io.peerflash.client.ClientSecurity;
import io.peerflash.security.CertificateIssuer;
import io.peerflash.security.CertificateIssuer.Validity;
import io.peerflash.security.Identity;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.security.GeneralSecurityException;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A cluster's certificates for tests that run real nodes over sockets: a CA and identity
 * directories laid out as {@code peerflash certs} and {@code local-cluster} make them ({@code
 * DIR/ca}, {@code DIR/<node-id>}, {@code DIR/admin}, ...). Directories are issued on first use and
 * then reused, and {@link #shared()} is one set per JVM, so a test run generates a handful of keys,
 * not a few per test method. Tests must not change the files of a shared set (rotation and
 * revocation tests make their own with {@link #in}).
 */
public final class TestCertificates {
  /** The admin client every test that drives a cluster uses. */
  public static final String ADMIN = "admin";

  private static TestCertificates shared;

  private final Path dir;
  private final CertificateIssuer ca;
  private final Map<String, Path> issued = new HashMap<>();
  private final Map<String, ClientSecurity> securities = new HashMap<>();

  private TestCertificates(Path dir, CertificateIssuer ca) {
    this.dir = dir;
    this.ca = ca;
  }

  /** This JVM's set, in a temporary directory removed when the JVM exits. */
  public static synchronized TestCertificates shared() {
    if (shared == null) {
      try {
        Path dir = Files.createTempDirectory("peerflash-test-certs");
        Runtime.getRuntime()
            .addShutdownHook(new Thread(() -> deleteTree(dir), "test-certs-cleanup"));
        shared = in(dir);
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
    return shared;
  }

  /** A new CA in {@code dir/ca} (for a test that changes its certificates). */
  public static TestCertificates in(Path dir) {
    try {
      CertificateIssuer ca =
          CertificateIssuer.createCa(
              null, Validity.days(CertificateIssuer.DEFAULT_CA_VALIDITY_DAYS));
      ca.writeCaDirectory(dir.resolve("ca"));
      return new TestCertificates(dir, ca);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException("cannot create a test CA in " + dir, e);
    }
  }

  public Path dir() {
    return dir;
  }

  public CertificateIssuer ca() {
    return ca;
  }

  /** The identity directory of node {@code id} (certificate for localhost and 127.0.0.1). */
  public synchronized Path node(String id) {
    return issued.computeIfAbsent(
        id, name -> write(name, () -> ca.issueNode(name, List.of(), validity())));
  }

  /** The identity directory of the admin client. */
  public Path admin() {
    return client(ADMIN, Identity.Role.ADMIN);
  }

  /** The identity directory of a client {@code name} with {@code role} and no volume scope. */
  public Path client(String name, Identity.Role role) {
    return client(name, role, List.of(), List.of(), false);
  }

  /**
   * The identity directory of a client; the first call for {@code name} fixes what it holds, later
   * ones must ask for the same.
   */
  public synchronized Path client(
      String name,
      Identity.Role role,
      List<String> volumes,
      List<String> prefixes,
      boolean dataReadOnly) {
    Path existing = issued.get(name);
    if (existing != null) {
      return existing;
    }
    Path d =
        write(name, () -> ca.issueClient(name, role, volumes, prefixes, dataReadOnly, validity()));
    issued.put(name, d);
    return d;
  }

  /** Mutual TLS as the admin client (one loaded directory per set, shared by the tests). */
  public ClientSecurity adminSecurity() {
    return security(admin());
  }

  /** Mutual TLS as the identity in {@code identityDir} (loaded once). */
  public synchronized ClientSecurity security(Path identityDir) {
    return securities.computeIfAbsent(
        identityDir.toString(),
        d -> {
          try {
            return ClientSecurity.certs(identityDir);
          } catch (IOException e) {
            throw new UncheckedIOException(e);
          }
        });
  }

  /** The node setting that makes node {@code id} use its identity directory. */
  public Map<String, String> nodeSettings(String id) {
    return Map.of("certs", node(id).toString());
  }

  private interface Issue {
    CertificateIssuer.IssuedCertificate issue() throws GeneralSecurityException;
  }

  private Path write(String name, Issue how) {
    Path d = dir.resolve(name);
    try {
      ca.writeIdentityDirectory(d, how.issue());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException("cannot issue " + name + " in " + dir, e);
    }
    return d;
  }

  private static Validity validity() {
    return Validity.days(CertificateIssuer.DEFAULT_VALIDITY_DAYS);
  }

  private static void deleteTree(Path root) {
    try {
      Files.walkFileTree(
          root,
          new SimpleFileVisitor<>() {
            @Override
            public FileVisitResult visitFile(Path file, BasicFileAttributes attrs)
                throws IOException {
              Files.deleteIfExists(file);
              return FileVisitResult.CONTINUE;
            }

            @Override
            public FileVisitResult postVisitDirectory(Path d, IOException e) throws IOException {
              Files.deleteIfExists(d);
              return FileVisitResult.CONTINUE;
            }
          });
    } catch (IOException e) {
      // A temporary directory: best effort at exit.
    }
  }
}
