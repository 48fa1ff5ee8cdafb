package io.peerflash.client;

import io.grpc.Metadata;
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

  /**
   * Trailer a cluster node adds to FAILED_PRECONDITION when it does not own the volume a call
   * names: {@code NODEID@HOST:PORT}, the owner's client address.
   */
  public static final Metadata.Key<String> OWNER_KEY =
      Metadata.Key.of("peerflash-owner", Metadata.ASCII_STRING_MARSHALLER);

  /**
   * Trailer a cluster node adds to an UNAVAILABLE that retrying will not cure soon: the volume's
   * state, e.g. {@code OFFLINE} (its owner is down and no copy can take over).
   */
  public static final Metadata.Key<String> VOLUME_STATE_KEY =
      Metadata.Key.of("peerflash-volume-state", Metadata.ASCII_STRING_MARSHALLER);

  private final transient Status status;
  private final transient Metadata trailers;

  public PeerFlashException(Status status) {
    this(status, null);
  }

  public PeerFlashException(Status status, Metadata trailers) {
    super(describe(status), status.getCause());
    this.status = status;
    this.trailers = trailers;
  }

  /** Converts any throwable (usually a {@link StatusRuntimeException}) to a PeerFlashException. */
  public static PeerFlashException from(Throwable t) {
    if (t instanceof PeerFlashException e) {
      return e;
    }
    if (t instanceof StatusRuntimeException e) {
      return new PeerFlashException(e.getStatus(), e.getTrailers());
    }
    if (t instanceof StatusException e) {
      return new PeerFlashException(e.getStatus(), e.getTrailers());
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

  /** The trailers the server sent with the failure, possibly null. */
  public Metadata trailers() {
    return trailers;
  }

  /**
   * The volume owner named by a cluster node's redirect ({@code NODEID@HOST:PORT}), or null when
   * this failure is not a redirect.
   */
  public String owner() {
    if (status.getCode() != Status.Code.FAILED_PRECONDITION || trailers == null) {
      return null;
    }
    String owner = trailers.get(OWNER_KEY);
    return owner == null || owner.isBlank() ? null : owner.trim();
  }

  /**
   * The client address ({@code HOST:PORT}) in an owner value {@code NODEID@HOST:PORT} (the node id
   * is optional), or null when it is malformed.
   */
  public static String ownerAddress(String owner) {
    if (owner == null) {
      return null;
    }
    String address = owner.substring(owner.indexOf('@') + 1).trim();
    int colon = address.lastIndexOf(':');
    if (colon <= 0 || colon == address.length() - 1) {
      return null;
    }
    return address;
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
