package io.peerflash.node.nbd;

import io.grpc.netty.shaded.io.netty.buffer.ByteBuf;
import io.grpc.netty.shaded.io.netty.channel.ChannelHandlerContext;
import io.grpc.netty.shaded.io.netty.handler.codec.ByteToMessageDecoder;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Splits the transmission phase's byte stream into {@link NbdRequest}s: a 28-byte header, and for a
 * write its data. A header with a bad magic ends the connection (nothing after it can be framed); a
 * write longer than {@link NbdProtocol#MAX_PAYLOAD_BYTES} has its data skipped as it arrives, never
 * buffered, and is answered EINVAL.
 */
final class NbdRequestDecoder extends ByteToMessageDecoder {
  private static final Logger log = LoggerFactory.getLogger(NbdRequestDecoder.class);

  private long skipBytes; // data of an oversized write still to drop
  private NbdRequest skipped; // the oversized write, answered once its data is dropped

  @Override
  protected void decode(ChannelHandlerContext ctx, ByteBuf in, List<Object> out) {
    while (true) {
      if (skipBytes > 0) {
        int n = (int) Math.min(skipBytes, in.readableBytes());
        in.skipBytes(n);
        skipBytes -= n;
        if (skipBytes > 0) {
          return;
        }
        out.add(skipped);
        skipped = null;
      }
      if (in.readableBytes() < NbdProtocol.REQUEST_HEADER_BYTES) {
        return;
      }
      int start = in.readerIndex();
      int magic = in.getInt(start);
      if (magic != NbdProtocol.REQUEST_MAGIC) {
        log.warn(
            "NBD client {} sent a request with bad magic 0x{}: closing the connection",
            ctx.channel().remoteAddress(),
            Integer.toHexString(magic));
        in.skipBytes(in.readableBytes());
        ctx.close();
        return;
      }
      int flags = in.getUnsignedShort(start + 4);
      int type = in.getUnsignedShort(start + 6);
      long handle = in.getLong(start + 8);
      long offset = in.getLong(start + 16);
      long length = in.getUnsignedInt(start + 24);
      if (type != NbdProtocol.CMD_WRITE) {
        in.skipBytes(NbdProtocol.REQUEST_HEADER_BYTES);
        out.add(new NbdRequest(flags, type, handle, offset, length, null, null));
        continue;
      }
      if (length > NbdProtocol.MAX_PAYLOAD_BYTES) {
        in.skipBytes(NbdProtocol.REQUEST_HEADER_BYTES);
        skipBytes = length;
        skipped =
            new NbdRequest(
                flags,
                type,
                handle,
                offset,
                length,
                null,
                "write of "
                    + length
                    + " bytes is larger than the export's maximum block size ("
                    + NbdProtocol.MAX_PAYLOAD_BYTES
                    + " bytes)");
        continue;
      }
      if (in.readableBytes() < NbdProtocol.REQUEST_HEADER_BYTES + length) {
        return;
      }
      in.skipBytes(NbdProtocol.REQUEST_HEADER_BYTES);
      ByteBuf data = in.readRetainedSlice((int) length);
      out.add(new NbdRequest(flags, type, handle, offset, length, data, null));
    }
  }
}
