package io.peerflash.node.storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.locks.LockSupport;

/**
 * Adds a fixed latency to every data operation, to emulate a SAN or NFS in tests and benchmarks.
 */
public final class LatencyInjectingBackingStore implements BackingStore {
  private final BackingStore delegate;
  private final long latencyNanos;

  public LatencyInjectingBackingStore(BackingStore delegate, long latencyMicros) {
    this.delegate = delegate;
    this.latencyNanos = latencyMicros * 1000;
  }

  private void delay() {
    long deadline = System.nanoTime() + latencyNanos;
    for (long left = latencyNanos; left > 0; left = deadline - System.nanoTime()) {
      LockSupport.parkNanos(left);
    }
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
  public java.util.List<Long> retired() throws IOException {
    return delegate.retired();
  }

  @Override
  public void read(String volume, long offset, ByteBuffer dst) throws IOException {
    delay();
    delegate.read(volume, offset, dst);
  }

  @Override
  public void write(String volume, long offset, ByteBuffer src) throws IOException {
    delay();
    delegate.write(volume, offset, src);
  }

  @Override
  public void writeZeros(String volume, long offset, long length) throws IOException {
    delay();
    delegate.writeZeros(volume, offset, length);
  }

  @Override
  public void sync(String volume) throws IOException {
    delay();
    delegate.sync(volume);
  }

  @Override
  public void close() {
    delegate.close();
  }
}
