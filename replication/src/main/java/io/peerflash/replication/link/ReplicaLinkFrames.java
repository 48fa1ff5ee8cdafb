package io.peerflash.replication.link;

import com.google.protobuf.CodedOutputStream;
import com.google.protobuf.MessageLite;
import io.grpc.netty.shaded.io.netty.buffer.ByteBuf;
import io.grpc.netty.shaded.io.netty.buffer.ByteBufAllocator;
import io.grpc.netty.shaded.io.netty.handler.codec.LengthFieldBasedFrameDecoder;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;

/**
 * The replica link's wire format. After the TLS handshake the owner sends {@link #HELLO} and the
 * replica answers with the same eight bytes; then each side sends frames of a 4-byte big-endian
 * length and that many bytes of one protobuf message: {@code ReplicateRequest} from the owner,
 * {@code ReplicateAck} from the replica (the messages of the Replicate gRPC stream, with the same
 * meaning). A replica closes a link whose hello or frame it cannot read.
 */
final class ReplicaLinkFrames {
  private ReplicaLinkFrames() {}

  /** "PFRL" and the version, 1. */
  static final long HELLO = 0x5046524c_00000001L;

  static final int HELLO_BYTES = 8;

  static final int LENGTH_BYTES = 4;

  /** A decoder of frames of at most {@code maxFrameBytes}, handing on the message's bytes. */
  static LengthFieldBasedFrameDecoder decoder(int maxFrameBytes) {
    return new LengthFieldBasedFrameDecoder(
        maxFrameBytes + LENGTH_BYTES, 0, LENGTH_BYTES, 0, LENGTH_BYTES);
  }

  static ByteBuf hello(ByteBufAllocator alloc) {
    return alloc.buffer(HELLO_BYTES).writeLong(HELLO);
  }

  /** One frame holding {@code message}, serialized straight into the buffer. */
  static ByteBuf encode(ByteBufAllocator alloc, MessageLite message) {
    int size = message.getSerializedSize();
    ByteBuf buf = alloc.directBuffer(LENGTH_BYTES + size);
    buf.writeInt(size);
    ByteBuffer body = buf.nioBuffer(LENGTH_BYTES, size);
    try {
      CodedOutputStream out = CodedOutputStream.newInstance(body);
      message.writeTo(out);
      out.checkNoSpaceLeft();
    } catch (IOException e) {
      buf.release();
      throw new UncheckedIOException(e);
    }
    buf.writerIndex(LENGTH_BYTES + size);
    return buf;
  }
}
