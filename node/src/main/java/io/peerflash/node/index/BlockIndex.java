package io.peerflash.node.index;

import io.peerflash.node.index.KeyValueStorage.Batch;
import io.peerflash.node.index.KeyValueStorage.Table;
import java.io.IOException;

/**
 * The durable map (volume id, block number) to {@link BlockEntry}. Changes are staged in a {@link
 * Batch} so one request's blocks commit atomically.
 */
public final class BlockIndex {
  /** Receives every stored entry during recovery. */
  public interface EntryVisitor {
    void visit(long volumeId, long block, BlockEntry entry) throws IOException;
  }

  private final KeyValueStorage kv;

  public BlockIndex(KeyValueStorage kv) {
    this.kv = kv;
  }

  static byte[] key(long volumeId, long block) {
    byte[] k = new byte[16];
    Bytes.putLong(k, 0, volumeId);
    Bytes.putLong(k, 8, block);
    return k;
  }

  public void put(Batch batch, long volumeId, long block, BlockEntry entry) {
    batch.put(Table.BLOCKS, key(volumeId, block), entry.encode());
  }

  /**
   * Moves an entry the engine must not use (e.g. a block outside its volume) aside, with the data
   * it pointed to ({@code data} null for none), so the bytes stay on record for an operator.
   */
  public void quarantine(Batch batch, long volumeId, long block, BlockEntry entry, byte[] data) {
    byte[] e = entry.encode();
    byte[] value = new byte[e.length + (data == null ? 0 : data.length)];
    System.arraycopy(e, 0, value, 0, e.length);
    if (data != null) {
      System.arraycopy(data, 0, value, e.length, data.length);
    }
    batch.put(Table.QUARANTINE, key(volumeId, block), value);
    delete(batch, volumeId, block);
  }

  public void delete(Batch batch, long volumeId, long block) {
    batch.delete(Table.BLOCKS, key(volumeId, block));
  }

  public BlockEntry get(long volumeId, long block) throws IOException {
    byte[] v = kv.get(Table.BLOCKS, key(volumeId, block));
    return v == null ? null : BlockEntry.decode(v);
  }

  /** Visits every entry of every volume, in (volume, block) order. */
  public void forEach(EntryVisitor visitor) throws IOException {
    IOException[] failure = new IOException[1];
    kv.scan(
        Table.BLOCKS,
        new byte[0],
        (k, v) -> {
          try {
            visitor.visit(Bytes.getLong(k, 0), Bytes.getLong(k, 8), BlockEntry.decode(v));
            return true;
          } catch (IOException e) {
            failure[0] = e;
            return false;
          }
        });
    if (failure[0] != null) {
      throw failure[0];
    }
  }

  /** Stages deletion of every entry of a volume. */
  public void deleteVolume(Batch batch, long volumeId) throws IOException {
    byte[] prefix = new byte[8];
    Bytes.putLong(prefix, 0, volumeId);
    kv.scan(
        Table.BLOCKS,
        prefix,
        (k, v) -> {
          batch.delete(Table.BLOCKS, k);
          return true;
        });
  }
}
