package io.peerflash.node.nbd;

import io.peerflash.node.engine.CacheEngine;
import io.peerflash.node.engine.CacheException;
import io.peerflash.node.index.VolumeInfo;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.function.Supplier;

/**
 * The volumes of this node's own engine: reads and writes that need no wait run on the calling
 * network thread (as for the gRPC API), everything that may wait on {@code waits}.
 */
final class EngineVolumeIo implements VolumeIo {
  private final CacheEngine engine;
  private final Executor waits;
  private final Supplier<Executor> callersLoop;

  /**
   * @param callersLoop the event loop the calling thread runs, or null: the writes it stores in one
   *     turn commit their index entries together
   */
  EngineVolumeIo(CacheEngine engine, Executor waits, Supplier<Executor> callersLoop) {
    this.engine = engine;
    this.waits = waits;
    this.callersLoop = callersLoop;
  }

  @Override
  public Volume find(String name) {
    try {
      VolumeInfo v = engine.getVolume(name);
      return new Volume(v.name(), v.sizeBytes());
    } catch (CacheException e) {
      return null;
    }
  }

  @Override
  public List<Volume> list() {
    List<Volume> out = new ArrayList<>();
    for (VolumeInfo v : engine.listVolumes()) {
      out.add(new Volume(v.name(), v.sizeBytes()));
    }
    return out;
  }

  @Override
  public CompletableFuture<byte[]> read(String volume, long offset, int length) {
    return engine.submitRead(volume, offset, length, waits);
  }

  @Override
  public CompletableFuture<Void> write(String volume, long offset, ByteBuffer data) {
    return engine
        .submitWriteOnLoop(volume, offset, data, waits, callersLoop.get())
        .thenApply(ack -> null);
  }

  @Override
  public CompletableFuture<Void> zero(String volume, long offset, long length) {
    return CompletableFuture.runAsync(() -> call(() -> engine.trim(volume, offset, length)), waits);
  }

  @Override
  public CompletableFuture<Void> flush(String volume) {
    return engine.syncVolume(volume, waits);
  }

  private interface EngineCall {
    void run() throws CacheException;
  }

  private static void call(EngineCall c) {
    try {
      c.run();
    } catch (CacheException e) {
      throw new java.util.concurrent.CompletionException(e);
    }
  }
}
