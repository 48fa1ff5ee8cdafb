package io.peerflash.node.engine;

import io.peerflash.util.Sizes;
import java.nio.file.Path;
import java.util.function.Consumer;

/**
 * The settings the cache engine and destager read, part of a node's settings ({@code
 * io.peerflash.node.NodeConfig}, which documents each key).
 */
public record EngineConfig(
    Path dataDir,
    long cacheSizeBytes,
    boolean syncWrites,
    long writeBackpressureTimeoutMs,
    double writeThrottleReserve,
    long sequentialCutoffBytes,
    double destageHighWatermark,
    double destageLowWatermark,
    long maxDirtyAgeMs,
    int destageBatchBytes,
    int destageIoDepth,
    long destageBackgroundRateBytesPerSec,
    long storageRetryInitialBackoffMs,
    long storageRetryMaxBackoffMs,
    long storageFailingAfterMs,
    long flushStorageFailureTimeoutMs,
    double volumeDirtyShare,
    int maxVolumes) {

  /**
   * Checks the settings a node may be started with (tests use smaller caches).
   *
   * @throws IllegalArgumentException naming the setting and its limit
   */
  public void validate() {
    if (cacheSizeBytes < 4 * Sizes.MIB) {
      throw new IllegalArgumentException(
          "cache-size must be at least 4MiB (got " + cacheSizeBytes + " bytes)");
    }
    if (cacheSizeBytes % 4096 != 0) {
      throw new IllegalArgumentException("cache-size must be a multiple of 4KiB");
    }
    if (!(destageLowWatermark >= 0
        && destageLowWatermark < destageHighWatermark
        && destageHighWatermark <= 1)) {
      throw new IllegalArgumentException(
          "need 0 <= destage-low-watermark < destage-high-watermark <= 1");
    }
    if (!(writeThrottleReserve >= 0 && writeThrottleReserve < 1 - destageHighWatermark)) {
      throw new IllegalArgumentException(
          "need 0 <= write-throttle-reserve < 1 - destage-high-watermark (the destager must be"
              + " flat out before writes are throttled)");
    }
    if (destageBatchBytes < 4096 || destageBatchBytes % 4096 != 0) {
      throw new IllegalArgumentException("destage-batch must be a positive multiple of 4KiB");
    }
    if (destageIoDepth < 1) {
      throw new IllegalArgumentException("destage-io-depth must be at least 1");
    }
    if (!(volumeDirtyShare > 0 && volumeDirtyShare <= 1)) {
      throw new IllegalArgumentException("need 0 < volume-dirty-share <= 1");
    }
    if (maxVolumes < 1) {
      throw new IllegalArgumentException("max-volumes must be at least 1");
    }
  }

  /** Defaults for tests: small cache, async writes, the node's defaults otherwise. */
  public static EngineConfig defaults(Path dataDir, long cacheSizeBytes) {
    return new EngineConfig(
        dataDir,
        cacheSizeBytes,
        false,
        5000,
        0.05,
        4L << 20,
        0.5,
        0.4,
        30_000,
        1 << 20,
        8,
        64L << 20,
        50,
        5000,
        10_000,
        30_000,
        0.5,
        1024);
  }

  public EngineConfig withSync(boolean sync) {
    return edit(b -> b.syncWrites = sync);
  }

  public EngineConfig withDestageBatchBytes(int bytes) {
    return edit(b -> b.destageBatchBytes = bytes);
  }

  public EngineConfig withDestageIoDepth(int depth) {
    return edit(b -> b.destageIoDepth = depth);
  }

  public EngineConfig withBackpressureTimeoutMs(long ms) {
    return edit(b -> b.writeBackpressureTimeoutMs = ms);
  }

  public EngineConfig withThrottleReserve(double reserve) {
    return edit(b -> b.writeThrottleReserve = reserve);
  }

  public EngineConfig withDestage(double high, double low, long maxDirtyAgeMs) {
    return edit(
        b -> {
          b.destageHighWatermark = high;
          b.destageLowWatermark = low;
          b.maxDirtyAgeMs = maxDirtyAgeMs;
        });
  }

  public EngineConfig withRetryBackoff(long initialMs, long maxMs) {
    return edit(
        b -> {
          b.storageRetryInitialBackoffMs = initialMs;
          b.storageRetryMaxBackoffMs = maxMs;
        });
  }

  public EngineConfig withStorageTimeouts(long failingAfterMs, long flushFailureTimeoutMs) {
    return edit(
        b -> {
          b.storageFailingAfterMs = failingAfterMs;
          b.flushStorageFailureTimeoutMs = flushFailureTimeoutMs;
        });
  }

  public EngineConfig withVolumeDirtyShare(double share) {
    return edit(b -> b.volumeDirtyShare = share);
  }

  public EngineConfig withMaxVolumes(int max) {
    return edit(b -> b.maxVolumes = max);
  }

  private EngineConfig edit(Consumer<Editable> change) {
    Editable b = new Editable(this);
    change.accept(b);
    return b.build();
  }

  /** A mutable copy, so each {@code with} method names only what it changes. */
  private static final class Editable {
    Path dataDir;
    long cacheSizeBytes;
    boolean syncWrites;
    long writeBackpressureTimeoutMs;
    double writeThrottleReserve;
    long sequentialCutoffBytes;
    double destageHighWatermark;
    double destageLowWatermark;
    long maxDirtyAgeMs;
    int destageBatchBytes;
    int destageIoDepth;
    long destageBackgroundRateBytesPerSec;
    long storageRetryInitialBackoffMs;
    long storageRetryMaxBackoffMs;
    long storageFailingAfterMs;
    long flushStorageFailureTimeoutMs;
    double volumeDirtyShare;
    int maxVolumes;

    Editable(EngineConfig c) {
      dataDir = c.dataDir;
      cacheSizeBytes = c.cacheSizeBytes;
      syncWrites = c.syncWrites;
      writeBackpressureTimeoutMs = c.writeBackpressureTimeoutMs;
      writeThrottleReserve = c.writeThrottleReserve;
      sequentialCutoffBytes = c.sequentialCutoffBytes;
      destageHighWatermark = c.destageHighWatermark;
      destageLowWatermark = c.destageLowWatermark;
      maxDirtyAgeMs = c.maxDirtyAgeMs;
      destageBatchBytes = c.destageBatchBytes;
      destageIoDepth = c.destageIoDepth;
      destageBackgroundRateBytesPerSec = c.destageBackgroundRateBytesPerSec;
      storageRetryInitialBackoffMs = c.storageRetryInitialBackoffMs;
      storageRetryMaxBackoffMs = c.storageRetryMaxBackoffMs;
      storageFailingAfterMs = c.storageFailingAfterMs;
      flushStorageFailureTimeoutMs = c.flushStorageFailureTimeoutMs;
      volumeDirtyShare = c.volumeDirtyShare;
      maxVolumes = c.maxVolumes;
    }

    EngineConfig build() {
      return new EngineConfig(
          dataDir,
          cacheSizeBytes,
          syncWrites,
          writeBackpressureTimeoutMs,
          writeThrottleReserve,
          sequentialCutoffBytes,
          destageHighWatermark,
          destageLowWatermark,
          maxDirtyAgeMs,
          destageBatchBytes,
          destageIoDepth,
          destageBackgroundRateBytesPerSec,
          storageRetryInitialBackoffMs,
          storageRetryMaxBackoffMs,
          storageFailingAfterMs,
          flushStorageFailureTimeoutMs,
          volumeDirtyShare,
          maxVolumes);
    }
  }
}
