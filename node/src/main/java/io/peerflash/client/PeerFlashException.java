package io.peerflash.client;

import io.grpc.Status;
import io.grpc.StatusException;
import io.grpc.StatusRuntimeException;

/**
 * A failed PeerFlash call. Every gRPC failure surfaces as this one unchecked type so callers can
 * branch on {@link #code()} without knowing whether the error came from a unary call, a stream or a
 * single pipelined write.
 */
public final class PeerFlashException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  private final transient Status status;

  public PeerFlashException(Status status) {
    super(describe(status), status.getCause());
    this.status = status;
  }

  /** Converts any throwable (usually a {@link StatusRuntimeException}) to a PeerFlashException. */
  public static PeerFlashException from(Throwable t) {
    if (t instanceof PeerFlashException e) {
      return e;
    }
    if (t instanceof StatusRuntimeException e) {
      return new PeerFlashException(e.getStatus());
    }
    if (t instanceof StatusException e) {
      return new PeerFlashException(e.getStatus());
    }
    return new PeerFlashException(Status.fromThrowable(t));
  }

  /**
   * The error of one pipelined write, which the server reports in-band as a google.rpc.Code value
   * plus message rather than by failing the stream.
   */
  public static PeerFlashException fromCode(int code, String message) {
    Status status = Status.fromCodeValue(code);
    return new PeerFlashException(
        message == null || message.isEmpty() ? status : status.withDescription(message));
  }

  public Status status() {
    return status;
  }

  public Status.Code code() {
    return status.getCode();
  }

  /** The server's (or transport's) description, possibly null. */
  public String description() {
    return status.getDescription();
  }

  private static String describe(Status status) {
    String description = status.getDescription();
    if (description == null && status.getCause() != null) {
      description = status.getCause().toString();
    }
    return description == null || description.isEmpty()
        ? status.getCode().name()
        : status.getCode().name() + ": " + description;
  }
}
