package io.peerflash.node.storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.locks.LockSupport;

/**
 * Adds a fixed latency to every data operation, to emulate a SAN or NFS in tests and benchmarks.
 */
public final class LatencyInjectingBackingStore extends ForwardingBackingStore {
  private final long latencyNanos;

  public LatencyInjectingBackingStore(BackingStore delegate, long latencyMicros) {
    super(delegate);
    this.latencyNanos = latencyMicros * 1000;
  }

  private void delay() {
    long deadline = System.nanoTime() + latencyNanos;
    for (long left = latencyNanos; left > 0; left = deadline - System.nanoTime()) {
      LockSupport.parkNanos(left);
    }
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
}
