package io.peerflash.node.nbd;

import io.grpc.netty.shaded.io.netty.buffer.ByteBuf;
import io.grpc.netty.shaded.io.netty.buffer.ByteBufAllocator;
import io.grpc.netty.shaded.io.netty.buffer.CompositeByteBuf;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * Encodes the transmission phase's replies: simple replies, and the structured reply chunks used
 * once the client negotiated NBD_OPT_STRUCTURED_REPLY (read data, errors, block status). Each
 * method returns one buffer holding a whole reply, so replies written from different threads never
 * interleave on the connection.
 */
final class NbdReplies {
  /** Messages in error chunks are cut to this many bytes. */
  static final int MAX_ERROR_MESSAGE_BYTES = 4096;

  private NbdReplies() {}

  static ByteBuf simple(ByteBufAllocator alloc, long handle, int error) {
    ByteBuf b = alloc.buffer(16);
    b.writeInt(NbdProtocol.SIMPLE_REPLY_MAGIC).writeInt(error).writeLong(handle);
    return b;
  }

  /** A successful simple read reply followed by the data (which this takes over). */
  static ByteBuf simpleRead(ByteBufAllocator alloc, long handle, ByteBuf data) {
    CompositeByteBuf c = alloc.compositeBuffer(2);
    c.addComponents(true, simple(alloc, handle, 0), data);
    return c;
  }

  private static ByteBuf chunkHeader(
      ByteBufAllocator alloc, int flags, int type, long handle, int length, int extra) {
    ByteBuf b = alloc.buffer(20 + extra);
    b.writeInt(NbdProtocol.STRUCTURED_REPLY_MAGIC)
        .writeShort(flags)
        .writeShort(type)
        .writeLong(handle)
        .writeInt(length);
    return b;
  }

  /** One NBD_REPLY_TYPE_OFFSET_DATA chunk carrying all of a read's data, the final chunk. */
  static ByteBuf structuredRead(ByteBufAllocator alloc, long handle, long offset, ByteBuf data) {
    ByteBuf header =
        chunkHeader(
            alloc,
            NbdProtocol.REPLY_FLAG_DONE,
            NbdProtocol.REPLY_TYPE_OFFSET_DATA,
            handle,
            8 + data.readableBytes(),
            8);
    header.writeLong(offset);
    CompositeByteBuf c = alloc.compositeBuffer(2);
    c.addComponents(true, header, data);
    return c;
  }

  /** A final NBD_REPLY_TYPE_NONE chunk: success of a command without data. */
  static ByteBuf structuredDone(ByteBufAllocator alloc, long handle) {
    return chunkHeader(
        alloc, NbdProtocol.REPLY_FLAG_DONE, NbdProtocol.REPLY_TYPE_NONE, handle, 0, 0);
  }

  /** A final NBD_REPLY_TYPE_ERROR chunk with a message for the client's log. */
  static ByteBuf structuredError(ByteBufAllocator alloc, long handle, int error, String message) {
    byte[] text = message.getBytes(StandardCharsets.UTF_8);
    int n = Math.min(text.length, MAX_ERROR_MESSAGE_BYTES);
    ByteBuf b =
        chunkHeader(
            alloc,
            NbdProtocol.REPLY_FLAG_DONE,
            NbdProtocol.REPLY_TYPE_ERROR,
            handle,
            4 + 2 + n,
            6 + n);
    b.writeInt(error).writeShort(n).writeBytes(text, 0, n);
    return b;
  }

  /** A final NBD_REPLY_TYPE_BLOCK_STATUS chunk: (length, flags) descriptors for one context. */
  static ByteBuf blockStatus(
      ByteBufAllocator alloc, long handle, int contextId, List<int[]> extents) {
    int length = 4 + 8 * extents.size();
    ByteBuf b =
        chunkHeader(
            alloc,
            NbdProtocol.REPLY_FLAG_DONE,
            NbdProtocol.REPLY_TYPE_BLOCK_STATUS,
            handle,
            length,
            length);
    b.writeInt(contextId);
    for (int[] e : extents) {
      b.writeInt(e[0]).writeInt(e[1]);
    }
    return b;
  }
}
