package io.peerflash.node.nbd;

import java.io.EOFException;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/** A byte-level NBD client for the protocol's edges: it sends exactly what a test asks. */
final class RawNbdClient implements AutoCloseable {
  final SocketChannel ch;

  private RawNbdClient(SocketChannel ch) {
    this.ch = ch;
  }

  static RawNbdClient unix(Path socket) throws IOException {
    SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX);
    ch.connect(UnixDomainSocketAddress.of(socket));
    return new RawNbdClient(ch);
  }

  static RawNbdClient tcp(int port) throws IOException {
    return new RawNbdClient(SocketChannel.open(new java.net.InetSocketAddress("127.0.0.1", port)));
  }

  ByteBuffer readFully(int n) throws IOException {
    ByteBuffer b = ByteBuffer.allocate(n);
    while (b.hasRemaining()) {
      if (ch.read(b) < 0) {
        throw new EOFException("connection closed after " + b.position() + " of " + n + " bytes");
      }
    }
    return b.flip();
  }

  /** Whether the server closed the connection (reads until end of stream or a byte arrives). */
  boolean closedByServer() throws IOException {
    ByteBuffer b = ByteBuffer.allocate(1);
    try {
      return ch.read(b) < 0;
    } catch (IOException e) {
      return true; // reset
    }
  }

  void send(ByteBuffer b) throws IOException {
    while (b.hasRemaining()) {
      ch.write(b);
    }
  }

  /** Reads the greeting and sends the client flags (fixed newstyle, no zeroes). */
  void greet() throws IOException {
    ByteBuffer g = readFully(18);
    if (g.getLong() != NbdProtocol.NBDMAGIC || g.getLong() != NbdProtocol.IHAVEOPT) {
      throw new IOException("bad greeting");
    }
    send(ByteBuffer.allocate(4).putInt(3).flip());
  }

  void option(int option, byte[] data) throws IOException {
    ByteBuffer b = ByteBuffer.allocate(16 + data.length);
    b.putLong(NbdProtocol.IHAVEOPT).putInt(option).putInt(data.length).put(data);
    send(b.flip());
  }

  record OptionReply(int option, int type, byte[] data) {}

  OptionReply optionReply() throws IOException {
    ByteBuffer h = readFully(20);
    long magic = h.getLong();
    if (magic != NbdProtocol.OPTION_REPLY_MAGIC) {
      throw new IOException("bad option reply magic " + Long.toHexString(magic));
    }
    int option = h.getInt();
    int type = h.getInt();
    int length = h.getInt();
    return new OptionReply(option, type, readFully(length).array());
  }

  /** NBD_OPT_GO for {@code name}; returns the export size, having read every reply up to ACK. */
  long go(String name) throws IOException {
    byte[] n = name.getBytes(StandardCharsets.UTF_8);
    ByteBuffer d = ByteBuffer.allocate(4 + n.length + 2);
    d.putInt(n.length).put(n).putShort((short) 0);
    option(NbdProtocol.OPT_GO, d.array());
    long size = -1;
    while (true) {
      OptionReply r = optionReply();
      if (r.type() == NbdProtocol.REP_ACK) {
        return size;
      }
      if (r.type() != NbdProtocol.REP_INFO) {
        throw new IOException(
            "GO failed: reply 0x"
                + Integer.toHexString(r.type())
                + " "
                + new String(r.data(), StandardCharsets.UTF_8));
      }
      ByteBuffer info = ByteBuffer.wrap(r.data());
      if (info.getShort() == NbdProtocol.INFO_EXPORT) {
        size = info.getLong();
      }
    }
  }

  void request(int flags, int type, long handle, long offset, int length, byte[] data)
      throws IOException {
    ByteBuffer b = ByteBuffer.allocate(28 + (data == null ? 0 : data.length));
    b.putInt(NbdProtocol.REQUEST_MAGIC)
        .putShort((short) flags)
        .putShort((short) type)
        .putLong(handle)
        .putLong(offset)
        .putInt(length);
    if (data != null) {
      b.put(data);
    }
    send(b.flip());
  }

  record SimpleReply(int error, long handle) {}

  SimpleReply simpleReply() throws IOException {
    ByteBuffer h = readFully(16);
    int magic = h.getInt();
    if (magic != NbdProtocol.SIMPLE_REPLY_MAGIC) {
      throw new IOException("not a simple reply: magic " + Integer.toHexString(magic));
    }
    return new SimpleReply(h.getInt(), h.getLong());
  }

  /** The data of a successful simple reply to a READ of {@code length} bytes. */
  byte[] simpleReplyData(int length) throws IOException {
    SimpleReply r = simpleReply();
    if (r.error() != 0) {
      throw new IOException("read failed: error " + r.error());
    }
    return readFully(length).array();
  }

  record Chunk(int flags, int type, long handle, byte[] payload) {}

  Chunk chunk() throws IOException {
    ByteBuffer h = readFully(20);
    int magic = h.getInt();
    if (magic != NbdProtocol.STRUCTURED_REPLY_MAGIC) {
      throw new IOException("not a structured reply: magic " + Integer.toHexString(magic));
    }
    int flags = h.getShort() & 0xffff;
    int type = h.getShort() & 0xffff;
    long handle = h.getLong();
    int length = h.getInt();
    return new Chunk(flags, type, handle, readFully(length).array());
  }

  @Override
  public void close() throws IOException {
    ch.close();
  }
}
