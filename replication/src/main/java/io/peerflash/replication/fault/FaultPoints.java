package io.peerflash.replication.fault;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Named points in the code where tests inject faults: drop a message, delay it, or crash the node
 * right there (before or after a named step). Each point is hit with a key naming what passes it
 * (for messages "FROM>TO", otherwise a node or peer id), so one link or one node can be singled
 * out. With nothing armed, a hit costs one read of an empty map.
 *
 * <p>Production code never arms a point; tests do, through the node that owns this instance.
 */
public final class FaultPoints {
  /** Owner to replica: one batch of copies or releases. Key "OWNER>PEER". */
  public static final String REPLICATE_SEND = "replicate.send";

  /** A node's lease heartbeat to the Raft leader. Key: the node id. */
  public static final String LEASE_HEARTBEAT = "lease.heartbeat";

  /**
   * A node submits a command or a linearizable read to the Raft leader (cut off: it can neither
   * commit nor read). Key: node id.
   */
  public static final String RAFT_SUBMIT = "raft.submit";

  /** Re-protection copied everything and is about to commit the peer in sync. Key: the peer. */
  public static final String REPROTECT_BEFORE_IN_SYNC = "reprotect.before-in-sync";

  /** The destager wrote a batch to shared storage and is about to mark it clean. Key: volume. */
  public static final String DESTAGE_AFTER_STORAGE_WRITE = "destage.after-storage-write";

  /**
   * The destager is about to write a run of blocks to shared storage (after its last fencing
   * check); DROP fails the write as an I/O error would. Key: the volume.
   */
  public static final String DESTAGE_STORAGE_WRITE = "destage.storage-write";

  /** The leader chose a new owner and is about to commit the ChangeOwner. Key: the volume. */
  /**
   * A group commit's fsync of the cache file (key: "cache.slots"; each node has its own fault
   * points): with --sync, where writes fsync, and for every FLUSH's sync (the owner's and its
   * replicas'). DROP makes it fail as a disk would; DELAY holds the group.
   */
  public static final String LOCAL_FSYNC = "local.fsync";

  public static final String FAILOVER_BEFORE_CHANGE_OWNER = "failover.before-change-owner";

  /**
   * A replica is about to decide a request's copies (their epoch check and their store, one
   * decision). Key: the volume.
   */
  public static final String REPLICA_APPLY = "replica.apply";

  /**
   * A node is about to apply a committed map command to its replica of the map; DELAY makes its map
   * lag the leader's (as a slow follower's does). Key: the node id.
   */
  public static final String MAP_APPLY = "map.apply";

  /** What an armed point does. */
  public enum Action {
    /** The message is not sent (the caller sees it as lost: its ack times out). */
    DROP,
    /** The caller waits {@code delayMs} first. */
    DELAY,
    /** The node crashes here: the crash handler runs and the step does not happen. */
    CRASH,
    /**
     * The caller waits until the test calls {@link #releaseHolds} (at most {@code delayMs}, then it
     * goes on): for a test that must act while a step is half done.
     */
    HOLD
  }

  /** Thrown at a point armed to drop: the caller must behave as if the message were lost. */
  public static final class Dropped extends RuntimeException {
    Dropped(String point, String key) {
      super("fault point " + point + " dropped " + key, null, false, false);
    }
  }

  /** Thrown at a point armed to crash, after the crash handler started. */
  public static final class Crashed extends RuntimeException {
    Crashed(String point, String key) {
      super("fault point " + point + " crashed the node at " + key, null, false, false);
    }
  }

  private record Armed(Action action, long delayMs, AtomicLong remaining) {}

  private volatile CountDownLatch holds = new CountDownLatch(1);

  private final Map<String, Armed> armed = new ConcurrentHashMap<>();
  private final Map<String, AtomicLong> hits = new ConcurrentHashMap<>();
  private volatile Runnable crashHandler =
      () -> {
        throw new IllegalStateException("no crash handler installed");
      };

  /** What a CRASH does: a process halts; an in-process node stops abruptly. */
  public void onCrash(Runnable handler) {
    this.crashHandler = handler;
  }

  /**
   * Arms a point for a key ("*" matches every key).
   *
   * @param times how many hits it fires for (then it disarms); {@code Long.MAX_VALUE} for always
   */
  public void arm(String point, String key, Action action, long delayMs, long times) {
    armed.put(point + "|" + key, new Armed(action, delayMs, new AtomicLong(times)));
  }

  public void arm(String point, String key, Action action) {
    arm(point, key, action, 0, Long.MAX_VALUE);
  }

  public void disarm(String point, String key) {
    armed.remove(point + "|" + key);
  }

  /** Lets every caller waiting at a HOLD point go on (and later ones pass at once). */
  public void releaseHolds() {
    holds.countDown();
  }

  public void disarmAll() {
    armed.clear();
  }

  /** How often a point fired (for tests to check the fault really happened). */
  public long fired(String point) {
    AtomicLong n = hits.get(point);
    return n == null ? 0 : n.get();
  }

  /**
   * Passes a point: returns at once when nothing is armed for it.
   *
   * @throws Dropped when armed to drop
   * @throws Crashed when armed to crash (after starting the crash handler)
   */
  public void hit(String point, String key) {
    if (armed.isEmpty()) {
      return;
    }
    Armed a = armed.get(point + "|" + key);
    if (a == null) {
      a = armed.get(point + "|*");
    }
    if (a == null || a.remaining().getAndDecrement() <= 0) {
      return;
    }
    hits.computeIfAbsent(point, p -> new AtomicLong()).incrementAndGet();
    switch (a.action()) {
      case DELAY -> {
        try {
          Thread.sleep(a.delayMs());
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      }
      case HOLD -> {
        try {
          holds.await(a.delayMs(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      }
      case DROP -> throw new Dropped(point, key);
      case CRASH -> {
        Thread t = new Thread(crashHandler, "peerflash-fault-crash");
        t.setDaemon(true);
        t.start();
        throw new Crashed(point, key);
      }
    }
  }
}
