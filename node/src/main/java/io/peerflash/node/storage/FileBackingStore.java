package io.peerflash.node.storage;

import com.sun.nio.file.ExtendedOpenOption;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.ConcurrentHashMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Shared storage as a directory (an NFS mount, a SAN file system, a Docker volume) with one file
 * per volume, named after the volume. Files are sparse: never-written ranges read as zeros.
 *
 * <p>Writes of whole 4 KiB blocks go around the page cache ({@code O_DIRECT}) where the file system
 * allows it. Destaged data is already cached on flash, so caching it again in memory only costs:
 * buffered, each destage batch left a megabyte of dirty pages whose writeback (the batch's fsync
 * and the kernel's flusher) put hundreds of requests at once into the device queue, and writes of
 * cache pages on the same disk waited behind them for 100 ms and more. A direct write puts one
 * request in flight per writing thread. Reads stay buffered (a read miss may be read again soon).
 */
public final class FileBackingStore implements BackingStore {
  private static final Logger log = LoggerFactory.getLogger(FileBackingStore.class);

  /** The unit of direct writes: offsets, lengths and buffer addresses are multiples of it. */
  static final int DIRECT_ALIGNMENT = 4096;

  private static final int ZERO_BYTES = 1 << 20;
  private static final ByteBuffer ZEROS =
      BackingStore.allocateAligned(ZERO_BYTES).asReadOnlyBuffer();

  /** Bounce buffer for writes from heap buffers and unaligned direct ones (e.g. the network's). */
  private static final int BOUNCE_BYTES = 256 << 10;

  private static final ThreadLocal<ByteBuffer> BOUNCE =
      ThreadLocal.withInitial(() -> BackingStore.allocateAligned(BOUNCE_BYTES));

  private final Path dir;
  private final boolean directWrites;
  private final ConcurrentHashMap<String, VolumeFile> open = new ConcurrentHashMap<>();
  private volatile boolean directRefusedLogged;

  /** A store that writes with {@code O_DIRECT} where the file system allows it. */
  public FileBackingStore(Path dir) throws IOException {
    this(dir, true);
  }

  /**
   * @param directWrites write whole blocks with {@code O_DIRECT} when the file system allows it;
   *     false: every write goes through the page cache
   */
  public FileBackingStore(Path dir, boolean directWrites) throws IOException {
    this.dir = dir;
    this.directWrites = directWrites;
    Files.createDirectories(dir);
  }

  public Path fileOf(String volume) {
    return dir.resolve(volume);
  }

  /**
   * Whether block writes of the volume currently go around the page cache (opens the volume's
   * file).
   */
  public boolean writesDirect(String volume) throws IOException {
    return file(volume).direct != null;
  }

  /** One volume's file, open twice: buffered (reads, odd-sized writes, sync) and direct. */
  private static final class VolumeFile {
    final FileChannel buffered;
    final FileChannel direct; // null: not supported here, or turned off

    VolumeFile(FileChannel buffered, FileChannel direct) {
      this.buffered = buffered;
      this.direct = direct;
    }

    boolean isOpen() {
      return buffered.isOpen() && (direct == null || direct.isOpen());
    }

    void close() throws IOException {
      try {
        buffered.close();
      } finally {
        if (direct != null) {
          direct.close();
        }
      }
    }
  }

  @Override
  public void create(String volume, long sizeBytes) throws IOException {
    closeFile(volume);
    try (FileChannel ch =
        FileChannel.open(
            fileOf(volume),
            StandardOpenOption.CREATE,
            StandardOpenOption.WRITE,
            StandardOpenOption.TRUNCATE_EXISTING)) {
      ch.truncate(0);
      // Extending by writing the last byte keeps the file sparse but of the full size.
      if (sizeBytes > 0) {
        ch.write(ByteBuffer.wrap(new byte[1]), sizeBytes - 1);
      }
      ch.force(true);
    }
    syncDirectory();
  }

  @Override
  public boolean exists(String volume) {
    return Files.exists(fileOf(volume));
  }

  @Override
  public void delete(String volume) throws IOException {
    closeFile(volume);
    Files.deleteIfExists(fileOf(volume));
    syncDirectory();
  }

  /** One restartable operation on a volume's file. */
  private interface FileOp {
    void run(VolumeFile f) throws IOException;
  }

  /**
   * Runs an operation; if an interrupted thread closed a channel (FileChannel I/O is
   * interruptible), retries once on fresh ones so other requests are not affected.
   */
  private void io(String volume, FileOp op) throws IOException {
    VolumeFile f = file(volume);
    try {
      op.run(f);
    } catch (ClosedChannelException e) {
      if (open.remove(volume, f)) {
        closeQuietly(f);
      }
      boolean interrupted = Thread.interrupted();
      try {
        op.run(file(volume));
      } finally {
        if (interrupted) {
          Thread.currentThread().interrupt();
        }
      }
    }
  }

  @Override
  public void read(String volume, long offset, ByteBuffer dst) throws IOException {
    int start = dst.position();
    io(
        volume,
        f -> {
          dst.position(start);
          long pos = offset;
          while (dst.hasRemaining()) {
            int n = f.buffered.read(dst, pos);
            if (n < 0) {
              // Past the end of a shorter file: the rest reads as zeros.
              while (dst.hasRemaining()) {
                dst.put((byte) 0);
              }
              return;
            }
            pos += n;
          }
        });
  }

  @Override
  public void write(String volume, long offset, ByteBuffer src) throws IOException {
    int start = src.position();
    io(
        volume,
        f -> {
          src.position(start);
          if (f.direct != null && aligned(offset, src.remaining())) {
            writeDirect(f.direct, offset, src);
          } else {
            writeFully(f.buffered, offset, src);
          }
        });
  }

  @Override
  public void writeZeros(String volume, long offset, long length) throws IOException {
    io(
        volume,
        f -> {
          FileChannel ch = f.direct != null && aligned(offset, length) ? f.direct : f.buffered;
          long pos = offset;
          long end = offset + length;
          while (pos < end) {
            ByteBuffer z = ZEROS.duplicate();
            z.limit((int) Math.min(z.capacity(), end - pos));
            pos += writeFully(ch, pos, z);
          }
        });
  }

  @Override
  public void sync(String volume) throws IOException {
    // fdatasync is per file, not per descriptor: it covers the direct writes too (their metadata,
    // e.g. newly allocated blocks, and the device's write cache).
    io(volume, f -> f.buffered.force(false));
  }

  private static boolean aligned(long offset, long length) {
    return offset % DIRECT_ALIGNMENT == 0 && length % DIRECT_ALIGNMENT == 0;
  }

  /**
   * A direct write of a 4 KiB-multiple at a 4 KiB-aligned offset. Anything but an aligned direct
   * buffer is copied here, in chunks, into an aligned one: never handed to the JDK, whose own
   * aligned temporary buffers for direct I/O break its temporary-buffer cache in JDK 17 (a later
   * read of any channel on that thread failed with a NullPointerException in {@code Util.free}).
   */
  private static void writeDirect(FileChannel ch, long offset, ByteBuffer src) throws IOException {
    if (src.isDirect() && src.alignmentOffset(src.position(), DIRECT_ALIGNMENT) == 0) {
      writeFully(ch, offset, src);
      return;
    }
    ByteBuffer bounce = BOUNCE.get();
    long pos = offset;
    while (src.hasRemaining()) {
      int n = Math.min(src.remaining(), BOUNCE_BYTES);
      ByteBuffer chunk = src.duplicate();
      chunk.limit(chunk.position() + n);
      bounce.clear();
      bounce.put(chunk).flip();
      pos += writeFully(ch, pos, bounce);
      src.position(src.position() + n);
    }
  }

  private static int writeFully(FileChannel ch, long offset, ByteBuffer src) throws IOException {
    int total = src.remaining();
    long pos = offset;
    while (src.hasRemaining()) {
      pos += ch.write(src, pos);
    }
    return total;
  }

  private VolumeFile file(String volume) throws IOException {
    VolumeFile f = open.get(volume);
    if (f != null && f.isOpen()) {
      return f;
    }
    VolumeFile fresh = openFile(volume);
    VolumeFile raced = open.putIfAbsent(volume, fresh);
    if (raced != null && raced.isOpen()) {
      fresh.close();
      return raced;
    }
    open.put(volume, fresh);
    return fresh;
  }

  private VolumeFile openFile(String volume) throws IOException {
    Path file = fileOf(volume);
    FileChannel buffered;
    try {
      buffered = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE);
    } catch (NoSuchFileException e) {
      throw new IOException("backing file of volume " + volume + " is missing: " + e.getFile(), e);
    }
    FileChannel direct = null;
    if (directWrites) {
      try {
        long blockSize = Files.getFileStore(file).getBlockSize();
        if (blockSize > DIRECT_ALIGNMENT || DIRECT_ALIGNMENT % blockSize != 0) {
          throw new IOException("file system block size " + blockSize + " does not divide 4 KiB");
        }
        direct = FileChannel.open(file, StandardOpenOption.WRITE, ExtendedOpenOption.DIRECT);
      } catch (IOException | UnsupportedOperationException e) {
        if (!directRefusedLogged) {
          directRefusedLogged = true;
          log.info(
              "shared storage {}: no direct I/O ({}); destage writes go through the page cache",
              dir,
              e.getMessage());
        }
      }
    }
    return new VolumeFile(buffered, direct);
  }

  private void closeFile(String volume) throws IOException {
    VolumeFile f = open.remove(volume);
    if (f != null) {
      f.close();
    }
  }

  private static void closeQuietly(VolumeFile f) {
    try {
      f.close();
    } catch (IOException ignored) {
      // already failing
    }
  }

  private void syncDirectory() {
    // Makes the file's creation or removal durable; not possible on every platform.
    try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
      d.force(true);
    } catch (IOException ignored) {
      // best effort
    }
  }

  @Override
  public void close() {
    for (String v : open.keySet()) {
      try {
        closeFile(v);
      } catch (IOException ignored) {
        // closing
      }
    }
  }
}
