package io.peerflash.node.storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;

/**
 * Shared storage behind the cache: one byte-addressed object per volume. Implementations must be
 * safe for concurrent use; writes become durable only after {@link #sync}. Any operation may throw
 * {@link IOException} when the storage is unavailable; callers retry.
 *
 * <p>Nothing here ever empties or replaces an existing object: {@link #create} refuses a name that
 * is taken ({@link java.nio.file.FileAlreadyExistsException}), since on shared storage the object
 * may be another volume's, or a disk image a user put there.
 */
public interface BackingStore extends AutoCloseable {
  /**
   * Creates a new object of {@code sizeBytes} that reads as zeros, durably (its name included).
   * Leaves nothing behind when it fails.
   *
   * @throws java.nio.file.FileAlreadyExistsException when the name is taken
   */
  void create(String volume, long sizeBytes) throws IOException;

  /** The size of the volume's object, or -1 when there is none. */
  long size(String volume) throws IOException;

  /** Whether the volume's object exists (so a new owner never re-creates it). */
  default boolean exists(String volume) throws IOException {
    return size(volume) >= 0;
  }

  /**
   * Removes an object this node just created that nothing uses yet (a create whose next step
   * failed). A volume's object is deleted with {@link #retire} and {@link #purgeRetired}.
   */
  void delete(String volume) throws IOException;

  /** Grows the volume's object to {@code sizeBytes} (the new part reads as zeros). */
  void extend(String volume, long sizeBytes) throws IOException;

  /**
   * The largest object this storage can hold, in bytes (a multiple of 4 KiB): what the file system
   * allows, found by a sparse probe, not its free space (thin provisioning is normal).
   */
  long maxObjectBytes() throws IOException;

  /** Where the volume's object lives (a path), for messages. */
  String describe(String volume);

  /**
   * First step of a delete: moves the volume's object aside under a name no volume can have and
   * that carries {@code volumeId}, durably. A missing object is not an error. Until {@link
   * #purgeRetired}, {@link #retired} lists it, so a delete cut short is finished at the next start
   * instead of leaving an orphan object behind (which would block re-creating the name).
   */
  void retire(String volume, long volumeId) throws IOException;

  /** Removes the retired objects of a volume id, durably; none is not an error. */
  void purgeRetired(long volumeId) throws IOException;

  /** Volume ids with a retired object not yet purged. */
  List<Long> retired() throws IOException;

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
