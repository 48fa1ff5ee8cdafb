package io.peerflash.node.storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;

/**
 * A {@link BackingStore} that passes every call to another one: the base of decorators that change
 * a few operations (added latency, injected faults) and leave the rest alone.
 */
public abstract class ForwardingBackingStore implements BackingStore {
  protected final BackingStore delegate;

  protected ForwardingBackingStore(BackingStore delegate) {
    this.delegate = delegate;
  }

  @Override
  public void create(String volume, long sizeBytes) throws IOException {
    delegate.create(volume, sizeBytes);
  }

  @Override
  public long size(String volume) throws IOException {
    return delegate.size(volume);
  }

  @Override
  public boolean exists(String volume) throws IOException {
    return delegate.exists(volume);
  }

  @Override
  public void delete(String volume) throws IOException {
    delegate.delete(volume);
  }

  @Override
  public void extend(String volume, long sizeBytes) throws IOException {
    delegate.extend(volume, sizeBytes);
  }

  @Override
  public long maxObjectBytes() throws IOException {
    return delegate.maxObjectBytes();
  }

  @Override
  public String describe(String volume) {
    return delegate.describe(volume);
  }

  @Override
  public void retire(String volume, long volumeId) throws IOException {
    delegate.retire(volume, volumeId);
  }

  @Override
  public void purgeRetired(long volumeId) throws IOException {
    delegate.purgeRetired(volumeId);
  }

  @Override
  public List<Long> retired() throws IOException {
    return delegate.retired();
  }

  @Override
  public void read(String volume, long offset, ByteBuffer dst) throws IOException {
    delegate.read(volume, offset, dst);
  }

  @Override
  public void write(String volume, long offset, ByteBuffer src) throws IOException {
    delegate.write(volume, offset, src);
  }

  @Override
  public void writeZeros(String volume, long offset, long length) throws IOException {
    delegate.writeZeros(volume, offset, length);
  }

  @Override
  public void sync(String volume) throws IOException {
    delegate.sync(volume);
  }

  @Override
  public void close() {
    delegate.close();
  }
}
