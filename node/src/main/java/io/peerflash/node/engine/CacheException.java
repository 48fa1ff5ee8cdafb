package io.peerflash.node.engine;

/** A request the engine refused or could not complete; {@link #reason} maps to a gRPC status. */
public final class CacheException extends Exception {
  public enum Reason {
    NOT_FOUND,
    ALREADY_EXISTS,
    INVALID_ARGUMENT,
    /** The cache stayed full of dirty data for the whole backpressure wait. */
    RESOURCE_EXHAUSTED,
    /** Shared storage or local flash failed; the request may be retried. */
    UNAVAILABLE,
    /** A dirty block failed its checksum: the only copy of acknowledged data is damaged. */
    DATA_LOSS,
    FAILED_PRECONDITION,
    /** A bounded wait ran out; the message names the bound. */
    DEADLINE_EXCEEDED
  }

  private final Reason reason;

  public CacheException(Reason reason, String message) {
    super(message);
    this.reason = reason;
  }

  public CacheException(Reason reason, String message, Throwable cause) {
    super(message, cause);
    this.reason = reason;
  }

  public Reason reason() {
    return reason;
  }

  public static CacheException notFound(String volume) {
    return new CacheException(
        Reason.NOT_FOUND, "volume " + io.peerflash.util.Texts.quote(volume) + " does not exist");
  }

  /** Shared storage or local flash failed doing {@code what}; the request may be retried. */
  static CacheException unavailable(String what, java.io.IOException e) {
    return new CacheException(Reason.UNAVAILABLE, what + ": " + e.getMessage(), e);
  }

  static CacheException invalid(String message) {
    return new CacheException(Reason.INVALID_ARGUMENT, message);
  }
}
