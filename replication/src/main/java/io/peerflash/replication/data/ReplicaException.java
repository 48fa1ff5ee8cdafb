package io.peerflash.replication.data;

import io.grpc.Status;

/** A replication step refused or failed; the status says why (e.g. a stale epoch). */
public final class ReplicaException extends Exception {
  private final Status status;

  public ReplicaException(Status status) {
    super(status.getCode() + ": " + status.getDescription(), status.getCause());
    this.status = status;
  }

  public Status status() {
    return status;
  }

  public static ReplicaException staleEpoch(String volume, long epoch, long known) {
    return new ReplicaException(
        Status.FAILED_PRECONDITION.withDescription(
            "stale epoch "
                + epoch
                + " for volume '"
                + volume
                + "': this node knows epoch "
                + known));
  }
}
