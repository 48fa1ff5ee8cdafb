package io.peerflash.node.engine;

import io.peerflash.node.index.VolumeInfo;

/** A snapshot of one volume for status reporting. */
public record VolumeStatusView(
    VolumeInfo info,
    Health health,
    String healthDetail,
    long dirtyBytes,
    long cachedBytes,
    long oldestDirtyAgeMs,
    long corruptBlocks,
    long destagedBytes) {
  public enum Health {
    HEALTHY,
    STORAGE_FAILING,
    CORRUPT_DIRTY_DATA,
    /** The node's local flash failed an fsync: it serves nothing until restarted. */
    LOCAL_FLASH_FAILED
  }
}
