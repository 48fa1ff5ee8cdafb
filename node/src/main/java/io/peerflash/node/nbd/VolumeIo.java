package io.peerflash.node.nbd;

import java.nio.ByteBuffer;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * What the NBD front end asks of the node for one volume, one engine-sized call at a time (at most
 * {@link io.peerflash.node.engine.IoRange#MAX_IO_BYTES}): the owner's engine, or the owner reached
 * over the peer channel. Futures fail with a {@link io.peerflash.node.engine.CacheException} or a
 * gRPC status exception, which {@link NbdErrors} maps to the protocol's errors.
 */
interface VolumeIo {
  /** A volume a client may see: its name and size. */
  record Volume(String name, long sizeBytes) {}

  /** The volume named {@code name} as this node knows it, or null when it knows none. */
  Volume find(String name);

  /**
   * Completes once {@link #find} and {@link #list} know every volume created before the call, on
   * any node (a node's replica of the cluster map may lag the leader's a moment); fails when that
   * cannot be established. Nothing to wait for on a single node.
   */
  default CompletableFuture<Void> catchUp() {
    return CompletableFuture.completedFuture(null);
  }

  /** Every volume, for NBD_OPT_LIST (the caller filters by grant). */
  List<Volume> list();

  CompletableFuture<byte[]> read(String volume, long offset, int length);

  /** Writes {@code data} (its remaining bytes); the buffer is not used after the future ends. */
  CompletableFuture<Void> write(String volume, long offset, ByteBuffer data);

  /** The range reads as zeros afterwards, without taking cache space for data. */
  CompletableFuture<Void> zero(String volume, long offset, long length);

  /**
   * Every write to the volume completed before this call is on non-volatile storage of every copy
   * the volume keeps.
   */
  CompletableFuture<Void> flush(String volume);

  /**
   * The same volumes, for calls made on behalf of {@code client} (as its certificate names it):
   * what a node forwarding them to another names in the owner's audit log.
   */
  default VolumeIo forClient(String client) {
    return this;
  }

  /** Stops what serving needed (timers); called once the NBD server has closed its listeners. */
  default void close() {}
}
