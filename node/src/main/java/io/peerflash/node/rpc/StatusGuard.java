package io.peerflash.node.rpc;

import io.grpc.ForwardingServerCall.SimpleForwardingServerCall;
import io.grpc.ForwardingServerCallListener.SimpleForwardingServerCallListener;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;
import io.peerflash.util.Texts;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The last word on every call's status, for all services of the node: a status description is made
 * safe to send (printable, bounded: {@link Texts#description}), and an INTERNAL or UNKNOWN status,
 * which is never the client's fault, is logged with its cause. An exception a handler throws is
 * logged here too and answered INTERNAL (gRPC would answer UNKNOWN and log nothing).
 */
public final class StatusGuard implements ServerInterceptor {
  private static final Logger log = LoggerFactory.getLogger(StatusGuard.class);

  @Override
  public <Q, R> ServerCall.Listener<Q> interceptCall(
      ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next) {
    GuardedCall<Q, R> guarded = new GuardedCall<>(call);
    ServerCall.Listener<Q> listener;
    try {
      listener = next.startCall(guarded, headers);
    } catch (RuntimeException e) {
      guarded.failed(e);
      return new ServerCall.Listener<>() {};
    }
    return new SimpleForwardingServerCallListener<>(listener) {
      @Override
      public void onMessage(Q message) {
        try {
          super.onMessage(message);
        } catch (RuntimeException e) {
          guarded.failed(e);
        }
      }

      @Override
      public void onHalfClose() {
        try {
          super.onHalfClose();
        } catch (RuntimeException e) {
          guarded.failed(e);
        }
      }

      @Override
      public void onReady() {
        try {
          super.onReady();
        } catch (RuntimeException e) {
          guarded.failed(e);
        }
      }
    };
  }

  private static final class GuardedCall<Q, R> extends SimpleForwardingServerCall<Q, R> {
    private volatile boolean closed;

    GuardedCall(ServerCall<Q, R> delegate) {
      super(delegate);
    }

    /** A handler threw: log it, answer INTERNAL unless the call was answered already. */
    void failed(RuntimeException e) {
      log.error("{} failed", getMethodDescriptor().getFullMethodName(), e);
      if (!closed) {
        try {
          close(
              Status.INTERNAL.withDescription("internal error: " + e).withCause(e), new Metadata());
        } catch (IllegalStateException alreadyClosed) {
          // answered meanwhile
        }
      }
    }

    @Override
    public void close(Status status, Metadata trailers) {
      closed = true;
      Status.Code code = status.getCode();
      if (code == Status.Code.INTERNAL || code == Status.Code.UNKNOWN) {
        log.error(
            "{} answered {}: {}",
            getMethodDescriptor().getFullMethodName(),
            code,
            Texts.description(status.getDescription()),
            status.getCause());
      }
      String description = status.getDescription();
      String safe = Texts.description(description);
      super.close(description == safe ? status : status.withDescription(safe), trailers);
    }
  }
}
