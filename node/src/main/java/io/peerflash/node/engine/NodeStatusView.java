package io.peerflash.node.engine;

import java.util.List;

/**
 * A snapshot of the node's cache for status reporting.
 *
 * @param localFailure null, or why this node acknowledges nothing until restarted (a failed fsync
 *     of its local flash)
 * @param indexProblem null while the index takes writes; otherwise why not (e.g. no space)
 */
public record NodeStatusView(
    long cacheSizeBytes,
    long cacheUsedBytes,
    long dirtyBytes,
    long readHits,
    long readMisses,
    boolean syncWrites,
    long destagedBytes,
    long evictedBlocks,
    long backpressureWaits,
    long backpressureRejections,
    long commitGroups,
    long commitBatches,
    List<VolumeStatusView> volumes,
    String localFailure,
    String indexProblem) {}
