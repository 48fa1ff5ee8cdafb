package io.peerflash.node.index;

import io.peerflash.node.engine.LocalStorageOpener;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;

/**
 * The real index (RocksDB underneath) with two faults: once armed, the next write whose batch puts
 * an entry into the block index fails without writing anything, as a failed index write would; and
 * while "full", every write is refused as a full file system refuses it (and health says so), until
 * space is "freed".
 */
public final class FaultyKeyValueStorage implements KeyValueStorage {
  private final KeyValueStorage delegate;
  private final AtomicBoolean armed = new AtomicBoolean();
  private final AtomicInteger failed = new AtomicInteger();
  private volatile Thread failedOn;
  private volatile boolean full;
  private final AtomicInteger refusedAsFull = new AtomicInteger();
  private final AtomicInteger writes = new AtomicInteger();
  private final java.util.concurrent.atomic.AtomicReference<Error> nextError =
      new java.util.concurrent.atomic.AtomicReference<>();

  public FaultyKeyValueStorage(KeyValueStorage delegate) {
    this.delegate = delegate;
  }

  /**
   * The real local storage (cache file and RocksDB), with the index under a {@link
   * FaultyKeyValueStorage} that {@code opened} is given each time the engine opens it.
   */
  public static LocalStorageOpener opener(Consumer<FaultyKeyValueStorage> opened) {
    return new LocalStorageOpener() {
      @Override
      public FileChannel openCacheFile(Path path) throws IOException {
        return LocalStorageOpener.REAL.openCacheFile(path);
      }

      @Override
      public KeyValueStorage openIndex(Path dir) throws IOException {
        FaultyKeyValueStorage index = new FaultyKeyValueStorage(new RocksKeyValueStorage(dir));
        opened.accept(index);
        return index;
      }
    };
  }

  /** The next write that puts a block entry fails (once). */
  public void failNextBlockPut() {
    armed.set(true);
  }

  /**
   * From now on every write fails with {@link SpaceException} and {@link #health()} reports {@link
   * Health.State#NO_SPACE}, as the real storage does on a full file system; {@code false} frees the
   * space.
   */
  public void setFull(boolean full) {
    this.full = full;
  }

  /** Writes refused as "no space" so far. */
  public int refusedAsFull() {
    return refusedAsFull.get();
  }

  /**
   * The next write, of any kind, throws {@code error} (once): a bug or a JVM failure mid-commit.
   */
  public void throwOnNextWrite(Error error) {
    nextError.set(error);
  }

  /** Writes asked of this index so far, failed ones included. */
  public int writes() {
    return writes.get();
  }

  /** Writes failed on purpose so far. */
  public int failedWrites() {
    return failed.get();
  }

  /** The thread whose write failed last (a synchronous request fails on the caller's thread). */
  public Thread failedOn() {
    return failedOn;
  }

  @Override
  public byte[] get(Table table, byte[] key) throws IOException {
    return delegate.get(table, key);
  }

  @Override
  public void write(Batch batch, boolean sync) throws IOException {
    writes.incrementAndGet();
    Error error = nextError.getAndSet(null);
    if (error != null) {
      throw error;
    }
    if (full) {
      refusedAsFull.incrementAndGet();
      throw new SpaceException("No space left on device (injected)", null);
    }
    if (putsBlockEntry(batch) && armed.compareAndSet(true, false)) {
      failed.incrementAndGet();
      failedOn = Thread.currentThread();
      throw new IOException("injected index write failure");
    }
    delegate.write(batch, sync);
  }

  private static boolean putsBlockEntry(Batch batch) {
    for (Batch.Op op : batch.ops) {
      if (op.table() == Table.BLOCKS && op.value() != null) {
        return true;
      }
    }
    return false;
  }

  @Override
  public void scan(Table table, byte[] prefix, Visitor visitor) throws IOException {
    delegate.scan(table, prefix, visitor);
  }

  @Override
  public void sync() throws IOException {
    delegate.sync();
  }

  @Override
  public void close() {
    delegate.close();
  }

  @Override
  public Health health() {
    return full
        ? new Health(Health.State.NO_SPACE, "index: no space left on device (injected)")
        : delegate.health();
  }
}
