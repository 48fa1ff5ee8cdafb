package io.peerflash.node.engine;

import io.peerflash.node.engine.CacheException.Reason;
import java.io.IOException;
import java.time.Instant;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Whether this node's local flash has kept its promise. A failed fsync of the cache file or a
 * failed synced index write is fatal to acknowledgement until a restart: the kernel may have
 * dropped the dirty pages the fsync was to write (and marked them clean), so a later fsync can
 * succeed while data written before the failure never reached the disk. Retrying, as PostgreSQL
 * once did ("fsyncgate"), would acknowledge writes without their data. Instead the node stops
 * acknowledging writes and copies, stops destaging (its cached data may not be what it wrote) and
 * stops renewing its cluster lease, so a replica takes its volumes over as for a dead node; a
 * restart recovers from what is on disk.
 */
final class LocalDurability {
  private static final Logger log = LoggerFactory.getLogger(LocalDurability.class);

  private volatile String failure;

  /** Records a failed fsync (the first one counts); every later check fails. */
  void failed(String what, IOException cause) {
    synchronized (this) {
      if (failure != null) {
        return;
      }
      failure =
          what
              + " failed at "
              + Instant.now()
              + ": "
              + cause.getMessage()
              + "; this node acknowledges nothing until it is restarted and recovers from what"
              + " is on disk";
    }
    log.error("local flash: {}", failure, cause);
  }

  /** Null while every fsync succeeded; otherwise what failed, and when. */
  String failure() {
    return failure;
  }

  boolean ok() {
    return failure == null;
  }

  /**
   * @throws CacheException UNAVAILABLE after a failed fsync
   */
  void check() throws CacheException {
    String f = failure;
    if (f != null) {
      throw new CacheException(Reason.UNAVAILABLE, "local flash failed: " + f);
    }
  }

  /** The failure as an IOException, for callers below the engine. */
  IOException asIoException() {
    return new IOException("local flash failed: " + failure);
  }
}
