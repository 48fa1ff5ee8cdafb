package io.peerflash.cli;

import io.peerflash.security.CertificateIssuer;
import io.peerflash.security.CertificateIssuer.IssuedCertificate;
import io.peerflash.security.CertificateIssuer.Validity;
import io.peerflash.security.Identity;
import io.peerflash.security.TlsDirectory;
import java.io.IOException;
import java.io.PrintStream;
import java.math.BigInteger;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/**
 * {@code peerflash certs}: the cluster's certificate authority and the identity directories of its
 * nodes and clients. DIR holds {@code ca/} (the CA's certificate and key, 0600: keep it there, off
 * the nodes) and one directory per identity, laid out as qemu's {@code tls-creds-x509} and libnbd's
 * {@code tls-certificates} expect.
 */
@Command(
    name = "certs",
    description =
        "Create the cluster's certificate authority (DIR/ca) and the identity directories of its"
            + " nodes and clients (DIR/<name>): ca-cert.pem plus server-cert.pem, server-key.pem,"
            + " client-cert.pem, client-key.pem for a node; ca-cert.pem, client-cert.pem,"
            + " client-key.pem for a client. Nodes and clients reload them when they change.")
final class CertsCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Override
  public Integer call() {
    throw new ParameterException(spec.commandLine(), "missing subcommand");
  }

  /** Options every subcommand takes. */
  static final class Common {
    @Option(
        names = "--dir",
        required = true,
        paramLabel = "DIR",
        description = "Directory of the CA (DIR/ca) and the identity directories (DIR/<name>).")
    Path dir;

    @Option(
        names = "--days",
        paramLabel = "N",
        description =
            "Validity in days (default: 365 for nodes and clients, 3650 for the CA). A certificate"
                + " within 30 days of its end is shown as a warning in status.")
    Integer days;

    Path caDir() {
      return dir.resolve("ca");
    }

    Validity validity(int defaultDays) {
      return Validity.days(days == null ? defaultDays : days);
    }
  }

  /** Creates the CA, or leaves an existing one alone (it would invalidate every certificate). */
  static CertificateIssuer ensureCa(Path caDir, String clusterName, Validity validity)
      throws IOException, GeneralSecurityException {
    if (Files.exists(caDir.resolve(TlsDirectory.CA_KEY_FILE))) {
      return CertificateIssuer.loadCa(caDir);
    }
    CertificateIssuer ca = CertificateIssuer.createCa(clusterName, validity);
    ca.writeCaDirectory(caDir);
    return ca;
  }

  /** Issues a node's identity directory DIR/<id> (a rotation when it exists). */
  static Path issueNode(CertificateIssuer ca, Path dir, String id, List<String> hosts, Validity v)
      throws IOException, GeneralSecurityException {
    return writeIdentity(ca, dir, id, ca.issueNode(id, hosts, v));
  }

  /** Issues a client's identity directory DIR/<name> (a rotation when it exists). */
  static Path issueClient(
      CertificateIssuer ca,
      Path dir,
      String name,
      Identity.Role role,
      List<String> volumes,
      List<String> prefixes,
      boolean dataReadOnly,
      Validity v)
      throws IOException, GeneralSecurityException {
    return writeIdentity(
        ca, dir, name, ca.issueClient(name, role, volumes, prefixes, dataReadOnly, v));
  }

  /** Writes {@code issued} as the identity directory DIR/<name>, replacing one that exists. */
  private static Path writeIdentity(
      CertificateIssuer ca, Path dir, String name, IssuedCertificate issued)
      throws IOException, GeneralSecurityException {
    Path to = dir.resolve(name);
    ca.writeIdentityDirectory(to, issued);
    return to;
  }

  /** What every subcommand has: the common options and the command line it reports to. */
  abstract static class Subcommand implements Callable<Integer> {
    @picocli.CommandLine.Mixin Common common;
    @Spec CommandSpec spec;

    PrintStream out() {
      return ((PeerFlashCli) spec.root().userObject()).out();
    }

    ParameterException usageError(String message) {
      return new ParameterException(spec.commandLine(), message);
    }

    /** How a subcommand issues an identity from the CA. */
    @FunctionalInterface
    interface Issuing {
      Path issue(CertificateIssuer ca, Validity validity)
          throws IOException, GeneralSecurityException;
    }

    /**
     * Issues an identity directory from the CA in DIR/ca and says so ("issued {@code what} in
     * DIR/...").
     */
    int issue(String what, Issuing issuing) throws IOException, GeneralSecurityException {
      CertificateIssuer ca = CertificateIssuer.loadCa(common.caDir());
      Path to;
      try {
        to = issuing.issue(ca, common.validity(CertificateIssuer.DEFAULT_VALIDITY_DAYS));
      } catch (IllegalArgumentException e) {
        // A name, host, scope or validity the CA refuses is a mistake on the command line.
        throw usageError(e.getMessage());
      }
      out().println("issued " + what + " in " + to);
      return PeerFlashCli.EXIT_OK;
    }
  }

  @Command(name = "init", description = "Create the certificate authority in DIR/ca.")
  static final class Init extends Subcommand {
    @Option(
        names = "--cluster-name",
        paramLabel = "NAME",
        description = "Put NAME into the CA's name, to tell clusters apart.")
    String clusterName;

    @Override
    public Integer call() throws Exception {
      if (Files.exists(common.caDir().resolve(TlsDirectory.CA_KEY_FILE))) {
        throw usageError(
            common.caDir() + " already holds a CA; a new one would invalidate every certificate");
      }
      CertificateIssuer ca;
      try {
        ca =
            ensureCa(
                common.caDir(),
                clusterName,
                common.validity(CertificateIssuer.DEFAULT_CA_VALIDITY_DAYS));
      } catch (IllegalArgumentException e) {
        // A cluster name or validity the CA refuses is a mistake on the command line, as for
        // node and client.
        throw usageError(e.getMessage());
      }
      out()
          .println(
              "created the CA in "
                  + common.caDir()
                  + " (valid until "
                  + ca.caCertificate().getNotAfter().toInstant()
                  + "); keep ca-key.pem there, off the nodes");
      return PeerFlashCli.EXIT_OK;
    }
  }

  @Command(
      name = "node",
      description =
          "Issue a node's identity directory DIR/<id> (over an existing one: a rotation, picked up"
              + " without a restart).")
  static final class Node extends Subcommand {
    @Option(names = "--id", required = true, paramLabel = "ID", description = "The node's id.")
    String id;

    @Option(
        names = "--host",
        paramLabel = "HOST",
        description =
            "A host name or IP address clients and peers reach the node by (repeatable;"
                + " localhost and 127.0.0.1 are always included).")
    List<String> hosts = new ArrayList<>();

    @Override
    public Integer call() throws Exception {
      return issue("node " + id, (ca, v) -> issueNode(ca, common.dir, id, hosts, v));
    }
  }

  @Command(
      name = "client",
      description =
          "Issue a client's identity directory DIR/<name> with a role: admin (everything),"
              + " io (data and status of its volumes), read-only (status only).")
  static final class Client extends Subcommand {
    @Option(names = "--name", required = true, paramLabel = "NAME", description = "Who it is.")
    String name;

    @Option(
        names = "--role",
        required = true,
        paramLabel = "ROLE",
        description = "admin, io or read-only.")
    String role;

    @Option(
        names = "--volume",
        paramLabel = "NAME",
        description = "io only: a volume it may use (repeatable; none and no prefix: all).")
    List<String> volumes = new ArrayList<>();

    @Option(
        names = "--volume-prefix",
        paramLabel = "PREFIX",
        description = "io only: volumes whose names start with PREFIX (repeatable).")
    List<String> prefixes = new ArrayList<>();

    @Option(
        names = "--data-read-only",
        description = "io only: it may read its volumes but not write or trim them.")
    boolean dataReadOnly;

    @Override
    public Integer call() throws Exception {
      Identity.Role r;
      try {
        r = Identity.Role.ofClientRole(role);
      } catch (IllegalArgumentException e) {
        throw usageError("--role: " + e.getMessage());
      }
      return issue(
          "client " + name + " (" + role + ")",
          (ca, v) -> issueClient(ca, common.dir, name, r, volumes, prefixes, dataReadOnly, v));
    }
  }

  @Command(
      name = "revoke",
      description =
          "Add a certificate's serial to the deny list (revoked-serials.txt) of every node"
              + " directory under DIR; nodes refuse it from their next check (within a second).")
  static final class Revoke extends Subcommand {
    @Option(
        names = "--serial",
        required = true,
        paramLabel = "HEX",
        description = "The serial, as 'certs list' shows it.")
    String serial;

    @Override
    public Integer call() throws Exception {
      BigInteger s;
      try {
        s = new BigInteger(serial.replace(":", ""), 16);
      } catch (NumberFormatException e) {
        throw usageError("--serial is not hexadecimal: " + serial);
      }
      int nodes = 0;
      for (Path d : identityDirectories(common.dir)) {
        TlsDirectory t = TlsDirectory.open(d);
        if (!t.isNode()) {
          continue;
        }
        Set<BigInteger> revoked = new HashSet<>(t.revokedSerials());
        revoked.add(s);
        CertificateIssuer.writeRevokedSerials(d, revoked);
        nodes++;
      }
      out().println("revoked serial " + s.toString(16) + " in " + nodes + " node directories");
      return PeerFlashCli.EXIT_OK;
    }
  }

  @Command(name = "list", description = "The identities under DIR, with serials and expiry.")
  static final class ListCerts extends Subcommand {
    @picocli.CommandLine.Mixin OutputOption output;

    @Override
    public Integer call() throws Exception {
      Table t = new Table("NAME", "KIND", "ROLE", "SERIAL", "EXPIRES", "DIR");
      StringBuilder json = new StringBuilder("{\n  \"identities\": [");
      int n = 0;
      for (Path d : identityDirectories(common.dir)) {
        TlsDirectory dir = TlsDirectory.open(d);
        Identity id = dir.identity();
        X509Certificate cert = dir.certificate();
        json.append(n++ == 0 ? "\n" : ",\n")
            .append("    {\"name\": ")
            .append(Formats.jsonString(id.name()))
            .append(", \"kind\": ")
            .append(Formats.jsonString(id.kind().name().toLowerCase()))
            .append(", \"role\": ")
            .append(Formats.jsonString(id.role().uriName()))
            .append(", \"serial\": ")
            .append(Formats.jsonString(id.serialHex()))
            .append(", \"not_after\": ")
            .append(Formats.jsonString(cert.getNotAfter().toInstant().toString()))
            .append(", \"expiry_warning\": ")
            .append(Formats.jsonString(dir.expiryWarning().orElse("")))
            .append(", \"dir\": ")
            .append(Formats.jsonString(d.toString()))
            .append("}");
        t.row(
            id.name(),
            id.kind().name().toLowerCase(),
            id.role().uriName(),
            id.serialHex(),
            cert.getNotAfter().toInstant().toString()
                + dir.expiryWarning().map(w -> " (soon)").orElse(""),
            d.toString());
      }
      if (output.json()) {
        out().println(json.append(n == 0 ? "]\n}" : "\n  ]\n}"));
        return PeerFlashCli.EXIT_OK;
      }
      t.print(out());
      return PeerFlashCli.EXIT_OK;
    }
  }

  /** The identity directories under DIR (those with a client certificate). */
  static List<Path> identityDirectories(Path dir) throws IOException {
    List<Path> found = new ArrayList<>();
    if (!Files.isDirectory(dir)) {
      return found;
    }
    try (DirectoryStream<Path> s = Files.newDirectoryStream(dir)) {
      for (Path p : s) {
        if (Files.exists(p.resolve(TlsDirectory.CLIENT_CERT_FILE))) {
          found.add(p);
        }
      }
    }
    found.sort(null);
    return found;
  }
}
