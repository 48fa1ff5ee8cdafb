package io.peerflash.node.engine;

/** How a write was acknowledged. */
public enum WriteAck {
  /**
   * With every copy the volume's policy wants (write-back: this node's flash and each in-sync
   * replica; write-through and write-around: shared storage).
   */
  COPIES,
  /**
   * A replica could not take its copy (it was removed, or fewer replicas are in sync than wanted):
   * the write was destaged to shared storage, synced, before its ack. It is safe, but the volume is
   * short of copies until re-protection ends.
   */
  WENT_THROUGH
}
