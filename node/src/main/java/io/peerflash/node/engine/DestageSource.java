package io.peerflash.node.engine;

import io.peerflash.node.index.KeyValueStorage.Batch;
import io.peerflash.replication.fault.FaultPoints;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;

/**
 * What the {@link Destager} needs of the cache: the volumes held here and whether each may be
 * destaged now, the dirty blocks' data, and the index commit that marks destaged blocks clean. The
 * block store provides it ({@link BlockStore}); the destager sees nothing else of it.
 */
interface DestageSource {
  /** The volumes held here (owned and replica; the destager takes owned ones only). */
  List<CachedVolume> volumes();

  /**
   * Whether this node may write the volume to shared storage now: local flash kept its fsyncs, the
   * cluster lease is valid and the volume is not handed over. Asked again right before every
   * request to shared storage.
   */
  boolean mayDestage(CachedVolume v);

  /** The share of the cache's slots that hold dirty data (drives the watermarks). */
  double dirtyFraction();

  /** Whether writers wait for free slots now (the destager then goes flat out). */
  boolean writersWaitForSpace();

  /** Reads a slot of the cache file into {@code dst}. */
  void readSlot(int slot, ByteBuffer dst) throws IOException;

  /**
   * Adds to {@code batch} that {@code block} at {@code seq} is clean, if it still is that version.
   */
  void markDestaged(CachedVolume v, long block, long seq, Batch batch);

  /** Commits what {@link #markDestaged} added (synced with {@code --sync}). */
  void commitDestaged(Batch batch) throws IOException;

  /** {@code bytes} of {@code v} reached shared storage in {@code nanos}; their slots may go. */
  void destaged(CachedVolume v, long bytes, long nanos);

  /** A dirty block failed its checksum (counted; the destager keeps it). */
  void checksumFailed();

  /** The fault points destage passes ({@code destage.storage-write} and after). */
  FaultPoints faults();
}
