package io.peerflash.node.engine;

import io.peerflash.node.NodeConfig;
import java.nio.file.Path;

/** The settings the cache engine and destager read; see {@link NodeConfig} for their meaning. */
public record EngineConfig(
    Path dataDir,
    long cacheSizeBytes,
    boolean syncWrites,
    long writeBackpressureTimeoutMs,
    long sequentialCutoffBytes,
    double destageHighWatermark,
    double destageLowWatermark,
    long maxDirtyAgeMs,
    int destageBatchBytes,
    long destageBackgroundRateBytesPerSec,
    long storageRetryInitialBackoffMs,
    long storageRetryMaxBackoffMs,
    long storageFailingAfterMs,
    long flushStorageFailureTimeoutMs) {

  public static EngineConfig from(NodeConfig c) {
    return new EngineConfig(
        c.dataDir(),
        c.cacheSizeBytes(),
        c.syncWrites(),
        c.writeBackpressureTimeoutMs(),
        c.sequentialCutoffBytes(),
        c.destageHighWatermark(),
        c.destageLowWatermark(),
        c.maxDirtyAgeMs(),
        c.destageBatchBytes(),
        c.destageBackgroundRateBytesPerSec(),
        c.storageRetryInitialBackoffMs(),
        c.storageRetryMaxBackoffMs(),
        c.storageFailingAfterMs(),
        c.flushStorageFailureTimeoutMs());
  }

  /** Defaults for tests: small cache, async writes. */
  public static EngineConfig defaults(Path dataDir, long cacheSizeBytes) {
    return new EngineConfig(
        dataDir,
        cacheSizeBytes,
        false,
        5000,
        4L << 20,
        0.5,
        0.4,
        30_000,
        1 << 20,
        64L << 20,
        50,
        5000,
        10_000,
        30_000);
  }

  public EngineConfig withSync(boolean sync) {
    return new EngineConfig(
        dataDir,
        cacheSizeBytes,
        sync,
        writeBackpressureTimeoutMs,
        sequentialCutoffBytes,
        destageHighWatermark,
        destageLowWatermark,
        maxDirtyAgeMs,
        destageBatchBytes,
        destageBackgroundRateBytesPerSec,
        storageRetryInitialBackoffMs,
        storageRetryMaxBackoffMs,
        storageFailingAfterMs,
        flushStorageFailureTimeoutMs);
  }

  public EngineConfig withBackpressureTimeoutMs(long ms) {
    return new EngineConfig(
        dataDir,
        cacheSizeBytes,
        syncWrites,
        ms,
        sequentialCutoffBytes,
        destageHighWatermark,
        destageLowWatermark,
        maxDirtyAgeMs,
        destageBatchBytes,
        destageBackgroundRateBytesPerSec,
        storageRetryInitialBackoffMs,
        storageRetryMaxBackoffMs,
        storageFailingAfterMs,
        flushStorageFailureTimeoutMs);
  }

  public EngineConfig withDestage(double high, double low, long maxDirtyAgeMs) {
    return new EngineConfig(
        dataDir,
        cacheSizeBytes,
        syncWrites,
        writeBackpressureTimeoutMs,
        sequentialCutoffBytes,
        high,
        low,
        maxDirtyAgeMs,
        destageBatchBytes,
        destageBackgroundRateBytesPerSec,
        storageRetryInitialBackoffMs,
        storageRetryMaxBackoffMs,
        storageFailingAfterMs,
        flushStorageFailureTimeoutMs);
  }

  public EngineConfig withStorageTimeouts(long failingAfterMs, long flushFailureTimeoutMs) {
    return new EngineConfig(
        dataDir,
        cacheSizeBytes,
        syncWrites,
        writeBackpressureTimeoutMs,
        sequentialCutoffBytes,
        destageHighWatermark,
        destageLowWatermark,
        maxDirtyAgeMs,
        destageBatchBytes,
        destageBackgroundRateBytesPerSec,
        storageRetryInitialBackoffMs,
        storageRetryMaxBackoffMs,
        failingAfterMs,
        flushFailureTimeoutMs);
  }
}
