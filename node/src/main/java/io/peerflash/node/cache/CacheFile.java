package io.peerflash.node.cache;

import com.sun.nio.file.ExtendedOpenOption;
import io.peerflash.util.Blocks;
import io.peerflash.util.Directories;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * The preallocated local flash file, an array of 4 KiB slots. Positional reads and writes only, so
 * any number of threads use it at once without a lock.
 */
public final class CacheFile implements AutoCloseable {
  public static final int SLOT_SIZE = Blocks.BLOCK_BYTES;
  private static final int ZERO_CHUNK = 1 << 20;

  private final Path path;
  private final ChannelOpener opener;
  // FileChannel I/O is interruptible: an interrupted thread closes the channel for everyone. It is
  // then reopened, so one cancelled request never takes the cache down.
  private volatile FileChannel channel;
  private volatile boolean closed;
  private final int slots;

  /** Opens the cache file's channel (tests pass one that injects disk faults). */
  @FunctionalInterface
  public interface ChannelOpener {
    FileChannel open(Path path) throws IOException;

    /** The real file, created when missing, for reading and writing. */
    ChannelOpener FILE =
        p ->
            FileChannel.open(
                p, StandardOpenOption.CREATE, StandardOpenOption.READ, StandardOpenOption.WRITE);
  }

  /** One restartable channel operation. */
  private interface ChannelOp {
    void run(FileChannel ch) throws IOException;
  }

  /**
   * Opens the file, creating and preallocating it when new or smaller than {@code sizeBytes}. The
   * space is written (not left sparse) so a full file system shows up at start, not as a failed
   * write later.
   */
  public CacheFile(Path path, long sizeBytes) throws IOException {
    this(path, sizeBytes, ChannelOpener.FILE);
  }

  /**
   * Like {@link #CacheFile(Path, long)}, opening the file with {@code opener}. Its preallocated
   * space is fsynced; a new file's name becomes durable only once the caller fsyncs its directory.
   */
  public CacheFile(Path path, long sizeBytes, ChannelOpener opener) throws IOException {
    this.path = path;
    this.opener = opener;
    if (sizeBytes % SLOT_SIZE != 0) {
      throw new IllegalArgumentException("cache size must be a multiple of 4 KiB: " + sizeBytes);
    }
    long slotCount = sizeBytes / SLOT_SIZE;
    if (slotCount > Integer.MAX_VALUE) {
      throw new IllegalArgumentException("cache size too large: " + sizeBytes);
    }
    this.slots = (int) slotCount;
    Directories.createDurably(path.getParent());
    this.channel = open();
    long existing = channel.size();
    if (existing < sizeBytes) {
      long from = preallocateDirect(path, existing, sizeBytes);
      ByteBuffer zeros = ByteBuffer.allocateDirect(SLOT_SIZE);
      for (long pos = from; pos < sizeBytes; ) {
        zeros.clear().limit((int) Math.min(SLOT_SIZE, sizeBytes - pos));
        pos += channel.write(zeros, pos);
      }
      channel.force(true);
    }
  }

  /**
   * Writes zeros from {@code from} to {@code to} past the page cache (O_DIRECT) and returns where
   * it stopped: {@code to}, or earlier when the file system or the offset does not allow direct
   * I/O, and the caller writes the rest.
   *
   * <p>Why not through the page cache in large writes: since Linux 6.x a large buffered write
   * leaves the file's pages in the cache as large folios (up to the write's size), and every later
   * 4 KiB slot write into such a folio walks all of its block buffers (ext4_block_write_begin): a
   * slot write then took 8.5 us at p50 instead of 2 us, on the thread that serves the write. The
   * fallback writes one slot at a time for the same reason: a 4 KiB write makes a 4 KiB folio.
   */
  private static long preallocateDirect(Path path, long from, long to) {
    int align = SLOT_SIZE;
    if (from % align != 0) {
      return from;
    }
    long pos = from;
    try (FileChannel direct =
        FileChannel.open(path, StandardOpenOption.WRITE, ExtendedOpenOption.DIRECT)) {
      ByteBuffer zeros = ByteBuffer.allocateDirect(ZERO_CHUNK + align).alignedSlice(align);
      while (pos < to) {
        zeros.clear().limit((int) Math.min(ZERO_CHUNK, to - pos));
        pos += direct.write(zeros, pos);
      }
    } catch (IOException | UnsupportedOperationException e) {
      // tmpfs and some other file systems refuse O_DIRECT: the rest goes through the page cache.
    }
    return pos - pos % align;
  }

  private FileChannel open() throws IOException {
    return opener.open(path);
  }

  public int slots() {
    return slots;
  }

  public long sizeBytes() {
    return (long) slots * SLOT_SIZE;
  }

  /** Writes exactly 4 KiB (the buffer's remaining bytes) into the slot. */
  public void write(int slot, ByteBuffer src) throws IOException {
    checkSlot(slot);
    if (src.remaining() != SLOT_SIZE) {
      throw new IllegalArgumentException("slot write of " + src.remaining() + " bytes");
    }
    int start = src.position();
    io(
        ch -> {
          src.position(start);
          long pos = (long) slot * SLOT_SIZE;
          while (src.hasRemaining()) {
            pos += ch.write(src, pos);
          }
        });
  }

  /** Reads the slot's 4 KiB into the buffer's remaining space (which must be 4 KiB). */
  public void read(int slot, ByteBuffer dst) throws IOException {
    checkSlot(slot);
    if (dst.remaining() != SLOT_SIZE) {
      throw new IllegalArgumentException("slot read of " + dst.remaining() + " bytes");
    }
    int start = dst.position();
    io(
        ch -> {
          dst.position(start);
          long pos = (long) slot * SLOT_SIZE;
          while (dst.hasRemaining()) {
            int n = ch.read(dst, pos);
            if (n < 0) {
              throw new IOException("cache file " + path + " shorter than slot " + slot);
            }
            pos += n;
          }
        });
  }

  /** Makes every write so far durable (fdatasync). */
  public void force() throws IOException {
    io(ch -> ch.force(false));
  }

  private void io(ChannelOp op) throws IOException {
    try {
      op.run(channel);
    } catch (ClosedChannelException e) {
      if (closed) {
        throw e;
      }
      // Retry once on a fresh channel with the interrupt status cleared, then restore it.
      boolean interrupted = Thread.interrupted();
      try {
        op.run(reopen());
      } finally {
        if (interrupted) {
          Thread.currentThread().interrupt();
        }
      }
    }
  }

  private synchronized FileChannel reopen() throws IOException {
    if (!channel.isOpen()) {
      channel = open();
    }
    return channel;
  }

  private void checkSlot(int slot) {
    if (slot < 0 || slot >= slots) {
      throw new IllegalArgumentException("slot " + slot + " outside 0.." + (slots - 1));
    }
  }

  @Override
  public void close() throws IOException {
    closed = true;
    channel.close();
  }
}
