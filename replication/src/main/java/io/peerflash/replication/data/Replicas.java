package io.peerflash.replication.data;

/** Limits on a volume's replicas, checked by the cluster map and by the engine alike. */
public final class Replicas {
  /** Peers that may hold copies of a volume's dirty blocks besides its owner. */
  public static final int MAX_REPLICAS = 2;

  private Replicas() {}
}
