package io.peerflash.node.nbd;

import io.peerflash.node.cluster.ClusterRouting;
import io.peerflash.node.engine.CacheEngine;
import io.peerflash.node.engine.CacheException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.function.Supplier;

/**
 * The volumes of a cluster: names and sizes from the cluster map; the I/O of a volume this node
 * owns goes to its own engine, checked against the map on every call (ownership moves).
 */
final class RoutedVolumeIo implements VolumeIo {
  private final ClusterRouting cluster;
  private final EngineVolumeIo local;

  RoutedVolumeIo(CacheEngine engine, Executor waits, ClusterRouting cluster) {
    this.cluster = cluster;
    this.local = new EngineVolumeIo(engine, waits);
  }

  @Override
  public Volume find(String name) {
    try {
      io.peerflash.proto.v1.Volume v = cluster.getVolume(name);
      return new Volume(v.getName(), v.getSizeBytes());
    } catch (CacheException | RuntimeException e) {
      return null;
    }
  }

  @Override
  public List<Volume> list() {
    List<Volume> out = new ArrayList<>();
    for (io.peerflash.proto.v1.Volume v : cluster.listVolumes()) {
      out.add(new Volume(v.getName(), v.getSizeBytes()));
    }
    return out;
  }

  private <T> CompletableFuture<T> routed(String volume, Supplier<CompletableFuture<T>> call) {
    try {
      cluster.routeIo(volume);
    } catch (RuntimeException e) {
      return CompletableFuture.failedFuture(e);
    }
    return call.get();
  }

  @Override
  public CompletableFuture<byte[]> read(String volume, long offset, int length) {
    return routed(volume, () -> local.read(volume, offset, length));
  }

  @Override
  public CompletableFuture<Void> write(String volume, long offset, ByteBuffer data) {
    return routed(volume, () -> local.write(volume, offset, data));
  }

  @Override
  public CompletableFuture<Void> zero(String volume, long offset, long length) {
    return routed(volume, () -> local.zero(volume, offset, length));
  }

  @Override
  public CompletableFuture<Void> flush(String volume) {
    return routed(volume, () -> local.flush(volume));
  }
}
