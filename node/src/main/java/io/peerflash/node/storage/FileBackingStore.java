package io.peerflash.node.storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Shared storage as a directory (an NFS mount, a SAN file system, a Docker volume) with one file
 * per volume, named after the volume. Files are sparse: never-written ranges read as zeros.
 */
public final class FileBackingStore implements BackingStore {
  private static final ByteBuffer ZEROS = ByteBuffer.allocateDirect(1 << 20).asReadOnlyBuffer();

  private final Path dir;
  private final ConcurrentHashMap<String, FileChannel> open = new ConcurrentHashMap<>();

  public FileBackingStore(Path dir) throws IOException {
    this.dir = dir;
    Files.createDirectories(dir);
  }

  public Path fileOf(String volume) {
    return dir.resolve(volume);
  }

  @Override
  public void create(String volume, long sizeBytes) throws IOException {
    closeChannel(volume);
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
    closeChannel(volume);
    Files.deleteIfExists(fileOf(volume));
    syncDirectory();
  }

  /** One restartable operation on a volume's channel. */
  private interface ChannelOp {
    void run(FileChannel ch) throws IOException;
  }

  /**
   * Runs an operation; if an interrupted thread closed the channel (FileChannel I/O is
   * interruptible), retries once on a fresh one so other requests are not affected.
   */
  private void io(String volume, ChannelOp op) throws IOException {
    FileChannel ch = channel(volume);
    try {
      op.run(ch);
    } catch (ClosedChannelException e) {
      open.remove(volume, ch);
      boolean interrupted = Thread.interrupted();
      try {
        op.run(channel(volume));
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
        ch -> {
          dst.position(start);
          long pos = offset;
          while (dst.hasRemaining()) {
            int n = ch.read(dst, pos);
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
        ch -> {
          src.position(start);
          long pos = offset;
          while (src.hasRemaining()) {
            pos += ch.write(src, pos);
          }
        });
  }

  @Override
  public void writeZeros(String volume, long offset, long length) throws IOException {
    io(
        volume,
        ch -> {
          long pos = offset;
          long end = offset + length;
          while (pos < end) {
            ByteBuffer z = ZEROS.duplicate();
            z.limit((int) Math.min(z.capacity(), end - pos));
            while (z.hasRemaining()) {
              pos += ch.write(z, pos);
            }
          }
        });
  }

  @Override
  public void sync(String volume) throws IOException {
    io(volume, ch -> ch.force(false));
  }

  private FileChannel channel(String volume) throws IOException {
    FileChannel ch = open.get(volume);
    if (ch != null && ch.isOpen()) {
      return ch;
    }
    try {
      FileChannel fresh =
          FileChannel.open(fileOf(volume), StandardOpenOption.READ, StandardOpenOption.WRITE);
      FileChannel raced = open.putIfAbsent(volume, fresh);
      if (raced != null && raced.isOpen()) {
        fresh.close();
        return raced;
      }
      open.put(volume, fresh);
      return fresh;
    } catch (NoSuchFileException e) {
      throw new IOException("backing file of volume " + volume + " is missing: " + e.getFile(), e);
    }
  }

  private void closeChannel(String volume) throws IOException {
    FileChannel ch = open.remove(volume);
    if (ch != null) {
      ch.close();
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
        closeChannel(v);
      } catch (IOException ignored) {
        // closing
      }
    }
  }
}
