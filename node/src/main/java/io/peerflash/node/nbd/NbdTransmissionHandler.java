package io.peerflash.node.nbd;

import io.grpc.netty.shaded.io.netty.buffer.ByteBuf;
import io.grpc.netty.shaded.io.netty.channel.Channel;
import io.grpc.netty.shaded.io.netty.channel.ChannelHandlerContext;
import io.grpc.netty.shaded.io.netty.channel.ChannelInboundHandlerAdapter;
import io.grpc.netty.shaded.io.netty.util.ReferenceCountUtil;
import io.peerflash.node.observe.RequestTimer;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The transmission phase of one connection: starts every request at once and answers each when it
 * completes, in whatever order they complete (replies carry the request's handle). Once {@code
 * maxInFlight} requests are open it stops reading from the socket (auto-read off) and resumes when
 * half of them have been answered, so a client cannot queue unbounded work; TCP's window then holds
 * it back.
 *
 * <p>Replies are flushed once per burst, not once each: replies made while the event loop reads
 * (writes stored on it, cache hits) go out together when the read ends, and replies completed on
 * other threads (replicated writes, misses) go out with the last of them queued on the loop. At 32
 * requests in flight one send per request took a sixth of the loop's time, and each send woke the
 * client, which then took the core from the loop.
 */
final class NbdTransmissionHandler extends ChannelInboundHandlerAdapter {
  private static final Logger log = LoggerFactory.getLogger(NbdTransmissionHandler.class);

  private static final int KNOWN_FLAGS =
      NbdProtocol.CMD_FLAG_FUA
          | NbdProtocol.CMD_FLAG_NO_HOLE
          | NbdProtocol.CMD_FLAG_DF
          | NbdProtocol.CMD_FLAG_REQ_ONE
          | NbdProtocol.CMD_FLAG_FAST_ZERO;

  private final VolumeExport export;
  private final boolean structured;
  private final boolean allocationContext;
  private final int maxInFlight;
  // Told how long each read, write, trim and flush took, from its receipt to its answer.
  private final RequestTimer timer;
  private Channel channel;
  private int inFlight; // touched on the channel's event loop only
  private boolean disconnecting;
  private boolean reading; // inside channelRead .. channelReadComplete; event loop only
  private boolean flushPending; // replies written and not flushed; event loop only
  private boolean flushQueued; // a task to flush them is queued on the loop; event loop only
  // Replies completed on other threads and not yet written on the loop: the last one flushes.
  private final AtomicInteger repliesQueued = new AtomicInteger();

  NbdTransmissionHandler(
      VolumeExport export,
      boolean structured,
      boolean allocationContext,
      int maxInFlight,
      RequestTimer timer) {
    this.timer = timer;
    this.export = export;
    this.structured = structured;
    this.allocationContext = allocationContext;
    this.maxInFlight = maxInFlight;
  }

  @Override
  public void handlerAdded(ChannelHandlerContext ctx) {
    channel = ctx.channel();
  }

  @Override
  public void channelRead(ChannelHandlerContext ctx, Object msg) {
    reading = true;
    if (!(msg instanceof NbdRequest r)) {
      ReferenceCountUtil.release(msg);
      return;
    }
    if (disconnecting) {
      release(r);
      return;
    }
    if (r.type() == NbdProtocol.CMD_DISC) {
      // Requests already started are answered first; nothing after NBD_CMD_DISC is read.
      disconnecting = true;
      channel.config().setAutoRead(false);
      closeIfDone();
      return;
    }
    long startNanos = timer == RequestTimer.NONE ? 0 : System.nanoTime();
    inFlight++;
    if (inFlight >= maxInFlight && channel.config().isAutoRead()) {
      channel.config().setAutoRead(false);
    }
    CompletableFuture<?> done;
    try {
      done = start(r);
    } catch (RuntimeException e) {
      done = CompletableFuture.failedFuture(e);
    } finally {
      release(r);
    }
    RequestTimer.Op op = timedOp(r.type());
    if (op != null && timer != RequestTimer.NONE) {
      done.whenComplete(
          (result, failure) -> {
            answer(r, result, failure);
            timer.record(RequestTimer.FrontEnd.NBD, op, startNanos, failure == null);
          });
    } else {
      done.whenComplete((result, failure) -> answer(r, result, failure));
    }
  }

  @Override
  public void channelReadComplete(ChannelHandlerContext ctx) {
    reading = false;
    flushIfPending();
    ctx.fireChannelReadComplete();
  }

  private void flushIfPending() {
    if (flushPending) {
      flushPending = false;
      channel.flush();
    }
  }

  /** What a request counts as in the latency histograms (null: not timed). */
  private static RequestTimer.Op timedOp(int type) {
    return switch (type) {
      case NbdProtocol.CMD_READ -> RequestTimer.Op.READ;
      case NbdProtocol.CMD_WRITE, NbdProtocol.CMD_WRITE_ZEROES -> RequestTimer.Op.WRITE;
      case NbdProtocol.CMD_TRIM -> RequestTimer.Op.TRIM;
      case NbdProtocol.CMD_FLUSH -> RequestTimer.Op.FLUSH;
      default -> null;
    };
  }

  private static void release(NbdRequest r) {
    if (r.payload() != null) {
      r.payload().release();
    }
  }

  private CompletableFuture<?> start(NbdRequest r) {
    if (r.refusal() != null) {
      throw new NbdErrors.Refused(NbdProtocol.EINVAL, r.refusal());
    }
    checkFlags(r);
    boolean fua = (r.flags() & NbdProtocol.CMD_FLAG_FUA) != 0;
    return switch (r.type()) {
      case NbdProtocol.CMD_READ -> {
        checkLength(r);
        yield export.read(r.offset(), (int) r.length());
      }
      case NbdProtocol.CMD_WRITE -> export.write(r.offset(), r.payload(), fua);
      case NbdProtocol.CMD_FLUSH -> export.flush();
      case NbdProtocol.CMD_TRIM -> export.trim(r.offset(), r.length(), fua);
      case NbdProtocol.CMD_WRITE_ZEROES -> {
        boolean noHole = (r.flags() & NbdProtocol.CMD_FLAG_NO_HOLE) != 0;
        // Zero entries are faster than writing; zeros written as data (NO_HOLE) are not.
        if (noHole && (r.flags() & NbdProtocol.CMD_FLAG_FAST_ZERO) != 0) {
          throw new NbdErrors.Refused(
              NbdProtocol.ENOTSUP, "a zeroing that must allocate (NO_HOLE) is not fast");
        }
        yield export.zero(r.offset(), r.length(), fua, noHole);
      }
      case NbdProtocol.CMD_CACHE -> export.cache(r.offset(), r.length());
      case NbdProtocol.CMD_BLOCK_STATUS -> {
        if (!allocationContext) {
          throw new NbdErrors.Refused(
              NbdProtocol.EINVAL, "block status needs the base:allocation meta context");
        }
        yield export.blockStatus(r.offset(), r.length());
      }
      default ->
          throw new NbdErrors.Refused(
              NbdProtocol.EINVAL, "unknown command " + r.type() + " (this server knows 0-7)");
    };
  }

  private void checkFlags(NbdRequest r) {
    int f = r.flags();
    String bad = null;
    if ((f & ~KNOWN_FLAGS) != 0) {
      bad = "unknown command flags 0x" + Integer.toHexString(f & ~KNOWN_FLAGS);
    } else if ((f & NbdProtocol.CMD_FLAG_DF) != 0
        && (r.type() != NbdProtocol.CMD_READ || !structured)) {
      bad = "DF is only for a read with structured replies";
    } else if ((f & (NbdProtocol.CMD_FLAG_NO_HOLE | NbdProtocol.CMD_FLAG_FAST_ZERO)) != 0
        && r.type() != NbdProtocol.CMD_WRITE_ZEROES) {
      bad = "NO_HOLE and FAST_ZERO are only for write-zeroes";
    } else if ((f & NbdProtocol.CMD_FLAG_REQ_ONE) != 0
        && r.type() != NbdProtocol.CMD_BLOCK_STATUS) {
      bad = "REQ_ONE is only for block-status";
    }
    if (bad != null) {
      throw new NbdErrors.Refused(NbdProtocol.EINVAL, bad);
    }
  }

  private static void checkLength(NbdRequest r) {
    if (r.length() > NbdProtocol.MAX_PAYLOAD_BYTES) {
      throw new NbdErrors.Refused(
          NbdProtocol.EINVAL,
          NbdProtocol.commandName(r.type())
              + " of "
              + r.length()
              + " bytes is larger than the export's maximum block size ("
              + NbdProtocol.MAX_PAYLOAD_BYTES
              + " bytes)");
    }
  }

  @SuppressWarnings("unchecked")
  private void answer(NbdRequest r, Object result, Throwable failure) {
    ByteBuf reply;
    if (failure != null) {
      int error = NbdErrors.errorOf(failure);
      String message = NbdErrors.messageOf(failure);
      if (error == NbdProtocol.EIO) {
        log.warn(
            "NBD {} of {} at {} on {} failed: {}",
            NbdProtocol.commandName(r.type()),
            r.length(),
            r.offset(),
            export.name(),
            message);
      }
      reply =
          structured
              ? NbdReplies.structuredError(channel.alloc(), r.handle(), error, message)
              : NbdReplies.simple(channel.alloc(), r.handle(), error);
    } else if (r.type() == NbdProtocol.CMD_READ) {
      ByteBuf data = (ByteBuf) result;
      reply =
          structured
              ? NbdReplies.structuredRead(channel.alloc(), r.handle(), r.offset(), data)
              : NbdReplies.simpleRead(channel.alloc(), r.handle(), data);
    } else if (r.type() == NbdProtocol.CMD_BLOCK_STATUS) {
      java.util.List<int[]> extents = (java.util.List<int[]>) result;
      if ((r.flags() & NbdProtocol.CMD_FLAG_REQ_ONE) != 0 && extents.size() > 1) {
        extents = extents.subList(0, 1);
      }
      reply =
          NbdReplies.blockStatus(
              channel.alloc(), r.handle(), NbdProtocol.BASE_ALLOCATION_ID, extents);
    } else {
      reply = NbdReplies.simple(channel.alloc(), r.handle(), 0);
    }
    if (channel.eventLoop().inEventLoop()) {
      send(reply, false);
    } else {
      repliesQueued.incrementAndGet();
      ByteBuf queued = reply;
      try {
        channel.eventLoop().execute(() -> send(queued, true));
      } catch (RejectedExecutionException e) { // the server is shutting down: no one to answer
        repliesQueued.decrementAndGet();
        queued.release();
      }
    }
  }

  /**
   * On the event loop: writes a reply, to be flushed at the end of the read it answers, after the
   * last reply queued from another thread, or else by a task queued behind the loop's current one
   * (so the replies a task completes together, e.g. the writes of one index commit or of one batch
   * of replica acks, leave in one send).
   */
  private void send(ByteBuf reply, boolean wasQueued) {
    channel.write(reply);
    flushPending = true;
    boolean moreQueued = wasQueued && repliesQueued.decrementAndGet() > 0;
    if (!reading && !moreQueued && !flushQueued) {
      flushQueued = true;
      try {
        channel.eventLoop().execute(this::flushQueued);
      } catch (RejectedExecutionException e) { // shutting down: flush what there is now
        flushQueued();
      }
    }
    finished();
  }

  private void flushQueued() {
    flushQueued = false;
    flushIfPending();
  }

  private void finished() {
    inFlight--;
    if (disconnecting) {
      closeIfDone();
    } else if (!channel.config().isAutoRead() && inFlight <= maxInFlight / 2) {
      channel.config().setAutoRead(true);
    }
  }

  private void closeIfDone() {
    if (inFlight == 0) {
      flushIfPending();
      channel.close();
    }
  }

  @Override
  public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
    log.warn(
        "NBD connection {} to {} failed: {}", ctx.channel().remoteAddress(), export.name(), cause);
    ctx.close();
  }
}
