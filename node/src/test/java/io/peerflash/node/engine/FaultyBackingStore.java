package io.peerflash.node.engine;

import io.peerflash.node.storage.BackingStore;
import io.peerflash.node.storage.ForwardingBackingStore;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Test-only decorator: fails writes and/or syncs on demand (all of them, or only writes touching
 * one byte range), can hold writes or let them through one at a time, and counts the writes in
 * flight at once.
 */
final class FaultyBackingStore extends ForwardingBackingStore {
  volatile boolean failWrites;
  volatile boolean failSyncs;
  volatile boolean failReads;

  /** Writes overlapping [badFrom, badTo) of {@link #badVolume} fail; badTo 0 means none. */
  volatile String badVolume;

  volatile long badFrom;
  volatile long badTo;

  /** While set, data writes wait (up to 30 s) until it is cleared. */
  volatile boolean holdWrites;

  final AtomicInteger failedWrites = new AtomicInteger();
  final AtomicInteger failedSyncs = new AtomicInteger();
  final AtomicInteger heldWrites = new AtomicInteger();

  /**
   * While set, each data write waits (counted in flight) for a permit of its own: the test lets
   * writes through one at a time and sees how many the engine has started at once.
   */
  volatile Semaphore writeGate;

  final AtomicInteger writesInFlight = new AtomicInteger();
  final AtomicInteger maxWritesInFlight = new AtomicInteger();
  final AtomicInteger writesDone = new AtomicInteger();

  FaultyBackingStore(BackingStore delegate) {
    super(delegate);
  }

  void failRange(String volume, long from, long to) {
    badVolume = volume;
    badFrom = from;
    badTo = to;
  }

  void heal() {
    failWrites = false;
    failSyncs = false;
    failReads = false;
    badTo = 0;
    badVolume = null;
  }

  private void checkWrite(String volume, long offset, long length) throws IOException {
    if (holdWrites) {
      heldWrites.incrementAndGet();
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
      while (holdWrites && System.nanoTime() < deadline) {
        try {
          Thread.sleep(2);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new IOException("interrupted while held");
        }
      }
    }
    if (failWrites) {
      failedWrites.incrementAndGet();
      throw new IOException("injected write failure");
    }
    long to = badTo;
    if (to > 0 && volume.equals(badVolume) && offset < to && offset + length > badFrom) {
      failedWrites.incrementAndGet();
      throw new IOException("injected bad-range write failure at " + offset);
    }
  }

  @Override
  public void read(String volume, long offset, ByteBuffer dst) throws IOException {
    if (failReads) {
      throw new IOException("injected read failure");
    }
    delegate.read(volume, offset, dst);
  }

  /** One data write, counted while in flight. */
  private interface WriteOp {
    void run() throws IOException;
  }

  private void tracked(WriteOp op) throws IOException {
    int now = writesInFlight.incrementAndGet();
    maxWritesInFlight.accumulateAndGet(now, Math::max);
    try {
      Semaphore gate = writeGate;
      if (gate != null && !gate.tryAcquire(30, TimeUnit.SECONDS)) {
        throw new IOException("write gate stayed shut for 30 s");
      }
      op.run();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("interrupted at the write gate");
    } finally {
      writesInFlight.decrementAndGet();
      writesDone.incrementAndGet();
    }
  }

  @Override
  public void write(String volume, long offset, ByteBuffer src) throws IOException {
    checkWrite(volume, offset, src.remaining());
    tracked(() -> delegate.write(volume, offset, src));
  }

  @Override
  public void writeZeros(String volume, long offset, long length) throws IOException {
    checkWrite(volume, offset, length);
    tracked(() -> delegate.writeZeros(volume, offset, length));
  }

  @Override
  public void sync(String volume) throws IOException {
    if (failSyncs) {
      failedSyncs.incrementAndGet();
      throw new IOException("injected sync failure");
    }
    delegate.sync(volume);
  }
}
