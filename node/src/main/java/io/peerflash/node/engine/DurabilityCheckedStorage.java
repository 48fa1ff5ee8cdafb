package io.peerflash.node.engine;

import io.peerflash.node.index.KeyValueStorage;
import java.io.IOException;

/**
 * The index as the engine uses it: a failed synced write or sync is recorded as fatal ({@link
 * LocalDurability}), and after one every write is refused (reads still work, for status).
 */
final class DurabilityCheckedStorage implements KeyValueStorage {
  private final KeyValueStorage delegate;
  private final LocalDurability durability;

  DurabilityCheckedStorage(KeyValueStorage delegate, LocalDurability durability) {
    this.delegate = delegate;
    this.durability = durability;
  }

  @Override
  public byte[] get(Table table, byte[] key) throws IOException {
    return delegate.get(table, key);
  }

  @Override
  public void write(Batch batch, boolean sync) throws IOException {
    if (!durability.ok()) {
      throw durability.asIoException();
    }
    try {
      delegate.write(batch, sync);
    } catch (IOException e) {
      if (sync && !KeyValueStorage.wroteNothing(e)) {
        durability.failed("a synced write of the index", e);
      }
      throw e;
    }
  }

  @Override
  public void scan(Table table, byte[] prefix, Visitor visitor) throws IOException {
    delegate.scan(table, prefix, visitor);
  }

  @Override
  public void sync() throws IOException {
    if (!durability.ok()) {
      throw durability.asIoException();
    }
    try {
      delegate.sync();
    } catch (IOException e) {
      durability.failed("a sync of the index log", e);
      throw e;
    }
  }

  @Override
  public Health health() {
    return delegate.health();
  }

  @Override
  public void close() {
    delegate.close();
  }
}
