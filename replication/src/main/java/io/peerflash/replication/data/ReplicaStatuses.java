package io.peerflash.replication.data;

import io.grpc.Status;

/** {@link ReplicaException} to gRPC statuses and back: the one place the two meet. */
public final class ReplicaStatuses {
  private ReplicaStatuses() {}

  public static Status toStatus(ReplicaException e) {
    return Status.fromCode(Status.Code.valueOf(e.code().name()))
        .withDescription(e.description())
        .withCause(e.getCause());
  }

  /** The exception a failed call's status stands for; OK has none and maps to UNKNOWN. */
  public static ReplicaException fromStatus(Status status) {
    Status.Code code = status.getCode();
    ReplicaException.Code mapped =
        code == Status.Code.OK
            ? ReplicaException.Code.UNKNOWN
            : ReplicaException.Code.valueOf(code.name());
    return new ReplicaException(mapped, status.getDescription(), status.getCause());
  }

  /** {@link #fromStatus} of a status code's wire value, as a replica's ack carries it. */
  public static ReplicaException fromCode(int codeValue, String description) {
    return fromStatus(Status.fromCodeValue(codeValue).withDescription(description));
  }
}
