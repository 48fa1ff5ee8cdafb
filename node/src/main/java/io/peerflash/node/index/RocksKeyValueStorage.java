package io.peerflash.node.index;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import org.rocksdb.AbstractEventListener;
import org.rocksdb.ColumnFamilyDescriptor;
import org.rocksdb.ColumnFamilyHandle;
import org.rocksdb.ColumnFamilyOptions;
import org.rocksdb.DBOptions;
import org.rocksdb.Env;
import org.rocksdb.ReadOptions;
import org.rocksdb.RocksDB;
import org.rocksdb.RocksDBException;
import org.rocksdb.RocksIterator;
import org.rocksdb.SstFileManager;
import org.rocksdb.Status;
import org.rocksdb.TableFileCreationInfo;
import org.rocksdb.TableFileCreationReason;
import org.rocksdb.WriteBatch;
import org.rocksdb.WriteOptions;

/**
 * {@link KeyValueStorage} on RocksDB: one column family per table. The only class that sees
 * RocksDB.
 *
 * <p>Out of space: when a log append, a memtable flush or a compaction finds the file system full,
 * RocksDB keeps everything committed (in the log and the memtables) and stops taking writes (a
 * compaction alone only waits). Its {@link SstFileManager} then checks the free space every {@value
 * #SPACE_POLL_SECONDS} s and, once at least one memtable's worth ({@code write_buffer_size}) is
 * free, flushes the memtables to a fresh log and takes writes again, with no reopen. Meanwhile
 * writes fail with {@link SpaceException} and {@link #health} says so. Any other background error
 * (an I/O error during a flush, say) stops writes until the node restarts.
 */
public final class RocksKeyValueStorage implements KeyValueStorage {
  private static final org.slf4j.Logger log =
      org.slf4j.LoggerFactory.getLogger(RocksKeyValueStorage.class);

  static {
    RocksDB.loadLibrary();
  }

  /** How often RocksDB's SstFileManager checks for free space after running out (fixed there). */
  static final int SPACE_POLL_SECONDS = 5;

  private final Path dir;
  private final DBOptions dbOptions;
  private final ColumnFamilyOptions cfOptions;
  private final SstFileManager sstFileManager;
  private final ErrorListener errorListener = new ErrorListener();
  private final RocksDB db;
  private final Map<Table, ColumnFamilyHandle> handles = new EnumMap<>(Table.class);
  private final List<ColumnFamilyHandle> allHandles = new ArrayList<>();
  private final WriteOptions syncWrite = new WriteOptions().setSync(true);
  private final WriteOptions asyncWrite = new WriteOptions().setSync(false);
  private final ReadOptions readOptions = new ReadOptions();

  // Every call holds it shared, close() exclusively: RocksDB's native code crashes the process
  // when its handle is closed under a call still running (a request thread a shutdown did not
  // wait for). A call after close fails with an IOException instead.
  private final ReentrantReadWriteLock open = new ReentrantReadWriteLock();
  private boolean closed;

  private void enter() throws IOException {
    open.readLock().lock();
    if (closed) {
      open.readLock().unlock();
      throw new IOException("index " + dir + " is closed");
    }
  }

  private void exit() {
    open.readLock().unlock();
  }

  public RocksKeyValueStorage(Path dir) throws IOException {
    this.dir = dir;
    Files.createDirectories(dir);
    try {
      // RocksDB creates one itself when none is given; it is what brings writes back after the
      // disk filled up (see the class comment), so it is made explicit here.
      sstFileManager = new SstFileManager(Env.getDefault());
    } catch (RocksDBException e) {
      throw new IOException("cannot create the index's file manager: " + e.getMessage(), e);
    }
    dbOptions =
        new DBOptions()
            .setCreateIfMissing(true)
            .setCreateMissingColumnFamilies(true)
            // Small metadata: keep background work and memory modest on small machines.
            .setMaxBackgroundJobs(2)
            // Flushes and compactions write their files back 1 MiB at a time as they go, not
            // all at the end: a burst of writeback delays the cache's own writes on the same disk.
            .setBytesPerSync(1L << 20)
            .setKeepLogFileNum(4)
            .setSstFileManager(sstFileManager)
            .setListeners(List.of(errorListener));
    cfOptions = new ColumnFamilyOptions().optimizeLevelStyleCompaction(32L << 20);
    List<ColumnFamilyDescriptor> descriptors = new ArrayList<>();
    descriptors.add(new ColumnFamilyDescriptor(RocksDB.DEFAULT_COLUMN_FAMILY, cfOptions));
    for (Table t : Table.values()) {
      descriptors.add(
          new ColumnFamilyDescriptor(
              t.name().toLowerCase().getBytes(StandardCharsets.UTF_8), cfOptions));
    }
    try {
      db = RocksDB.open(dbOptions, dir.toString(), descriptors, allHandles);
    } catch (RocksDBException e) {
      closeOptions();
      throw new IOException("cannot open index at " + dir + ": " + e.getMessage(), e);
    }
    for (Table t : Table.values()) {
      handles.put(t, allHandles.get(t.ordinal() + 1));
    }
  }

  @Override
  public byte[] get(Table table, byte[] key) throws IOException {
    enter();
    try {
      return db.get(handles.get(table), readOptions, key);
    } catch (RocksDBException e) {
      throw new IOException("index read failed: " + e.getMessage(), e);
    } finally {
      exit();
    }
  }

  @Override
  public void write(Batch batch, boolean sync) throws IOException {
    if (batch.isEmpty()) {
      return;
    }
    enter();
    try {
      writeOpen(batch, sync);
    } finally {
      exit();
    }
  }

  private void writeOpen(Batch batch, boolean sync) throws IOException {
    ErrorListener.Snapshot before = errorListener.snapshot();
    try (WriteBatch wb = new WriteBatch()) {
      for (Batch.Op op : batch.ops) {
        if (op.value() == null) {
          wb.delete(handles.get(op.table()), op.key());
        } else {
          wb.put(handles.get(op.table()), op.key(), op.value());
        }
      }
      db.write(sync ? syncWrite : asyncWrite, wb);
    } catch (RocksDBException e) {
      IOException failure = writeFailure(e, before.health().state() == Health.State.NO_SPACE);
      errorListener.writeFailed(before, e, failure instanceof SpaceException);
      throw failure;
    }
  }

  /**
   * A failed write as the engine must see it: {@link SpaceException} when the batch was certainly
   * not applied and writes come back once space is freed, a plain IOException otherwise.
   *
   * @param alreadyOutOfSpace the storage had stopped for lack of space before this write began, so
   *     RocksDB refused it without writing anything
   */
  IOException writeFailure(RocksDBException e, boolean alreadyOutOfSpace) {
    Status status = e.getStatus();
    boolean noSpace = status != null && status.getSubCode() == Status.SubCode.NoSpace;
    if (noSpace && (alreadyOutOfSpace || !isLogSyncFailure(e.getMessage()))) {
      return new SpaceException(
          "index has no space left: "
              + e.getMessage()
              + "; writes resume by themselves within "
              + SPACE_POLL_SECONDS
              + " s once "
              + dir
              + " has "
              + (cfOptions.writeBufferSize() >> 20)
              + " MiB free",
          e);
    }
    // An fsync of the log that failed, for lack of space or anything else, may have dropped what
    // the operating system held for it: what this write made durable is unknown.
    return new IOException("index write failed: " + e.getMessage(), e);
  }

  /** RocksDB's message for an fsync or fdatasync of a write-ahead log file that failed. */
  static boolean isLogSyncFailure(String message) {
    return message != null
        && (message.contains("While fsync") || message.contains("While fdatasync"))
        && message.contains(".log");
  }

  @Override
  public Health health() {
    return errorListener.snapshot().health();
  }

  @Override
  public void scan(Table table, byte[] prefix, Visitor visitor) throws IOException {
    enter();
    try {
      scanOpen(table, prefix, visitor);
    } finally {
      exit();
    }
  }

  private void scanOpen(Table table, byte[] prefix, Visitor visitor) throws IOException {
    try (RocksIterator it = db.newIterator(handles.get(table), readOptions)) {
      if (prefix.length == 0) {
        it.seekToFirst();
      } else {
        it.seek(prefix);
      }
      for (; it.isValid(); it.next()) {
        byte[] key = it.key();
        if (key.length < prefix.length
            || !Arrays.equals(key, 0, prefix.length, prefix, 0, prefix.length)) {
          break;
        }
        if (!visitor.visit(key, it.value())) {
          break;
        }
      }
      it.status();
    } catch (RocksDBException e) {
      throw new IOException("index scan failed: " + e.getMessage(), e);
    }
  }

  @Override
  public void sync() throws IOException {
    enter();
    try {
      db.syncWal();
    } catch (RocksDBException e) {
      throw new IOException("index sync failed: " + e.getMessage(), e);
    } finally {
      exit();
    }
  }

  /** How long close waits for calls still running before it leaves the index open. */
  static final long CLOSE_WAIT_SECONDS = 10;

  @Override
  public void close() {
    try {
      if (!open.writeLock().tryLock(CLOSE_WAIT_SECONDS, TimeUnit.SECONDS)) {
        // Closing under a running call could crash the process; left open, nothing is lost
        // (the log is written) and the process is about to exit.
        log.error("index {}: calls still running after {} s; left open", dir, CLOSE_WAIT_SECONDS);
        return;
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      log.error("index {}: interrupted while closing; left open", dir);
      return;
    }
    try {
      if (closed) {
        return;
      }
      closed = true;
    } finally {
      open.writeLock().unlock();
    }
    for (ColumnFamilyHandle h : allHandles) {
      h.close();
    }
    db.close();
    syncWrite.close();
    asyncWrite.close();
    readOptions.close();
    closeOptions();
  }

  private void closeOptions() {
    dbOptions.close();
    cfOptions.close();
    errorListener.close();
    sstFileManager.close();
  }

  /**
   * Follows whether RocksDB takes writes: from the table files it fails to create (a flush or a
   * compaction out of space), from the writes it refuses, and from its recovery.
   *
   * <p>Not from {@code onBackgroundError}: RocksJava's {@link org.rocksdb.BackgroundErrorReason}
   * knows only the first four of RocksDB's seven reasons, and the JNI bridge throws for the others
   * (a flush's table file write is {@code kFlushNoWAL}, a MANIFEST write {@code kManifestWrite*})
   * before any listener code runs, printing a stack trace each time.
   *
   * <p>Callbacks run on RocksDB's threads with no lock of RocksDB held; they only set a field.
   */
  private final class ErrorListener extends AbstractEventListener {
    /** What a writer reads before it writes, so that it can tell what it changed. */
    record Snapshot(Health health, long recoveries) {}

    private volatile Snapshot state = new Snapshot(Health.OK, 0);

    ErrorListener() {
      super(
          EnabledEventCallback.ON_TABLE_FILE_CREATED,
          EnabledEventCallback.ON_ERROR_RECOVERY_COMPLETED);
    }

    Snapshot snapshot() {
      return state;
    }

    @Override
    public void onTableFileCreated(TableFileCreationInfo info) {
      Status status = info.getStatus();
      if (status == null || status.getCode() != Status.Code.IOError) {
        return; // written, or an empty flush output not kept
      }
      String what =
          (info.getReason() == TableFileCreationReason.COMPACTION ? "compaction" : "memtable flush")
              + " failed: "
              + status.getState();
      if (status.getSubCode() != Status.SubCode.NoSpace) {
        raise(state.recoveries(), Health.State.FAILED, "index stopped taking writes: " + what);
      } else if (info.getReason() == TableFileCreationReason.COMPACTION) {
        // A compaction short of space only waits for it; writes go on.
        raise(state.recoveries(), Health.State.NO_SPACE, noSpace(what) + "; writes go on");
      } else {
        raise(state.recoveries(), Health.State.NO_SPACE, noSpace(what) + writesResume());
      }
    }

    /** A write failed: what RocksDB's answer says about its state, unless it recovered since. */
    void writeFailed(Snapshot before, RocksDBException e, boolean outOfSpace) {
      Status status = e.getStatus();
      if (outOfSpace) {
        raise(
            before.recoveries(),
            Health.State.NO_SPACE,
            noSpace("write failed: " + e.getMessage()) + writesResume());
      } else if (status != null
          && (status.getCode() == Status.Code.IOError
              || status.getCode() == Status.Code.Corruption)) {
        // RocksDB stops writes after any such error of a write (paranoid_checks).
        raise(
            before.recoveries(),
            Health.State.FAILED,
            "index stopped taking writes: write failed: " + e.getMessage());
      }
    }

    /** RocksDB cleared its background error: writes work again. */
    @Override
    public synchronized void onErrorRecoveryCompleted(Status oldBackgroundError) {
      state = new Snapshot(Health.OK, state.recoveries() + 1);
    }

    /**
     * Reports the worse state, as RocksDB keeps the worse error; but not what a writer saw before
     * the latest recovery.
     */
    private synchronized void raise(long recoveriesSeen, Health.State to, String detail) {
      Snapshot now = state;
      if (now.recoveries() == recoveriesSeen && to.compareTo(now.health().state()) > 0) {
        state = new Snapshot(new Health(to, detail), now.recoveries());
      }
    }

    private String noSpace(String what) {
      return "no space left for the index in " + dir + " (" + what + ")";
    }

    private String writesResume() {
      return "; writes resume by themselves once "
          + (cfOptions.writeBufferSize() >> 20)
          + " MiB are free";
    }
  }
}
