package io.peerflash.node.engine;

import io.peerflash.node.index.KeyValueStorage;
import io.peerflash.node.index.RocksKeyValueStorage;
import io.peerflash.util.Directories;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.stream.Stream;

/**
 * The node's local flash as a disk that keeps only what an fsync covered, for power-cut and
 * fsync-failure tests of the real engine: real files and a real RocksDB underneath, with the
 * durability rules of a POSIX disk applied on top.
 *
 * <ul>
 *   <li>The cache file: a page written since the last successful {@code force} reverts to its old
 *       content at {@link #powerCut}. A failed {@code force} behaves as Linux does: the pages it
 *       was to write are marked clean while never reaching the disk, so a later successful force
 *       does not save them (they still read back new until the power goes).
 *   <li>A new file's name (the cache file created at first start) survives the cut only if its
 *       directory was fsynced after it was created.
 *   <li>The index: a batch survives only if a synced write or sync came after it (the RocksDB
 *       write-ahead log is written in order and each sync covers everything before it).
 * </ul>
 *
 * <p>Test switches: {@link #lyingForce} (fsync returns without making anything durable, as a
 * missing fsync or a lying disk would), {@link #ignoreDirectorySync}, and injected failures of the
 * next fsync or synced index write.
 */
final class SimulatedDisk implements LocalStorageOpener {
  private static final int PAGE = 4096;

  /** force() returns success without making anything durable. */
  volatile boolean lyingForce;

  /** syncDirectory() does nothing (as if the engine never fsynced a directory). */
  volatile boolean ignoreDirectorySync;

  private final Object lock = new Object();
  // Cache-file pages not durable: page -> content on disk (the content at the last durable point).
  private final Map<Long, byte[]> preimages = new HashMap<>();
  // Pages a failed fsync marked clean although they never reached the disk.
  private final Map<Long, byte[]> lostPages = new HashMap<>();
  private final Map<Long, Long> pageWriteGeneration = new HashMap<>();
  private long writeGeneration;
  private Path cachePath;
  private boolean cacheNameDurable = true;
  private volatile boolean powerOff;
  private PowerLossIndex index;

  private int forceFailuresArmed;
  private CountDownLatch forceHeldUntil;
  final CountDownLatch forceHeld = new CountDownLatch(1);
  final AtomicLong cacheWrites = new AtomicLong();
  final AtomicLong forces = new AtomicLong();

  /** The next {@code n} fsyncs of the cache file fail. */
  void failNextForces(int n) {
    synchronized (lock) {
      forceFailuresArmed = n;
    }
  }

  /** The next fsync of the cache file waits for {@code release} before it goes on. */
  void holdNextForce(CountDownLatch release) {
    synchronized (lock) {
      forceHeldUntil = release;
    }
  }

  /** The next synced write (or sync) of the index fails, having written nothing durable. */
  void failNextSyncedIndexWrite() {
    index.failNextSync = true;
  }

  @Override
  public FileChannel openCacheFile(Path path) throws IOException {
    if (powerOff) {
      throw new IOException("the power is off");
    }
    synchronized (lock) {
      if (!Files.exists(path)) {
        cacheNameDurable = false;
      }
      cachePath = path;
    }
    FileChannel real =
        FileChannel.open(
            path, StandardOpenOption.CREATE, StandardOpenOption.READ, StandardOpenOption.WRITE);
    return new Channel(real);
  }

  @Override
  public KeyValueStorage openIndex(Path dir) throws IOException {
    index = new PowerLossIndex(dir);
    return index;
  }

  @Override
  public void syncDirectory(Path dir) throws IOException {
    if (powerOff) {
      throw new IOException("the power is off");
    }
    if (ignoreDirectorySync) {
      return;
    }
    Directories.sync(dir);
    synchronized (lock) {
      if (cachePath != null
          && dir.toAbsolutePath().equals(cachePath.toAbsolutePath().getParent())) {
        cacheNameDurable = true;
      }
    }
  }

  /**
   * Cuts the power: the disk keeps only what was durable. Every later operation on this disk fails;
   * open a new engine on the same directory to recover.
   */
  void powerCut() throws IOException {
    powerOff = true;
    if (index != null) {
      index.cut();
    }
    synchronized (lock) {
      if (cachePath == null) {
        return;
      }
      if (!cacheNameDurable) {
        Files.deleteIfExists(cachePath);
        return;
      }
      Map<Long, byte[]> revert = new HashMap<>(lostPages);
      revert.putAll(preimages);
      try (FileChannel ch = FileChannel.open(cachePath, StandardOpenOption.WRITE)) {
        for (Map.Entry<Long, byte[]> e : revert.entrySet()) {
          ch.write(ByteBuffer.wrap(e.getValue()), e.getKey() * PAGE);
        }
        ch.force(true);
      }
      preimages.clear();
      lostPages.clear();
    }
  }

  /** Records the on-disk content of the pages a write is about to change. */
  private void beforeWrite(FileChannel real, long position, int length) throws IOException {
    if (length == 0) {
      return;
    }
    synchronized (lock) {
      writeGeneration++;
      for (long page = position / PAGE; page <= (position + length - 1) / PAGE; page++) {
        pageWriteGeneration.put(page, writeGeneration);
        byte[] lost = lostPages.remove(page);
        if (lost != null) {
          preimages.put(page, lost); // dirty again: the next fsync may write it after all
          continue;
        }
        if (!preimages.containsKey(page)) {
          byte[] old = new byte[PAGE];
          ByteBuffer b = ByteBuffer.wrap(old);
          long pos = page * PAGE;
          while (b.hasRemaining()) {
            int n = real.read(b, pos + b.position());
            if (n < 0) {
              break; // past the end: zeros
            }
          }
          preimages.put(page, old);
        }
      }
    }
  }

  private void force(FileChannel real, boolean metaData) throws IOException {
    if (powerOff) {
      throw new IOException("the power is off");
    }
    forces.incrementAndGet();
    CountDownLatch hold;
    synchronized (lock) {
      hold = forceHeldUntil;
      forceHeldUntil = null;
    }
    if (hold != null) {
      // A slow fsync: its writeback has not started yet, so pages written meanwhile are in it.
      forceHeld.countDown();
      try {
        if (!hold.await(30, TimeUnit.SECONDS)) {
          throw new IOException("held fsync never released");
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IOException("interrupted", e);
      }
    }
    Map<Long, Long> covered;
    boolean fail;
    synchronized (lock) {
      covered = new HashMap<>();
      for (Long page : preimages.keySet()) {
        covered.put(page, pageWriteGeneration.get(page));
      }
      fail = forceFailuresArmed > 0;
      if (fail) {
        forceFailuresArmed--;
      }
    }
    if (fail) {
      synchronized (lock) {
        // Writeback failed: the pages are marked clean, and their data never reached the disk.
        // Anything written into them since the fsync began stays dirty.
        for (Map.Entry<Long, Long> c : covered.entrySet()) {
          if (c.getValue().equals(pageWriteGeneration.get(c.getKey()))) {
            lostPages.put(c.getKey(), preimages.remove(c.getKey()));
          }
        }
      }
      throw new IOException("Input/output error (simulated fsync failure)");
    }
    real.force(metaData);
    if (lyingForce) {
      return;
    }
    synchronized (lock) {
      for (Map.Entry<Long, Long> c : covered.entrySet()) {
        // A page written again while the fsync ran may hold data it did not cover.
        if (c.getValue().equals(pageWriteGeneration.get(c.getKey()))) {
          preimages.remove(c.getKey());
        }
      }
    }
  }

  /** The cache file's channel: positional I/O and force, through the disk's rules. */
  private final class Channel extends FileChannel {
    private final FileChannel real;

    Channel(FileChannel real) {
      this.real = real;
    }

    private void checkPower() throws IOException {
      if (powerOff) {
        throw new IOException("the power is off");
      }
    }

    @Override
    public int read(ByteBuffer dst, long position) throws IOException {
      checkPower();
      return real.read(dst, position);
    }

    @Override
    public int write(ByteBuffer src, long position) throws IOException {
      checkPower();
      beforeWrite(real, position, src.remaining());
      cacheWrites.incrementAndGet();
      return real.write(src, position);
    }

    @Override
    public void force(boolean metaData) throws IOException {
      SimulatedDisk.this.force(real, metaData);
    }

    @Override
    public long size() throws IOException {
      checkPower();
      return real.size();
    }

    @Override
    protected void implCloseChannel() throws IOException {
      real.close();
    }

    @Override
    public int read(ByteBuffer dst) {
      throw new UnsupportedOperationException();
    }

    @Override
    public long read(ByteBuffer[] dsts, int offset, int length) {
      throw new UnsupportedOperationException();
    }

    @Override
    public int write(ByteBuffer src) {
      throw new UnsupportedOperationException();
    }

    @Override
    public long write(ByteBuffer[] srcs, int offset, int length) {
      throw new UnsupportedOperationException();
    }

    @Override
    public long position() {
      throw new UnsupportedOperationException();
    }

    @Override
    public FileChannel position(long newPosition) {
      throw new UnsupportedOperationException();
    }

    @Override
    public FileChannel truncate(long size) {
      throw new UnsupportedOperationException();
    }

    @Override
    public long transferTo(long position, long count, WritableByteChannel target) {
      throw new UnsupportedOperationException();
    }

    @Override
    public long transferFrom(ReadableByteChannel src, long position, long count) {
      throw new UnsupportedOperationException();
    }

    @Override
    public MappedByteBuffer map(MapMode mode, long position, long size) {
      throw new UnsupportedOperationException();
    }

    @Override
    public FileLock lock(long position, long size, boolean shared) {
      throw new UnsupportedOperationException();
    }

    @Override
    public FileLock tryLock(long position, long size, boolean shared) {
      throw new UnsupportedOperationException();
    }
  }

  /**
   * The index on a real RocksDB that also logs every batch; at the cut it is rebuilt from the
   * batches a sync covered, in order.
   */
  private static final class PowerLossIndex implements KeyValueStorage {
    private final Path dir;
    private final RocksKeyValueStorage live;
    private final List<Batch> log = new ArrayList<>();
    private final ReentrantReadWriteLock open = new ReentrantReadWriteLock();
    private int durable;
    private boolean dead;
    volatile boolean failNextSync;

    PowerLossIndex(Path dir) throws IOException {
      this.dir = dir;
      this.live = new RocksKeyValueStorage(dir);
    }

    private void checkOpen() throws IOException {
      if (dead) {
        throw new IOException("the power is off");
      }
    }

    @Override
    public byte[] get(Table table, byte[] key) throws IOException {
      open.readLock().lock();
      try {
        checkOpen();
        return live.get(table, key);
      } finally {
        open.readLock().unlock();
      }
    }

    @Override
    public void write(Batch batch, boolean sync) throws IOException {
      open.readLock().lock();
      try {
        checkOpen();
        synchronized (log) {
          if (sync && failNextSync) {
            failNextSync = false;
            // The record reached the log but its sync failed: it may or may not survive, and
            // earlier unsynced records may have been lost with the failed writeback.
            live.write(batch, false);
            log.add(batch);
            throw new IOException("IO error: fsync of the index log failed (simulated)");
          }
          live.write(batch, false);
          log.add(batch);
          if (sync) {
            durable = log.size();
          }
        }
      } finally {
        open.readLock().unlock();
      }
    }

    @Override
    public void scan(Table table, byte[] prefix, Visitor visitor) throws IOException {
      open.readLock().lock();
      try {
        checkOpen();
        live.scan(table, prefix, visitor);
      } finally {
        open.readLock().unlock();
      }
    }

    @Override
    public void sync() throws IOException {
      open.readLock().lock();
      try {
        checkOpen();
        synchronized (log) {
          if (failNextSync) {
            failNextSync = false;
            throw new IOException("IO error: fsync of the index log failed (simulated)");
          }
          durable = log.size();
        }
      } finally {
        open.readLock().unlock();
      }
    }

    @Override
    public Health health() {
      return dead ? new Health(Health.State.FAILED, "the power is off") : live.health();
    }

    void cut() throws IOException {
      open.writeLock().lock();
      try {
        if (dead) {
          return;
        }
        dead = true;
        live.close();
        try (Stream<Path> files = Files.walk(dir)) {
          for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
            Files.delete(p);
          }
        }
        try (RocksKeyValueStorage rebuilt = new RocksKeyValueStorage(dir)) {
          for (int i = 0; i < durable; i++) {
            rebuilt.write(log.get(i), false);
          }
          rebuilt.sync();
        }
      } finally {
        open.writeLock().unlock();
      }
    }

    @Override
    public void close() {
      open.writeLock().lock();
      try {
        if (!dead) {
          dead = true;
          live.close();
        }
      } finally {
        open.writeLock().unlock();
      }
    }
  }
}
