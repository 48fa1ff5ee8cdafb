package io.peerflash.security;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.StringReader;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.GeneralSecurityException;
import java.security.PrivateKey;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;
import org.bouncycastle.asn1.pkcs.PrivateKeyInfo;
import org.bouncycastle.cert.X509CertificateHolder;
import org.bouncycastle.openssl.PEMEncryptedKeyPair;
import org.bouncycastle.openssl.PEMKeyPair;
import org.bouncycastle.openssl.PEMParser;
import org.bouncycastle.openssl.jcajce.JcaPEMKeyConverter;
import org.bouncycastle.pkcs.PKCS8EncryptedPrivateKeyInfo;

/**
 * PEM files of certificates and private keys, written atomically: a reader that reloads while a
 * file is replaced sees the old or the new content, never half of it.
 */
public final class PemFiles {
  /** Private keys: owner read/write only (0600). */
  public static final Set<PosixFilePermission> KEY_FILE_PERMISSIONS =
      PosixFilePermissions.fromString("rw-------");

  /** Certificates and the deny list: world-readable, owner-writable (0644). */
  public static final Set<PosixFilePermission> PUBLIC_FILE_PERMISSIONS =
      PosixFilePermissions.fromString("rw-r--r--");

  /** Directories that hold a private key: owner only (0700). */
  public static final Set<PosixFilePermission> KEY_DIRECTORY_PERMISSIONS =
      PosixFilePermissions.fromString("rwx------");

  private PemFiles() {}

  /**
   * The certificates of a PEM file, in file order (a chain: the leaf first; a CA file: every CA
   * trusted, e.g. the old and the new CA while the CA is being replaced).
   *
   * @throws CertificateException naming the file when it holds no certificate or a broken one
   */
  public static List<X509Certificate> readCertificates(Path file)
      throws IOException, CertificateException {
    return parseCertificates(Files.readString(file, StandardCharsets.US_ASCII), file.toString());
  }

  static List<X509Certificate> parseCertificates(String pem, String source)
      throws IOException, CertificateException {
    CertificateFactory factory = CertificateFactory.getInstance("X.509");
    List<X509Certificate> out = new ArrayList<>();
    try (PEMParser parser = new PEMParser(new StringReader(pem))) {
      Object o;
      while ((o = readObject(parser, source)) != null) {
        if (!(o instanceof X509CertificateHolder holder)) {
          throw new CertificateException(
              source + " holds a " + o.getClass().getSimpleName() + " where a certificate belongs");
        }
        out.add(
            (X509Certificate)
                factory.generateCertificate(new ByteArrayInputStream(holder.getEncoded())));
      }
    }
    if (out.isEmpty()) {
      throw new CertificateException(source + " holds no PEM certificate");
    }
    return out;
  }

  /**
   * The private key of a PEM file: PKCS#8 ({@code BEGIN PRIVATE KEY}, what PeerFlash writes) or the
   * traditional OpenSSL form ({@code BEGIN EC PRIVATE KEY}, {@code BEGIN RSA PRIVATE KEY}).
   * Encrypted keys are refused: a node starts without anyone typing a pass phrase.
   */
  public static PrivateKey readPrivateKey(Path file) throws IOException, GeneralSecurityException {
    return parsePrivateKey(Files.readString(file, StandardCharsets.US_ASCII), file.toString());
  }

  static PrivateKey parsePrivateKey(String pem, String source)
      throws IOException, GeneralSecurityException {
    try (PEMParser parser = new PEMParser(new StringReader(pem))) {
      Object o = readObject(parser, source);
      if (o == null) {
        throw new GeneralSecurityException(source + " holds no PEM private key");
      }
      if (readObject(parser, source) != null) {
        throw new GeneralSecurityException(source + " holds more than one PEM object");
      }
      JcaPEMKeyConverter converter = new JcaPEMKeyConverter();
      if (o instanceof PrivateKeyInfo info) {
        return converter.getPrivateKey(info);
      }
      if (o instanceof PEMKeyPair pair) {
        return converter.getKeyPair(pair).getPrivate();
      }
      if (o instanceof PEMEncryptedKeyPair || o instanceof PKCS8EncryptedPrivateKeyInfo) {
        throw new GeneralSecurityException(
            source + " holds an encrypted private key; PeerFlash reads unencrypted PKCS#8 keys");
      }
      throw new GeneralSecurityException(
          source + " holds a " + o.getClass().getSimpleName() + " where a private key belongs");
    }
  }

  private static Object readObject(PEMParser parser, String source) throws IOException {
    try {
      return parser.readObject();
    } catch (IOException | RuntimeException e) {
      // BouncyCastle reports a truncated or corrupt block as a bare parse error.
      throw new IOException(source + " is not valid PEM: " + e.getMessage(), e);
    }
  }

  /** The PEM text of certificates, in order. */
  public static String certificatesPem(List<X509Certificate> certificates)
      throws CertificateException {
    StringBuilder b = new StringBuilder();
    for (X509Certificate c : certificates) {
      block(b, "CERTIFICATE", c.getEncoded());
    }
    return b.toString();
  }

  /** The PKCS#8 PEM text ({@code BEGIN PRIVATE KEY}) of a private key. */
  public static String privateKeyPem(PrivateKey key) {
    if (!"PKCS#8".equals(key.getFormat())) {
      throw new IllegalArgumentException(
          "private key format is " + key.getFormat() + ", not PKCS#8");
    }
    StringBuilder b = new StringBuilder();
    block(b, "PRIVATE KEY", withEcPublicKey(key));
    return b.toString();
  }

  /**
   * The PKCS#8 encoding of a key, for an EC key with the optional public key inside: the JDK leaves
   * it out, and GnuTLS (libnbd's {@code tls-certificates=DIR}, qemu's {@code tls-creds-x509})
   * refuses such a key ("ASN1 parser: Element was not found").
   */
  static byte[] withEcPublicKey(PrivateKey key) {
    byte[] encoded = key.getEncoded();
    if (!(key instanceof java.security.interfaces.ECPrivateKey ec)) {
      return encoded;
    }
    try {
      PrivateKeyInfo info = PrivateKeyInfo.getInstance(encoded);
      org.bouncycastle.asn1.sec.ECPrivateKey inner =
          org.bouncycastle.asn1.sec.ECPrivateKey.getInstance(info.parsePrivateKey());
      if (inner.getPublicKey() != null
          || !(info.getPrivateKeyAlgorithm().getParameters()
              instanceof org.bouncycastle.asn1.ASN1ObjectIdentifier curve)) {
        return encoded;
      }
      org.bouncycastle.asn1.x9.X9ECParameters x9 =
          org.bouncycastle.asn1.x9.ECNamedCurveTable.getByOID(curve);
      if (x9 == null) {
        return encoded;
      }
      byte[] point = x9.getG().multiply(ec.getS()).normalize().getEncoded(false);
      return new PrivateKeyInfo(
              info.getPrivateKeyAlgorithm(),
              new org.bouncycastle.asn1.sec.ECPrivateKey(
                  x9.getN().bitLength(),
                  ec.getS(),
                  new org.bouncycastle.asn1.DERBitString(point),
                  null))
          .getEncoded();
    } catch (IOException e) {
      return encoded;
    }
  }

  private static void block(StringBuilder b, String type, byte[] der) {
    b.append("-----BEGIN ").append(type).append("-----\n");
    b.append(Base64.getMimeEncoder(64, new byte[] {'\n'}).encodeToString(der));
    b.append("\n-----END ").append(type).append("-----\n");
  }

  /** Writes certificates as PEM (mode 0644), atomically. */
  public static void writeCertificates(Path file, List<X509Certificate> certificates)
      throws IOException, CertificateException {
    writeAtomically(
        file,
        certificatesPem(certificates).getBytes(StandardCharsets.US_ASCII),
        PUBLIC_FILE_PERMISSIONS);
  }

  /** Writes a private key as PKCS#8 PEM (mode 0600), atomically. */
  public static void writePrivateKey(Path file, PrivateKey key) throws IOException {
    writeAtomically(
        file, privateKeyPem(key).getBytes(StandardCharsets.US_ASCII), KEY_FILE_PERMISSIONS);
  }

  /**
   * Replaces {@code file} with {@code content}: written to a temporary file of the same directory
   * (created with {@code permissions}, so a key is never readable by others, not even briefly),
   * synced, renamed over {@code file}, and the directory synced so the rename survives a crash.
   */
  public static void writeAtomically(
      Path file, byte[] content, Set<PosixFilePermission> permissions) throws IOException {
    Path dir = file.toAbsolutePath().getParent();
    Path tmp =
        dir.resolve(
            "."
                + file.getFileName()
                + "."
                + Long.toHexString(ThreadLocalRandom.current().nextLong())
                + ".tmp");
    boolean done = false;
    try {
      try (FileChannel ch =
          FileChannel.open(
              tmp,
              Set.of(StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE),
              PosixFilePermissions.asFileAttribute(permissions))) {
        ByteBuffer buf = ByteBuffer.wrap(content);
        while (buf.hasRemaining()) {
          ch.write(buf);
        }
        ch.force(true);
      }
      // The creation mode is masked by the umask; set it exactly.
      Files.setPosixFilePermissions(tmp, permissions);
      try {
        Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
      } catch (AtomicMoveNotSupportedException e) {
        throw new IOException("cannot replace " + file + " atomically: " + e.getMessage(), e);
      }
      done = true;
      syncDirectory(dir);
    } finally {
      if (!done) {
        Files.deleteIfExists(tmp);
      }
    }
  }

  /**
   * Creates {@code dir} (and missing parents) and sets it to {@code permissions}, so that a
   * directory that holds keys is 0700 even when it existed before.
   */
  public static void createDirectory(Path dir, Set<PosixFilePermission> permissions)
      throws IOException {
    Files.createDirectories(dir);
    Files.setPosixFilePermissions(dir, permissions);
  }

  static void syncDirectory(Path dir) throws IOException {
    try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
      ch.force(true);
    }
  }
}
