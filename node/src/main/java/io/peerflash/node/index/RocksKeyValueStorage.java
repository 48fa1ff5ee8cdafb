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
import org.rocksdb.ColumnFamilyDescriptor;
import org.rocksdb.ColumnFamilyHandle;
import org.rocksdb.ColumnFamilyOptions;
import org.rocksdb.DBOptions;
import org.rocksdb.ReadOptions;
import org.rocksdb.RocksDB;
import org.rocksdb.RocksDBException;
import org.rocksdb.RocksIterator;
import org.rocksdb.WriteBatch;
import org.rocksdb.WriteOptions;

/**
 * {@link KeyValueStorage} on RocksDB: one column family per table. The only class that sees
 * RocksDB.
 */
public final class RocksKeyValueStorage implements KeyValueStorage {
  static {
    RocksDB.loadLibrary();
  }

  private final DBOptions dbOptions;
  private final ColumnFamilyOptions cfOptions;
  private final RocksDB db;
  private final Map<Table, ColumnFamilyHandle> handles = new EnumMap<>(Table.class);
  private final List<ColumnFamilyHandle> allHandles = new ArrayList<>();
  private final WriteOptions syncWrite = new WriteOptions().setSync(true);
  private final WriteOptions asyncWrite = new WriteOptions().setSync(false);
  private final ReadOptions readOptions = new ReadOptions();

  public RocksKeyValueStorage(Path dir) throws IOException {
    Files.createDirectories(dir);
    dbOptions =
        new DBOptions()
            .setCreateIfMissing(true)
            .setCreateMissingColumnFamilies(true)
            // Small metadata: keep background work and memory modest on small machines.
            .setMaxBackgroundJobs(2)
            // Flushes and compactions write their files back 1 MiB at a time as they go, not
            // all at the end: a burst of writeback delays the cache's own writes on the same disk.
            .setBytesPerSync(1L << 20)
            .setKeepLogFileNum(4);
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
      throw new IOException("cannot open index at " + dir + ": " + e.getMessage(), e);
    }
    for (Table t : Table.values()) {
      handles.put(t, allHandles.get(t.ordinal() + 1));
    }
  }

  @Override
  public byte[] get(Table table, byte[] key) throws IOException {
    try {
      return db.get(handles.get(table), readOptions, key);
    } catch (RocksDBException e) {
      throw new IOException("index read failed: " + e.getMessage(), e);
    }
  }

  @Override
  public void write(Batch batch, boolean sync) throws IOException {
    if (batch.isEmpty()) {
      return;
    }
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
      throw new IOException("index write failed: " + e.getMessage(), e);
    }
  }

  @Override
  public void scan(Table table, byte[] prefix, Visitor visitor) throws IOException {
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
    try {
      db.syncWal();
    } catch (RocksDBException e) {
      throw new IOException("index sync failed: " + e.getMessage(), e);
    }
  }

  @Override
  public void close() {
    for (ColumnFamilyHandle h : allHandles) {
      h.close();
    }
    db.close();
    syncWrite.close();
    asyncWrite.close();
    readOptions.close();
    dbOptions.close();
    cfOptions.close();
  }
}
