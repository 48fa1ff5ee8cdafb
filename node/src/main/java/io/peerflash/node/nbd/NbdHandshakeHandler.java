package io.peerflash.node.nbd;

import io.grpc.netty.shaded.io.netty.buffer.ByteBuf;
import io.grpc.netty.shaded.io.netty.buffer.Unpooled;
import io.grpc.netty.shaded.io.netty.channel.ChannelFutureListener;
import io.grpc.netty.shaded.io.netty.channel.ChannelHandlerContext;
import io.grpc.netty.shaded.io.netty.handler.codec.ByteToMessageDecoder;
import io.grpc.netty.shaded.io.netty.handler.ssl.SslContext;
import io.grpc.netty.shaded.io.netty.handler.ssl.SslHandler;
import io.grpc.netty.shaded.io.netty.handler.ssl.SslHandshakeCompletionEvent;
import io.peerflash.security.Audit;
import io.peerflash.security.Identity;
import io.peerflash.security.TlsDirectory;
import java.nio.charset.StandardCharsets;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The handshake and option haggling of one connection (fixed newstyle): it greets the client,
 * answers options until one picks an export (NBD_OPT_GO or NBD_OPT_EXPORT_NAME), then hands the
 * connection to the transmission phase ({@link NbdRequestDecoder}, {@link NbdTransmissionHandler}),
 * passing on any bytes already received.
 *
 * <p>Over TCP on a node with TLS, every option but NBD_OPT_STARTTLS and NBD_OPT_ABORT is refused
 * with NBD_REP_ERR_TLS_REQD until the client has upgraded; the client's certificate then decides
 * which volumes it sees and may use ({@link NbdGrant}). Anything the protocol cannot frame (a bad
 * magic, an option longer than {@link NbdProtocol#MAX_OPTION_BYTES}, unknown client flags) closes
 * the connection; nothing else of the node is touched.
 */
final class NbdHandshakeHandler extends ByteToMessageDecoder {
  private static final Logger log = LoggerFactory.getLogger(NbdHandshakeHandler.class);

  private final VolumeIo volumes;
  private final SslContext tls; // null: no TLS on this listener
  private final TlsDirectory tlsDirectory;
  private final int maxInFlight;
  private final io.peerflash.node.observe.RequestTimer timer;
  private boolean clientFlagsRead;
  private boolean noZeroes;
  private boolean tlsDone;
  private boolean structured;
  private String metaContextExport; // the export NBD_OPT_SET_META_CONTEXT chose base:allocation for
  private Identity identity;
  private boolean finished;
  // Set while this node's map catches up with the leader's before an option naming an export it
  // does not know (or a LIST) is answered: the option stays in the buffer until then.
  private boolean waitingForMap;
  private boolean caughtUp;
  private Throwable catchUpFailure;

  NbdHandshakeHandler(
      VolumeIo volumes,
      SslContext tls,
      TlsDirectory tlsDirectory,
      int maxInFlight,
      io.peerflash.node.observe.RequestTimer timer) {
    this.timer = timer;
    this.volumes = volumes;
    this.tls = tls;
    this.tlsDirectory = tlsDirectory;
    this.maxInFlight = maxInFlight;
  }

  @Override
  public void channelActive(ChannelHandlerContext ctx) throws Exception {
    ByteBuf b = ctx.alloc().buffer(18);
    b.writeLong(NbdProtocol.NBDMAGIC)
        .writeLong(NbdProtocol.IHAVEOPT)
        .writeShort(NbdProtocol.FLAG_FIXED_NEWSTYLE | NbdProtocol.FLAG_NO_ZEROES);
    ctx.writeAndFlush(b);
    super.channelActive(ctx);
  }

  @Override
  protected void decode(ChannelHandlerContext ctx, ByteBuf in, List<Object> out) {
    if (finished || waitingForMap) {
      return;
    }
    if (!clientFlagsRead) {
      if (in.readableBytes() < 4) {
        return;
      }
      long flags = in.readUnsignedInt();
      if ((flags & ~(NbdProtocol.CLIENT_FLAG_FIXED_NEWSTYLE | NbdProtocol.CLIENT_FLAG_NO_ZEROES))
          != 0) {
        drop(ctx, in, "unknown client flags 0x" + Long.toHexString(flags));
        return;
      }
      noZeroes = (flags & NbdProtocol.CLIENT_FLAG_NO_ZEROES) != 0;
      clientFlagsRead = true;
    }
    while (!finished && in.readableBytes() >= 16) {
      int start = in.readerIndex();
      long magic = in.getLong(start);
      if (magic != NbdProtocol.IHAVEOPT) {
        drop(ctx, in, "an option with bad magic 0x" + Long.toHexString(magic));
        return;
      }
      int option = in.getInt(start + 8);
      long length = in.getUnsignedInt(start + 12);
      if (length > NbdProtocol.MAX_OPTION_BYTES) {
        drop(ctx, in, "option " + option + " of " + length + " bytes (at most 64 KiB)");
        return;
      }
      if (in.readableBytes() < 16 + length) {
        return;
      }
      if (!caughtUp && needsCatchUp(option, in.slice(start + 16, (int) length))) {
        catchUpThenDecode(ctx);
        return;
      }
      in.skipBytes(16);
      ByteBuf data = in.readSlice((int) length);
      option(ctx, option, data);
    }
  }

  /**
   * Whether an option must wait for this node's map to catch up with the leader's: it lists the
   * exports, or names one this node does not know (created a moment ago through another node, its
   * creation not yet applied here). Once per connection: after that, a name not found is not there.
   */
  private boolean needsCatchUp(int option, ByteBuf data) {
    if (tlsRequired()) {
      return false;
    }
    String name;
    switch (option) {
      case NbdProtocol.OPT_LIST -> {
        return true;
      }
      case NbdProtocol.OPT_EXPORT_NAME -> name = data.toString(StandardCharsets.UTF_8);
      case NbdProtocol.OPT_INFO,
          NbdProtocol.OPT_GO,
          NbdProtocol.OPT_LIST_META_CONTEXT,
          NbdProtocol.OPT_SET_META_CONTEXT -> {
        if (data.readableBytes() < 4) {
          return false;
        }
        long nameLength = data.getUnsignedInt(data.readerIndex());
        if (nameLength > data.readableBytes() - 4L) {
          return false; // malformed: answered as such without waiting
        }
        name = data.toString(data.readerIndex() + 4, (int) nameLength, StandardCharsets.UTF_8);
      }
      default -> {
        return false;
      }
    }
    // A name outside the grant is refused without a look (nor a wait): see export().
    return NbdGrant.refusal(identity, name) == null && volumes.find(name) == null;
  }

  /**
   * Stops reading until this node's map has caught up, then decodes the buffered option again (on
   * this channel's event loop; the node's other connections go on meanwhile).
   */
  private void catchUpThenDecode(ChannelHandlerContext ctx) {
    waitingForMap = true;
    ctx.channel().config().setAutoRead(false);
    volumes
        .catchUp()
        .whenComplete(
            (ok, failure) ->
                ctx.executor()
                    .execute(
                        () -> {
                          waitingForMap = false;
                          caughtUp = true;
                          catchUpFailure = failure;
                          if (ctx.isRemoved() || !ctx.channel().isActive()) {
                            return;
                          }
                          ctx.channel().config().setAutoRead(true);
                          try {
                            channelRead(ctx, Unpooled.EMPTY_BUFFER);
                          } catch (Exception e) {
                            exceptionCaught(ctx, e); // this handler's: it closes the connection
                          }
                        }));
  }

  @Override
  public void channelReadComplete(ChannelHandlerContext ctx) throws Exception {
    if (waitingForMap) {
      // Not the decoder's own: with auto-read off and no message decoded it asks for another
      // read, so a client could go on sending while the option waits.
      ctx.fireChannelReadComplete();
      return;
    }
    super.channelReadComplete(ctx);
  }

  private void drop(ChannelHandlerContext ctx, ByteBuf in, String why) {
    log.warn(
        "NBD client {} sent {} during the handshake: closing the connection",
        ctx.channel().remoteAddress(),
        why);
    in.skipBytes(in.readableBytes());
    finished = true;
    ctx.close();
  }

  private boolean tlsRequired() {
    return tls != null && !tlsDone;
  }

  private void option(ChannelHandlerContext ctx, int option, ByteBuf data) {
    if (tlsRequired() && option != NbdProtocol.OPT_STARTTLS && option != NbdProtocol.OPT_ABORT) {
      if (option == NbdProtocol.OPT_EXPORT_NAME) {
        // No way to answer an error to this option: the connection ends.
        finished = true;
        ctx.close();
        return;
      }
      error(ctx, option, NbdProtocol.REP_ERR_TLS_REQD, "this server requires TLS (STARTTLS)");
      return;
    }
    switch (option) {
      case NbdProtocol.OPT_STARTTLS -> startTls(ctx, data);
      case NbdProtocol.OPT_ABORT -> {
        finished = true;
        reply(ctx, option, NbdProtocol.REP_ACK, null).addListener(ChannelFutureListener.CLOSE);
      }
      case NbdProtocol.OPT_LIST -> list(ctx, option, data);
      case NbdProtocol.OPT_EXPORT_NAME -> exportName(ctx, data);
      case NbdProtocol.OPT_INFO, NbdProtocol.OPT_GO -> infoOrGo(ctx, option, data);
      case NbdProtocol.OPT_STRUCTURED_REPLY -> {
        if (data.isReadable()) {
          error(ctx, option, NbdProtocol.REP_ERR_INVALID, "structured reply takes no data");
        } else {
          structured = true;
          reply(ctx, option, NbdProtocol.REP_ACK, null);
        }
      }
      case NbdProtocol.OPT_LIST_META_CONTEXT, NbdProtocol.OPT_SET_META_CONTEXT ->
          metaContext(ctx, option, data);
      default -> error(ctx, option, NbdProtocol.REP_ERR_UNSUP, "option " + option + " unsupported");
    }
  }

  private void startTls(ChannelHandlerContext ctx, ByteBuf data) {
    int option = NbdProtocol.OPT_STARTTLS;
    if (tls == null) {
      error(ctx, option, NbdProtocol.REP_ERR_UNSUP, "no TLS on this listener");
    } else if (tlsDone) {
      error(ctx, option, NbdProtocol.REP_ERR_INVALID, "TLS is already on");
    } else if (data.isReadable()) {
      error(ctx, option, NbdProtocol.REP_ERR_INVALID, "STARTTLS takes no data");
    } else {
      reply(ctx, option, NbdProtocol.REP_ACK, null);
      // The client sends its TLS hello only after this ACK, so no byte of it is buffered here.
      SslHandler ssl = tls.newHandler(ctx.alloc());
      ctx.pipeline().addFirst("tls", ssl);
      tlsDone = true;
    }
  }

  @Override
  public void userEventTriggered(ChannelHandlerContext ctx, Object evt) throws Exception {
    if (evt instanceof SslHandshakeCompletionEvent e) {
      if (!e.isSuccess()) {
        log.warn(
            "NBD client {}: TLS handshake failed: {}", ctx.channel().remoteAddress(), e.cause());
        finished = true;
        ctx.close();
        return;
      }
      try {
        SslHandler ssl = ctx.pipeline().get(SslHandler.class);
        Certificate[] certs = ssl.engine().getSession().getPeerCertificates();
        X509Certificate[] chain = new X509Certificate[certs.length];
        for (int i = 0; i < certs.length; i++) {
          chain[i] = (X509Certificate) certs[i];
        }
        identity = tlsDirectory.verifyClient(chain);
      } catch (Exception ex) {
        log.warn(
            "NBD client {}: certificate refused: {}", ctx.channel().remoteAddress(), ex.toString());
        finished = true;
        ctx.close();
        return;
      }
    }
    super.userEventTriggered(ctx, evt);
  }

  private void list(ChannelHandlerContext ctx, int option, ByteBuf data) {
    if (data.isReadable()) {
      error(ctx, option, NbdProtocol.REP_ERR_INVALID, "list takes no data");
      return;
    }
    for (VolumeIo.Volume v : volumes.list()) {
      if (NbdGrant.refusal(identity, v.name()) != null) {
        continue;
      }
      byte[] name = v.name().getBytes(StandardCharsets.UTF_8);
      ByteBuf b = ctx.alloc().buffer(4 + name.length);
      b.writeInt(name.length).writeBytes(name);
      reply(ctx, option, NbdProtocol.REP_SERVER, b);
    }
    reply(ctx, option, NbdProtocol.REP_ACK, null);
  }

  /**
   * The export a client may use, or null after answering (or closing) why not. A name outside the
   * certificate's grant is refused before it is looked up, so a client learns nothing of volumes it
   * may not use, not even whether they exist.
   */
  private VolumeExport export(ChannelHandlerContext ctx, int option, String name) {
    String refusal = NbdGrant.refusal(identity, name);
    VolumeIo.Volume v = refusal == null ? volumes.find(name) : null;
    if (v == null || refusal != null) {
      if (refusal != null) {
        Audit.refused(identity, "nbd", name, refusal);
      }
      String why =
          refusal != null
              ? refusal
              : "volume "
                  + io.peerflash.util.Texts.quote(name)
                  + (catchUpFailure == null
                      ? " does not exist"
                      : " is not known to this node (its cluster map may lag: the Raft leader"
                          + " could not be asked: "
                          + catchUpFailure
                          + ")");
      if (option == NbdProtocol.OPT_EXPORT_NAME) {
        log.info("NBD client {}: {}", ctx.channel().remoteAddress(), why);
        finished = true;
        ctx.close();
      } else {
        error(
            ctx,
            option,
            refusal != null ? NbdProtocol.REP_ERR_POLICY : NbdProtocol.REP_ERR_UNKNOWN,
            why);
      }
      return null;
    }
    return new VolumeExport(
        volumes.forClient(
            identity == null ? "a client on the NBD Unix socket" : identity.describe()),
        v,
        NbdGrant.readOnly(identity));
  }

  private int transmissionFlags(VolumeExport e) {
    int f =
        NbdProtocol.TF_HAS_FLAGS
            | NbdProtocol.TF_SEND_FLUSH
            | NbdProtocol.TF_SEND_FUA
            | NbdProtocol.TF_SEND_TRIM
            | NbdProtocol.TF_SEND_WRITE_ZEROES
            | NbdProtocol.TF_SEND_FAST_ZERO
            | NbdProtocol.TF_SEND_CACHE
            // Every connection to a volume, on any node, reaches its one owner's engine (I/O
            // of a volume another node owns is forwarded there, FLUSH included), so a FLUSH
            // covers every write completed on any connection.
            | NbdProtocol.TF_CAN_MULTI_CONN;
    if (structured) {
      f |= NbdProtocol.TF_SEND_DF;
    }
    if (e.readOnly()) {
      f |= NbdProtocol.TF_READ_ONLY;
    }
    return f;
  }

  private void exportName(ChannelHandlerContext ctx, ByteBuf data) {
    String name = data.toString(StandardCharsets.UTF_8);
    VolumeExport e = export(ctx, NbdProtocol.OPT_EXPORT_NAME, name);
    if (e == null) {
      return;
    }
    ByteBuf b = ctx.alloc().buffer(134);
    b.writeLong(e.sizeBytes()).writeShort(transmissionFlags(e));
    if (!noZeroes) {
      b.writeZero(124);
    }
    ctx.writeAndFlush(b);
    transmit(ctx, e);
  }

  private void infoOrGo(ChannelHandlerContext ctx, int option, ByteBuf data) {
    if (data.readableBytes() < 4) {
      error(ctx, option, NbdProtocol.REP_ERR_INVALID, "option data too short");
      return;
    }
    long nameLength = data.readUnsignedInt();
    if (nameLength > data.readableBytes() - 2L || data.readableBytes() < 2) {
      error(ctx, option, NbdProtocol.REP_ERR_INVALID, "export name length past the option");
      return;
    }
    String name = data.readCharSequence((int) nameLength, StandardCharsets.UTF_8).toString();
    int requests = data.readUnsignedShort();
    if (data.readableBytes() != 2 * requests) {
      error(ctx, option, NbdProtocol.REP_ERR_INVALID, "information request count mismatch");
      return;
    }
    boolean wantName = false;
    for (int i = 0; i < requests; i++) {
      if (data.readUnsignedShort() == NbdProtocol.INFO_NAME) {
        wantName = true;
      }
    }
    VolumeExport e = export(ctx, option, name);
    if (e == null) {
      return;
    }
    ByteBuf info = ctx.alloc().buffer(12);
    info.writeShort(NbdProtocol.INFO_EXPORT)
        .writeLong(e.sizeBytes())
        .writeShort(transmissionFlags(e));
    reply(ctx, option, NbdProtocol.REP_INFO, info);
    ByteBuf sizes = ctx.alloc().buffer(14);
    sizes
        .writeShort(NbdProtocol.INFO_BLOCK_SIZE)
        .writeInt(NbdProtocol.MIN_BLOCK_BYTES)
        .writeInt(NbdProtocol.PREFERRED_BLOCK_BYTES)
        .writeInt(NbdProtocol.MAX_PAYLOAD_BYTES);
    reply(ctx, option, NbdProtocol.REP_INFO, sizes);
    if (wantName) {
      byte[] n = e.name().getBytes(StandardCharsets.UTF_8);
      ByteBuf b = ctx.alloc().buffer(2 + n.length);
      b.writeShort(NbdProtocol.INFO_NAME).writeBytes(n);
      reply(ctx, option, NbdProtocol.REP_INFO, b);
    }
    reply(ctx, option, NbdProtocol.REP_ACK, null);
    if (option == NbdProtocol.OPT_GO) {
      transmit(ctx, e);
    }
  }

  private void metaContext(ChannelHandlerContext ctx, int option, ByteBuf data) {
    boolean set = option == NbdProtocol.OPT_SET_META_CONTEXT;
    if (set && !structured) {
      error(ctx, option, NbdProtocol.REP_ERR_INVALID, "meta contexts need structured replies");
      return;
    }
    if (data.readableBytes() < 8) {
      error(ctx, option, NbdProtocol.REP_ERR_INVALID, "option data too short");
      return;
    }
    long nameLength = data.readUnsignedInt();
    if (nameLength > data.readableBytes() - 4L) {
      error(ctx, option, NbdProtocol.REP_ERR_INVALID, "export name length past the option");
      return;
    }
    String name = data.readCharSequence((int) nameLength, StandardCharsets.UTF_8).toString();
    long count = data.readUnsignedInt();
    List<String> queries = new ArrayList<>();
    for (long i = 0; i < count; i++) {
      if (data.readableBytes() < 4) {
        error(ctx, option, NbdProtocol.REP_ERR_INVALID, "query past the option");
        return;
      }
      long n = data.readUnsignedInt();
      if (n > data.readableBytes()) {
        error(ctx, option, NbdProtocol.REP_ERR_INVALID, "query past the option");
        return;
      }
      queries.add(data.readCharSequence((int) n, StandardCharsets.UTF_8).toString());
    }
    if (data.isReadable()) {
      error(ctx, option, NbdProtocol.REP_ERR_INVALID, "bytes after the last query");
      return;
    }
    if (export(ctx, option, name) == null) {
      return;
    }
    boolean allocation =
        (!set && queries.isEmpty())
            || queries.stream()
                .anyMatch(
                    q ->
                        q.equals(NbdProtocol.BASE_ALLOCATION)
                            || (!set && (q.equals("base:") || q.equals("base"))));
    if (set) {
      metaContextExport = allocation ? name : null;
    }
    if (allocation) {
      byte[] n = NbdProtocol.BASE_ALLOCATION.getBytes(StandardCharsets.UTF_8);
      ByteBuf b = ctx.alloc().buffer(4 + n.length);
      b.writeInt(NbdProtocol.BASE_ALLOCATION_ID).writeBytes(n);
      reply(ctx, option, NbdProtocol.REP_META_CONTEXT, b);
    }
    reply(ctx, option, NbdProtocol.REP_ACK, null);
  }

  private void transmit(ChannelHandlerContext ctx, VolumeExport e) {
    finished = true;
    boolean allocation = structured && e.name().equals(metaContextExport);
    ctx.pipeline()
        .addAfter(ctx.name(), "nbd-requests", new NbdRequestDecoder())
        .addAfter(
            "nbd-requests",
            "nbd-transmission",
            new NbdTransmissionHandler(e, structured, allocation, maxInFlight, timer));
    // Removing this decoder passes the bytes it holds (requests sent right after GO) on.
    ctx.pipeline().remove(this);
  }

  private io.grpc.netty.shaded.io.netty.channel.ChannelFuture reply(
      ChannelHandlerContext ctx, int option, int type, ByteBuf data) {
    int length = data == null ? 0 : data.readableBytes();
    ByteBuf b = ctx.alloc().buffer(20);
    b.writeLong(NbdProtocol.OPTION_REPLY_MAGIC).writeInt(option).writeInt(type).writeInt(length);
    ctx.write(b);
    if (data != null) {
      ctx.write(data);
    }
    return ctx.writeAndFlush(ctx.alloc().buffer(0));
  }

  private void error(ChannelHandlerContext ctx, int option, int type, String message) {
    reply(
        ctx,
        option,
        type,
        ctx.alloc().buffer().writeBytes(message.getBytes(StandardCharsets.UTF_8)));
  }

  @Override
  public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
    log.warn("NBD handshake with {} failed: {}", ctx.channel().remoteAddress(), cause.toString());
    ctx.close();
  }
}
