package io.peerflash.replication.data;

/**
 * A replication step refused or failed; the code says why (e.g. a stale epoch). Free of any
 * transport type, so a replica's store can throw it; {@link ReplicaStatuses} carries it over gRPC.
 */
public final class ReplicaException extends Exception {
  /** Why a step failed. The names are gRPC's status codes, which carry them on the wire. */
  public enum Code {
    CANCELLED,
    UNKNOWN,
    INVALID_ARGUMENT,
    DEADLINE_EXCEEDED,
    NOT_FOUND,
    ALREADY_EXISTS,
    PERMISSION_DENIED,
    RESOURCE_EXHAUSTED,
    FAILED_PRECONDITION,
    ABORTED,
    OUT_OF_RANGE,
    UNIMPLEMENTED,
    INTERNAL,
    UNAVAILABLE,
    DATA_LOSS,
    UNAUTHENTICATED
  }

  private final Code code;
  private final String description;

  public ReplicaException(Code code, String description) {
    this(code, description, null);
  }

  public ReplicaException(Code code, String description, Throwable cause) {
    super(code + ": " + description, cause);
    this.code = code;
    this.description = description == null ? "" : description;
  }

  public Code code() {
    return code;
  }

  /** The reason alone, without the code. */
  public String description() {
    return description;
  }

  public static ReplicaException staleEpoch(String volume, long epoch, long known) {
    return new ReplicaException(
        Code.FAILED_PRECONDITION,
        "stale epoch " + epoch + " for volume '" + volume + "': this node knows epoch " + known);
  }
}
