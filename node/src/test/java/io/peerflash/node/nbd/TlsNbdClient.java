package io.peerflash.node.nbd;

import io.peerflash.security.TlsDirectory;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicLong;
import javax.net.ssl.KeyManager;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManager;

/**
 * A blocking NBD client over TCP with NBD_OPT_STARTTLS and a client certificate, one request at a
 * time and simple replies: what a test needs to time each request against a node.
 */
final class TlsNbdClient implements AutoCloseable {
  private final Socket socket;
  private final DataInputStream in;
  private final DataOutputStream out;
  private final AtomicLong handles = new AtomicLong();
  final long sizeBytes;

  /** Connects to {@code port} on loopback as the identity in {@code identity} and opens export. */
  TlsNbdClient(int port, Path identity, String export) throws Exception {
    this(port, identity, identity, export);
  }

  /**
   * Connects presenting the certificate in {@code identity} and trusting the node by the CA of
   * {@code trust} (another directory: a certificate of another CA can reach the node's check).
   */
  TlsNbdClient(int port, Path identity, Path trust, String export) throws Exception {
    Socket plain = new Socket();
    plain.connect(new InetSocketAddress("127.0.0.1", port), 5_000);
    plain.setTcpNoDelay(true);
    DataInputStream pin = new DataInputStream(plain.getInputStream());
    DataOutputStream pout = new DataOutputStream(plain.getOutputStream());
    if (pin.readLong() != NbdProtocol.NBDMAGIC || pin.readLong() != NbdProtocol.IHAVEOPT) {
      plain.close();
      throw new IOException("bad greeting");
    }
    pin.readUnsignedShort();
    pout.writeInt(NbdProtocol.CLIENT_FLAG_FIXED_NEWSTYLE | NbdProtocol.CLIENT_FLAG_NO_ZEROES);
    option(pout, NbdProtocol.OPT_STARTTLS, new byte[0]);
    if (optionReply(pin).type() != NbdProtocol.REP_ACK) {
      plain.close();
      throw new IOException("STARTTLS refused");
    }
    TlsDirectory dir = TlsDirectory.open(identity);
    TlsDirectory trusted = trust.equals(identity) ? dir : TlsDirectory.open(trust);
    SSLContext tls = SSLContext.getInstance("TLS");
    tls.init(
        new KeyManager[] {dir.keyManager()}, new TrustManager[] {trusted.serverVerifier()}, null);
    SSLSocket s = (SSLSocket) tls.getSocketFactory().createSocket(plain, "127.0.0.1", port, true);
    s.setUseClientMode(true);
    s.startHandshake();
    socket = s;
    in = new DataInputStream(new java.io.BufferedInputStream(s.getInputStream()));
    out = new DataOutputStream(new java.io.BufferedOutputStream(s.getOutputStream()));
    byte[] n = export.getBytes(StandardCharsets.UTF_8);
    ByteBuffer d = ByteBuffer.allocate(4 + n.length + 2);
    d.putInt(n.length).put(n).putShort((short) 0);
    option(out, NbdProtocol.OPT_GO, d.array());
    long size = -1;
    while (true) {
      Reply r = optionReply(in);
      if (r.type() == NbdProtocol.REP_ACK) {
        break;
      }
      if (r.type() != NbdProtocol.REP_INFO) {
        close();
        throw new IOException(
            "GO refused: 0x"
                + Integer.toHexString(r.type())
                + " "
                + new String(r.data(), StandardCharsets.UTF_8));
      }
      ByteBuffer info = ByteBuffer.wrap(r.data());
      if (info.getShort() == NbdProtocol.INFO_EXPORT) {
        size = info.getLong();
      }
    }
    sizeBytes = size;
  }

  private record Reply(int type, byte[] data) {}

  private static void option(DataOutputStream o, int option, byte[] data) throws IOException {
    o.writeLong(NbdProtocol.IHAVEOPT);
    o.writeInt(option);
    o.writeInt(data.length);
    o.write(data);
    o.flush();
  }

  private static Reply optionReply(DataInputStream i) throws IOException {
    if (i.readLong() != NbdProtocol.OPTION_REPLY_MAGIC) {
      throw new IOException("bad option reply magic");
    }
    i.readInt();
    int type = i.readInt();
    byte[] data = new byte[i.readInt()];
    i.readFully(data);
    return new Reply(type, data);
  }

  private long request(int type, int flags, long offset, int length, byte[] data)
      throws IOException {
    long handle = handles.incrementAndGet();
    out.writeInt(NbdProtocol.REQUEST_MAGIC);
    out.writeShort(flags);
    out.writeShort(type);
    out.writeLong(handle);
    out.writeLong(offset);
    out.writeInt(length);
    if (data != null) {
      out.write(data);
    }
    out.flush();
    return handle;
  }

  /** The NBD error of the reply to {@code handle} (0: success). */
  private int reply(long handle) throws IOException {
    if (in.readInt() != NbdProtocol.SIMPLE_REPLY_MAGIC) {
      throw new IOException("not a simple reply");
    }
    int error = in.readInt();
    long h = in.readLong();
    if (h != handle) {
      throw new IOException("reply to handle " + h + ", expected " + handle);
    }
    return error;
  }

  /** The serial of the certificate the node presented. */
  java.math.BigInteger serverSerial() throws IOException {
    return ((java.security.cert.X509Certificate)
            ((SSLSocket) socket).getSession().getPeerCertificates()[0])
        .getSerialNumber();
  }

  /** The TLS version the connection runs, e.g. TLSv1.3. */
  String protocol() {
    return ((SSLSocket) socket).getSession().getProtocol();
  }

  /** Writes; returns the NBD error (0: written). */
  int write(long offset, byte[] data, boolean fua) throws IOException {
    return reply(
        request(
            NbdProtocol.CMD_WRITE, fua ? NbdProtocol.CMD_FLAG_FUA : 0, offset, data.length, data));
  }

  /** Reads into {@code into}; returns the NBD error (0: read). */
  int read(long offset, byte[] into) throws IOException {
    int error = reply(request(NbdProtocol.CMD_READ, 0, offset, into.length, null));
    if (error == 0) {
      in.readFully(into);
    }
    return error;
  }

  int flush() throws IOException {
    return reply(request(NbdProtocol.CMD_FLUSH, 0, 0, 0, null));
  }

  int trim(long offset, int length) throws IOException {
    return reply(request(NbdProtocol.CMD_TRIM, 0, offset, length, null));
  }

  int writeZeroes(long offset, int length) throws IOException {
    return reply(request(NbdProtocol.CMD_WRITE_ZEROES, 0, offset, length, null));
  }

  @Override
  public void close() throws IOException {
    try {
      request(NbdProtocol.CMD_DISC, 0, 0, 0, null);
    } catch (IOException e) {
      // already gone
    }
    socket.close();
  }
}
