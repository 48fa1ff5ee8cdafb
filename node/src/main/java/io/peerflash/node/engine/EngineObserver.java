package io.peerflash.node.engine;

/**
 * Told how long the engine's inner stages take, for the node's latency histograms. Called on the
 * I/O path: an implementation must not block, and costs what it records.
 */
public interface EngineObserver {
  /** A write-back write stored its own copy (slot writes, index commit, install: steps 7-9). */
  default void localStored(long nanos) {}

  /** One group commit made the cache file and the index durable (fsync and synced log write). */
  default void synced(long nanos) {}

  /** One destage batch was written to shared storage and synced. */
  default void destaged(long nanos, long bytes) {}

  EngineObserver NONE = new EngineObserver() {};
}
