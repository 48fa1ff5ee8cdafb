package io.peerflash.node.storage;

import com.sun.nio.file.ExtendedOpenOption;
import io.peerflash.util.Directories;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.FileChannel;
import java.nio.file.DirectoryStream;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
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
 *
 * <p>Files are opened when first used and at most {@code maxOpenFiles} stay open: past that, the
 * least recently used files that have nothing unsynced are closed (each open volume costs two file
 * descriptors, and a node may hold thousands of volumes). A file with writes not yet synced stays
 * open until its sync: an error the kernel met writing it back is reported to the descriptors open
 * at the time, and a later one might never see it.
 *
 * <p>Every name change (create, retire, purge) is made durable by an fsync of the directory: on
 * POSIX a new or removed name survives a crash only once its directory is synced.
 */
public final class FileBackingStore implements BackingStore {
  private static final Logger log = LoggerFactory.getLogger(FileBackingStore.class);

  /** The unit of direct writes: offsets, lengths and buffer addresses are multiples of it. */
  static final int DIRECT_ALIGNMENT = 4096;

  /** Files open at once unless told otherwise. */
  public static final int DEFAULT_MAX_OPEN_FILES = 256;

  /** Objects larger than this are never probed for (the volume size limit is lower anyway). */
  static final long PROBE_CEILING_BYTES = 1L << 62;

  /** Prefix of retired files (a delete in progress): volume names cannot start with a dot. */
  static final String RETIRED_PREFIX = ".retired-";

  private static final String PROBE_PREFIX = ".size-probe-";

  private static final int ZERO_BYTES = 1 << 20;
  private static final ByteBuffer ZEROS =
      BackingStore.allocateAligned(ZERO_BYTES).asReadOnlyBuffer();

  /** Bounce buffer for writes from heap buffers and unaligned direct ones (e.g. the network's). */
  private static final int BOUNCE_BYTES = 256 << 10;

  private static final ThreadLocal<ByteBuffer> BOUNCE =
      ThreadLocal.withInitial(() -> BackingStore.allocateAligned(BOUNCE_BYTES));

  private final Path dir;
  private final boolean directWrites;
  private final int maxOpenFiles;
  private final ConcurrentHashMap<String, VolumeFile> open = new ConcurrentHashMap<>();
  private final Object openLock = new Object();
  private volatile boolean directRefusedLogged;
  private volatile long maxObjectBytes = -1;
  private final DirectorySync directorySync;

  /** A store that writes with {@code O_DIRECT} where the file system allows it. */
  public FileBackingStore(Path dir) throws IOException {
    this(dir, true, DEFAULT_MAX_OPEN_FILES);
  }

  public FileBackingStore(Path dir, boolean directWrites) throws IOException {
    this(dir, directWrites, DEFAULT_MAX_OPEN_FILES);
  }

  /**
   * @param directWrites write whole blocks with {@code O_DIRECT} when the file system allows it;
   *     false: every write goes through the page cache
   * @param maxOpenFiles volume files kept open at once (more are opened while all are busy or
   *     unsynced, and closed again once they are not)
   */
  public FileBackingStore(Path dir, boolean directWrites, int maxOpenFiles) throws IOException {
    this(dir, directWrites, maxOpenFiles, Directories::sync);
  }

  /** Fsyncs a directory; tests pass one that records or fails. */
  interface DirectorySync {
    void sync(Path directory) throws IOException;
  }

  FileBackingStore(Path dir, boolean directWrites, int maxOpenFiles, DirectorySync directorySync)
      throws IOException {
    if (maxOpenFiles < 1) {
      throw new IllegalArgumentException("maxOpenFiles must be at least 1");
    }
    this.dir = dir;
    this.directWrites = directWrites;
    this.maxOpenFiles = maxOpenFiles;
    this.directorySync = directorySync;
    Directories.createDurably(dir);
  }

  public Path fileOf(String volume) {
    return dir.resolve(volume);
  }

  @Override
  public String describe(String volume) {
    return fileOf(volume).toString();
  }

  /**
   * Whether block writes of the volume currently go around the page cache (opens the volume's
   * file).
   */
  public boolean writesDirect(String volume) throws IOException {
    VolumeFile f = acquire(volume);
    try {
      return f.direct != null;
    } finally {
      f.release(false);
    }
  }

  /** Volume files open now (for tests and status). */
  public int openFiles() {
    return open.size();
  }

  // ---------------------------------------------------------------------------------------------
  // Names: create, size, retire, purge

  @Override
  public void create(String volume, long sizeBytes) throws IOException {
    Path file = fileOf(volume);
    // CREATE_NEW: never truncate what is there (another volume's file, or a user's disk image).
    try (FileChannel ch =
        FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
      try {
        setLength(file, sizeBytes);
        ch.force(true);
        syncDirectory(dir);
      } catch (IOException e) {
        // Nothing left behind, also when only the name's fsync failed: a retry must not find the
        // name taken.
        try {
          Files.deleteIfExists(file);
        } catch (IOException cleanup) {
          e.addSuppressed(cleanup);
        }
        throw e;
      }
    } catch (FileAlreadyExistsException e) {
      throw new FileAlreadyExistsException(file.toString(), null, "a file already exists there");
    }
  }

  @Override
  public void delete(String volume) throws IOException {
    closeFile(volume);
    if (Files.deleteIfExists(fileOf(volume))) {
      syncDirectory(dir);
    }
  }

  @Override
  public long size(String volume) throws IOException {
    try {
      return Files.size(fileOf(volume));
    } catch (NoSuchFileException e) {
      return -1;
    }
  }

  @Override
  public void extend(String volume, long sizeBytes) throws IOException {
    Path file = fileOf(volume);
    long now = Files.size(file);
    if (now < sizeBytes) {
      setLength(file, sizeBytes);
      try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
        ch.force(true);
      }
    }
  }

  /** Sets a file's length with ftruncate: growing it allocates nothing (the file stays sparse). */
  private static void setLength(Path file, long sizeBytes) throws IOException {
    try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw")) {
      raf.setLength(sizeBytes);
    }
  }

  @Override
  public long maxObjectBytes() throws IOException {
    long known = maxObjectBytes;
    if (known < 0) {
      known = probeMaxFileBytes();
      maxObjectBytes = known;
    }
    return known;
  }

  /**
   * Finds the largest file length the file system accepts (ext4 with 4 KiB blocks: 16 TiB), by
   * setting the length of an empty probe file: sparse, so it takes no space whatever the length.
   */
  private long probeMaxFileBytes() throws IOException {
    Path probe =
        dir.resolve(PROBE_PREFIX + ProcessHandle.current().pid() + "-" + System.nanoTime());
    Files.newByteChannel(probe, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE).close();
    try (RandomAccessFile raf = new RandomAccessFile(probe.toFile(), "rw")) {
      long lo = DIRECT_ALIGNMENT; // accepted by every file system
      long hi = PROBE_CEILING_BYTES; // first length known (or assumed) too large
      if (accepts(raf, hi)) {
        return hi;
      }
      while (hi - lo > DIRECT_ALIGNMENT) {
        long mid = (lo + (hi - lo) / 2) / DIRECT_ALIGNMENT * DIRECT_ALIGNMENT;
        if (accepts(raf, mid)) {
          lo = mid;
        } else {
          hi = mid;
        }
      }
      log.info("shared storage {} holds files of up to {} bytes", dir, lo);
      return lo;
    } finally {
      Files.deleteIfExists(probe);
    }
  }

  private static boolean accepts(RandomAccessFile raf, long length) throws IOException {
    try {
      raf.setLength(length);
      raf.setLength(0);
      return true;
    } catch (IOException e) {
      String m = String.valueOf(e.getMessage());
      if (m.contains("File too large") || m.contains("Invalid argument")) {
        return false;
      }
      throw e;
    }
  }

  @Override
  public void retire(String volume, long volumeId) throws IOException {
    closeFile(volume);
    Path from = fileOf(volume);
    if (!Files.exists(from)) {
      return;
    }
    Files.move(from, dir.resolve(retiredName(volumeId, volume)), StandardCopyOption.ATOMIC_MOVE);
    syncDirectory(dir);
  }

  @Override
  public void purgeRetired(long volumeId) throws IOException {
    boolean removed = false;
    try (DirectoryStream<Path> s =
        Files.newDirectoryStream(dir, RETIRED_PREFIX + volumeId + "-*")) {
      for (Path p : s) {
        removed |= Files.deleteIfExists(p);
      }
    }
    if (removed) {
      syncDirectory(dir);
    }
  }

  @Override
  public List<Long> retired() throws IOException {
    List<Long> ids = new ArrayList<>();
    try (DirectoryStream<Path> s = Files.newDirectoryStream(dir, RETIRED_PREFIX + "*")) {
      for (Path p : s) {
        String rest = p.getFileName().toString().substring(RETIRED_PREFIX.length());
        int dash = rest.indexOf('-');
        try {
          ids.add(Long.parseLong(dash < 0 ? rest : rest.substring(0, dash)));
        } catch (NumberFormatException e) {
          log.warn("ignoring {}: not a retired volume file", p);
        }
      }
    }
    return ids;
  }

  static String retiredName(long volumeId, String volume) {
    return RETIRED_PREFIX + volumeId + "-" + volume;
  }

  private void syncDirectory(Path directory) throws IOException {
    directorySync.sync(directory);
  }

  // ---------------------------------------------------------------------------------------------
  // Data

  /** One restartable operation on a volume's file. */
  private interface FileOp {
    void run(VolumeFile f) throws IOException;
  }

  /**
   * Runs an operation; if an interrupted thread closed a channel (FileChannel I/O is
   * interruptible), retries once on fresh ones so other requests are not affected.
   */
  private void io(String volume, boolean writes, FileOp op) throws IOException {
    VolumeFile f = acquire(volume);
    try {
      op.run(f);
    } catch (ClosedChannelException e) {
      f.release(writes);
      f = null;
      discard(volume);
      boolean interrupted = Thread.interrupted();
      VolumeFile fresh = acquire(volume);
      try {
        op.run(fresh);
      } finally {
        fresh.release(writes);
        if (interrupted) {
          Thread.currentThread().interrupt();
        }
      }
    } finally {
      if (f != null) {
        f.release(writes);
      }
    }
  }

  @Override
  public void read(String volume, long offset, ByteBuffer dst) throws IOException {
    int start = dst.position();
    io(
        volume,
        false,
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
        true,
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
        true,
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
    io(
        volume,
        false,
        f -> {
          long writesBefore = f.writesDone();
          f.buffered.force(false);
          f.synced(writesBefore);
        });
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

  // ---------------------------------------------------------------------------------------------
  // Open files

  /**
   * One volume's file, open twice: buffered (reads, odd-sized writes, sync) and direct. Counts its
   * users, so it is closed only when nobody is in the middle of an operation on it, and whether it
   * has writes not yet synced.
   */
  private static final class VolumeFile {
    final FileChannel buffered;
    final FileChannel direct; // null: not supported here, or turned off
    private int users;
    private boolean closed;
    private long writesDone; // completed write operations
    private long writesSynced = 0; // writes covered by a completed sync
    private long lastUsedNanos = System.nanoTime();

    VolumeFile(FileChannel buffered, FileChannel direct) {
      this.buffered = buffered;
      this.direct = direct;
    }

    synchronized boolean tryAcquire() {
      if (closed || !buffered.isOpen() || (direct != null && !direct.isOpen())) {
        return false;
      }
      users++;
      return true;
    }

    synchronized void release(boolean wrote) {
      users--;
      if (wrote) {
        writesDone++;
      }
      lastUsedNanos = System.nanoTime();
    }

    synchronized long writesDone() {
      return writesDone;
    }

    /** A sync that began after {@code writesBefore} completed writes has returned. */
    synchronized void synced(long writesBefore) {
      writesSynced = Math.max(writesSynced, writesBefore);
    }

    synchronized long lastUsedNanos() {
      return lastUsedNanos;
    }

    /** Closes the file if nobody uses it and everything written to it was synced. */
    synchronized boolean closeIfIdle() {
      if (closed || users > 0 || writesSynced < writesDone) {
        return false;
      }
      closeNow();
      return true;
    }

    synchronized void closeNow() {
      closed = true;
      try {
        buffered.close();
      } catch (IOException ignored) {
        // nothing to lose: every write was synced or the file is being discarded
      }
      if (direct != null) {
        try {
          direct.close();
        } catch (IOException ignored) {
          // as above
        }
      }
    }
  }

  /** The volume's open file, marked in use; {@link VolumeFile#release} when done. */
  private VolumeFile acquire(String volume) throws IOException {
    while (true) {
      VolumeFile f = open.get(volume);
      if (f != null && f.tryAcquire()) {
        return f;
      }
      synchronized (openLock) {
        VolumeFile current = open.get(volume);
        if (current != f && current != null) {
          continue; // replaced meanwhile: try that one
        }
        if (current != null) {
          open.remove(volume, current);
        }
        VolumeFile fresh = openFile(volume);
        fresh.tryAcquire();
        open.put(volume, fresh);
        closeIdleBeyondLimit();
        return fresh;
      }
    }
  }

  /** Closes the least recently used idle files while more than the limit are open. */
  private void closeIdleBeyondLimit() {
    int excess = open.size() - maxOpenFiles;
    if (excess <= 0) {
      return;
    }
    List<java.util.Map.Entry<String, VolumeFile>> byAge = new ArrayList<>(open.entrySet());
    byAge.sort(Comparator.comparingLong(e -> e.getValue().lastUsedNanos()));
    for (var e : byAge) {
      if (excess <= 0) {
        return;
      }
      if (e.getValue().closeIfIdle()) {
        open.remove(e.getKey(), e.getValue());
        excess--;
      }
    }
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

  /** Drops a file whose channel was closed under it (an interrupt), without waiting for users. */
  private void discard(String volume) {
    synchronized (openLock) {
      VolumeFile f = open.remove(volume);
      if (f != null) {
        f.closeNow();
      }
    }
  }

  /** Closes a volume's file for good (before it is retired); its users' calls fail and retry. */
  private void closeFile(String volume) {
    discard(volume);
  }

  @Override
  public void close() {
    synchronized (openLock) {
      for (VolumeFile f : open.values()) {
        f.closeNow();
      }
      open.clear();
    }
  }
}
