package io.peerflash.node.storage;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * Shared storage behind the cache: one byte-addressed object per volume. Implementations must be
 * safe for concurrent use; writes become durable only after {@link #sync}. Any operation may throw
 * {@link IOException} when the storage is unavailable; callers retry.
 */
public interface BackingStore extends AutoCloseable {
  /** Creates (or empties) the volume's object with the given size; reads of it return zeros. */
  void create(String volume, long sizeBytes) throws IOException;

  /** Whether the volume's object exists (so a new owner never re-creates, i.e. empties, it). */
  boolean exists(String volume) throws IOException;

  /** Removes the volume's object; a missing object is not an error. */
  void delete(String volume) throws IOException;

  /** Fills {@code dst}'s remaining bytes from {@code offset}; never-written bytes read as zeros. */
  void read(String volume, long offset, ByteBuffer dst) throws IOException;

  /** Writes {@code src}'s remaining bytes at {@code offset}. */
  void write(String volume, long offset, ByteBuffer src) throws IOException;

  /** Writes {@code length} zero bytes at {@code offset}. */
  void writeZeros(String volume, long offset, long length) throws IOException;

  /** Makes every completed write of the volume durable. */
  void sync(String volume) throws IOException;

  @Override
  void close();

  /**
   * A direct buffer whose address is a multiple of 4 KiB: stores that write around the page cache
   * ({@code O_DIRECT}) take it as it is, where any other buffer costs a copy.
   */
  static ByteBuffer allocateAligned(int bytes) {
    return ByteBuffer.allocateDirect(bytes + 4096).alignedSlice(4096).limit(bytes).slice();
  }
}
