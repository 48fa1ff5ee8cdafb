package io.peerflash.security;

import io.peerflash.util.Texts;
import java.math.BigInteger;
import java.security.cert.CertificateException;
import java.security.cert.CertificateParsingException;
import java.security.cert.X509Certificate;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.regex.Pattern;
import org.bouncycastle.asn1.ASN1Encodable;
import org.bouncycastle.asn1.ASN1ObjectIdentifier;
import org.bouncycastle.asn1.ASN1String;
import org.bouncycastle.asn1.x500.RDN;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x500.style.BCStyle;

/**
 * Who is at the other end of a TLS session, as its verified certificate says: a node (by node id)
 * or a client (by name, with a role and, for role {@code io}, an optional volume scope).
 *
 * <p>Identity comes only from the peer certificate of a verified TLS session, never from a field of
 * a request. {@link #of} parses the PeerFlash certificate conventions and refuses anything else:
 *
 * <ul>
 *   <li>subject {@code CN=<name>, OU=node|client, O=PeerFlash} (exactly one of each);
 *   <li>a node: SAN URI {@code urn:peerflash:node:<node-id>} equal to the CN, EKU serverAuth and
 *       clientAuth;
 *   <li>a client: exactly one SAN URI {@code urn:peerflash:role:<admin|io|read-only>}, EKU
 *       clientAuth; role {@code io} may add {@code urn:peerflash:volume:<name>}, {@code
 *       urn:peerflash:volume-prefix:<prefix>} (none: every volume) and {@code
 *       urn:peerflash:data:read-only}.
 * </ul>
 *
 * @param kind a node or a client
 * @param name the node id (kind NODE) or the client name (kind CLIENT)
 * @param role {@link Role#NODE} for every node; a client's role otherwise
 * @param volumeNames volumes a role-{@code io} client is limited to (with {@code volumePrefixes});
 *     both empty: every volume
 * @param volumePrefixes name prefixes of volumes a role-{@code io} client is limited to
 * @param dataReadOnly a role-{@code io} client that may read data but not write or trim it
 * @param serial the certificate's serial number (what {@code revoked-serials.txt} lists)
 * @param notAfter the end of the certificate's validity
 */
public record Identity(
    Kind kind,
    String name,
    Role role,
    List<String> volumeNames,
    List<String> volumePrefixes,
    boolean dataReadOnly,
    BigInteger serial,
    Instant notAfter) {

  /** What a certificate belongs to (its subject's OU). */
  public enum Kind {
    NODE,
    CLIENT
  }

  /** What an identity may do; the authorization table per method lives with the services. */
  public enum Role {
    NODE("node"),
    ADMIN("admin"),
    IO("io"),
    READ_ONLY("read-only");

    private final String uriName;

    Role(String uriName) {
      this.uriName = uriName;
    }

    /** The name in {@code urn:peerflash:role:<name>} and on the command line. */
    public String uriName() {
      return uriName;
    }

    /** The client role named {@code name} ({@code admin}, {@code io} or {@code read-only}). */
    public static Role ofClientRole(String name) {
      for (Role r : values()) {
        if (r != NODE && r.uriName.equals(name)) {
          return r;
        }
      }
      throw new IllegalArgumentException(
          "unknown client role " + Texts.quote(name) + " (known: admin, io, read-only)");
    }
  }

  static final String ORGANIZATION = "PeerFlash";
  static final String OU_NODE = "node";
  static final String OU_CLIENT = "client";
  static final String URN = "urn:peerflash:";
  static final String NODE_URI = URN + "node:";
  static final String ROLE_URI = URN + "role:";
  static final String VOLUME_URI = URN + "volume:";
  static final String VOLUME_PREFIX_URI = URN + "volume-prefix:";
  static final String DATA_READ_ONLY_URI = URN + "data:read-only";

  static final String EKU_SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
  static final String EKU_CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";

  /**
   * Node ids, client names, volume names and prefixes: the volume name rule of the node, which also
   * keeps them valid inside a URI without escaping.
   */
  private static final Pattern NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,127}");

  private static final int SAN_DNS = 2;
  private static final int SAN_URI = 6;
  private static final int SAN_IP = 7;

  public Identity {
    Objects.requireNonNull(kind, "kind");
    Objects.requireNonNull(name, "name");
    Objects.requireNonNull(role, "role");
    Objects.requireNonNull(serial, "serial");
    Objects.requireNonNull(notAfter, "notAfter");
    volumeNames = List.copyOf(volumeNames);
    volumePrefixes = List.copyOf(volumePrefixes);
  }

  /**
   * The identity a PeerFlash certificate states.
   *
   * @throws CertificateException naming the subject and the rule it breaks, for a certificate that
   *     does not follow the conventions (a CA certificate, no or an unknown OU, no node URI, no or
   *     two roles, a volume scope outside role {@code io}, an unknown {@code urn:peerflash:} URI, a
   *     missing extended key usage, ...)
   */
  public static Identity of(X509Certificate certificate) throws CertificateException {
    Objects.requireNonNull(certificate, "certificate");
    String subject = certificate.getSubjectX500Principal().getName();
    try {
      return parse(certificate);
    } catch (CertificateException e) {
      throw new CertificateException(
          "certificate " + Texts.quote(subject) + " is not a PeerFlash identity: " + e.getMessage(),
          e);
    }
  }

  private static Identity parse(X509Certificate c) throws CertificateException {
    if (c.getBasicConstraints() >= 0) {
      throw new CertificateException("it is a CA certificate");
    }
    X500Name subject = X500Name.getInstance(c.getSubjectX500Principal().getEncoded());
    String cn = single(subject, BCStyle.CN, "CN");
    String ou = single(subject, BCStyle.OU, "OU");
    String o = single(subject, BCStyle.O, "O");
    if (!ORGANIZATION.equals(o)) {
      throw new CertificateException("its O is " + Texts.quote(o) + ", not '" + ORGANIZATION + "'");
    }
    checkName(cn, "its CN");
    List<String> uris = sans(c, SAN_URI);
    List<String> nodeUris = new ArrayList<>();
    List<String> roleUris = new ArrayList<>();
    List<String> volumes = new ArrayList<>();
    List<String> prefixes = new ArrayList<>();
    boolean dataReadOnly = false;
    for (String uri : uris) {
      String lower = uri.toLowerCase(Locale.ROOT);
      if (!lower.startsWith(URN)) {
        continue; // URIs of other schemes carry nothing PeerFlash reads
      }
      if (uri.startsWith(NODE_URI)) {
        nodeUris.add(uri.substring(NODE_URI.length()));
      } else if (uri.startsWith(ROLE_URI)) {
        roleUris.add(uri.substring(ROLE_URI.length()));
      } else if (uri.startsWith(VOLUME_URI)) {
        volumes.add(
            checkName(uri.substring(VOLUME_URI.length()), "volume URI " + Texts.quote(uri)));
      } else if (uri.startsWith(VOLUME_PREFIX_URI)) {
        prefixes.add(
            checkName(
                uri.substring(VOLUME_PREFIX_URI.length()),
                "volume prefix URI " + Texts.quote(uri)));
      } else if (uri.equals(DATA_READ_ONLY_URI)) {
        dataReadOnly = true;
      } else {
        throw new CertificateException("it carries the unknown PeerFlash URI " + Texts.quote(uri));
      }
    }
    List<String> eku = extendedKeyUsage(c);
    boolean clientAuth = eku.contains(EKU_CLIENT_AUTH);
    BigInteger serial = c.getSerialNumber();
    Instant notAfter = c.getNotAfter().toInstant();
    switch (ou) {
      case OU_NODE -> {
        if (nodeUris.size() != 1) {
          throw new CertificateException(
              "a node certificate needs exactly one SAN URI '"
                  + NODE_URI
                  + "<node-id>', it has "
                  + nodeUris.size());
        }
        if (!nodeUris.get(0).equals(cn)) {
          throw new CertificateException(
              "its node URI names " + Texts.quote(nodeUris.get(0)) + " but its CN is '" + cn + "'");
        }
        if (!roleUris.isEmpty() || !volumes.isEmpty() || !prefixes.isEmpty() || dataReadOnly) {
          throw new CertificateException("a node certificate carries a client role or scope URI");
        }
        if (!clientAuth || !eku.contains(EKU_SERVER_AUTH)) {
          throw new CertificateException(
              "a node certificate needs extended key usage serverAuth and clientAuth");
        }
        return new Identity(
            Kind.NODE, cn, Role.NODE, List.of(), List.of(), false, serial, notAfter);
      }
      case OU_CLIENT -> {
        if (!nodeUris.isEmpty()) {
          throw new CertificateException("a client certificate carries a node URI");
        }
        if (roleUris.size() != 1) {
          throw new CertificateException(
              "a client certificate needs exactly one SAN URI '"
                  + ROLE_URI
                  + "<admin|io|read-only>', it has "
                  + roleUris.size());
        }
        Role role;
        try {
          role = Role.ofClientRole(roleUris.get(0));
        } catch (IllegalArgumentException e) {
          throw new CertificateException(e.getMessage());
        }
        if (role != Role.IO && (!volumes.isEmpty() || !prefixes.isEmpty() || dataReadOnly)) {
          throw new CertificateException(
              "volume scope and data read-only are for role io only, its role is "
                  + role.uriName());
        }
        if (!clientAuth) {
          throw new CertificateException(
              "a client certificate needs extended key usage clientAuth");
        }
        return new Identity(
            Kind.CLIENT, cn, role, volumes, prefixes, dataReadOnly, serial, notAfter);
      }
      default ->
          throw new CertificateException(
              "its OU is " + Texts.quote(ou) + ", not '" + OU_NODE + "' or '" + OU_CLIENT + "'");
    }
  }

  /** The serial as {@code revoked-serials.txt} and messages write it: lower-case hex. */
  public String serialHex() {
    return serial.toString(16);
  }

  /** {@code node 'n1'} or {@code client 'alice'}: how messages and audit lines name it. */
  public String describe() {
    return (kind == Kind.NODE ? "node '" : "client '") + name + "'";
  }

  /**
   * Whether this identity's volume scope covers {@code volume}: always, except for a role-{@code
   * io} client limited to named volumes or prefixes that do not include it.
   */
  public boolean volumeInScope(String volume) {
    if (role != Role.IO || (volumeNames.isEmpty() && volumePrefixes.isEmpty())) {
      return true;
    }
    if (volumeNames.contains(volume)) {
      return true;
    }
    for (String prefix : volumePrefixes) {
      if (volume.startsWith(prefix)) {
        return true;
      }
    }
    return false;
  }

  static String checkName(String value, String what) throws CertificateException {
    if (value == null || !NAME.matcher(value).matches()) {
      throw new CertificateException(
          what
              + " is not a valid name (1-128 of A-Z a-z 0-9 . _ -, starting with a letter or"
              + " digit): "
              + Texts.quote(value));
    }
    return value;
  }

  private static String single(X500Name subject, ASN1ObjectIdentifier type, String label)
      throws CertificateException {
    RDN[] rdns = subject.getRDNs(type);
    if (rdns.length != 1 || rdns[0].isMultiValued()) {
      throw new CertificateException(
          "its subject needs exactly one " + label + ", it has " + rdns.length);
    }
    ASN1Encodable value = rdns[0].getFirst().getValue();
    if (!(value instanceof ASN1String text)) {
      throw new CertificateException("its " + label + " is not a string");
    }
    return text.getString();
  }

  static List<String> sans(X509Certificate c, int type) throws CertificateParsingException {
    Collection<List<?>> all = c.getSubjectAlternativeNames();
    List<String> out = new ArrayList<>();
    if (all != null) {
      for (List<?> san : all) {
        if (san.size() >= 2 && san.get(0) instanceof Integer t && t == type) {
          out.add(String.valueOf(san.get(1)));
        }
      }
    }
    return out;
  }

  static List<String> dnsSans(X509Certificate c) throws CertificateParsingException {
    return sans(c, SAN_DNS);
  }

  static List<String> ipSans(X509Certificate c) throws CertificateParsingException {
    return sans(c, SAN_IP);
  }

  static List<String> extendedKeyUsage(X509Certificate c) throws CertificateParsingException {
    List<String> eku = c.getExtendedKeyUsage();
    return eku == null ? List.of() : eku;
  }
}
