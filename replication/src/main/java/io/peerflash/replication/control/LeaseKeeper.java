package io.peerflash.replication.control;

import io.peerflash.proto.v1.CommandResult;
import io.peerflash.util.Time;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * This node's lease: the right to serve and destage the volumes it owns.
 *
 * <p>Every {@code leaseTimeoutMs / 3} it sends a Heartbeat through Raft (one at a time, blocking on
 * its own thread). When a heartbeat is committed and applied, the lease is extended to {@code (time
 * the heartbeat was SENT) + leaseTimeoutMs - clockSkewMarginMs}, by this node's monotonic clock.
 * Measuring from the send time (not the reply) makes the lease end no later than the leader can
 * believe it does: the leader applies the heartbeat after it was sent.
 *
 * <p>So a node cut off from the Raft majority (or frozen) loses its lease within {@code
 * leaseTimeoutMs - clockSkewMarginMs} of sending its last successful heartbeat, while the {@link
 * LivenessMonitor} on the leader waits {@code leaseTimeoutMs + clockSkewMarginMs} after applying it
 * before marking the node DOWN: the lease always expires first, with {@code 2 * clockSkewMarginMs}
 * to spare for clock rate differences.
 */
public final class LeaseKeeper implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(LeaseKeeper.class);

  /** Sends one Heartbeat for this node and waits for its result. */
  @FunctionalInterface
  public interface HeartbeatSender {
    CommandResult sendHeartbeat() throws Exception;
  }

  private final String nodeId;
  private final Time time;
  private final long leaseNanos;
  private final long intervalMs;
  private final HeartbeatSender sender;
  private final ScheduledExecutorService executor;
  private final Object lock = new Object();

  private boolean granted;
  private long validUntilNanos;
  private long lastSuccessSentNanos;
  private long successes;
  private long leaseStarts;
  private long failures;
  private ScheduledFuture<?> task;

  /**
   * @param executor runs the heartbeats; blocked while one is in flight, so give it its own thread
   */
  public LeaseKeeper(
      String nodeId,
      Time time,
      long leaseTimeoutMs,
      long clockSkewMarginMs,
      HeartbeatSender sender,
      ScheduledExecutorService executor) {
    if (clockSkewMarginMs < 0 || clockSkewMarginMs >= leaseTimeoutMs) {
      throw new IllegalArgumentException("need 0 <= margin < lease");
    }
    this.nodeId = nodeId;
    this.time = time;
    this.leaseNanos = TimeUnit.MILLISECONDS.toNanos(leaseTimeoutMs - clockSkewMarginMs);
    this.intervalMs = Math.max(1, leaseTimeoutMs / 3);
    this.sender = sender;
    this.executor = executor;
  }

  /** Starts heartbeating now and every {@code leaseTimeoutMs / 3}. */
  public void start() {
    synchronized (lock) {
      if (task == null) {
        task =
            executor.scheduleAtFixedRate(this::heartbeatOnce, 0, intervalMs, TimeUnit.MILLISECONDS);
      }
    }
  }

  /** Sends one heartbeat and extends the lease if it was applied. Public for tests. */
  public void heartbeatOnce() {
    long sent = time.nanoTime();
    try {
      CommandResult r = sender.sendHeartbeat();
      if (r.getOk()) {
        onHeartbeatCommitted(sent);
      } else {
        onFailure("rejected: " + r.getError() + " " + r.getMessage(), null);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (Exception e) {
      onFailure(e.toString(), e);
    }
  }

  /**
   * A heartbeat sent at {@code sentNanos} was committed: the lease lasts until then + lease. Public
   * for a caller that sends heartbeats itself and learns their results later (the simulation of
   * fencing on simulated time).
   */
  public void onHeartbeatCommitted(long sentNanos) {
    synchronized (lock) {
      if (!granted || validUntilNanos - sentNanos <= 0) {
        // A lease begins: the first, or one after the last had run out (cut off, or frozen).
        // Whatever this node read of the map before may be stale, the first time too: a node that
        // read the map and then heartbeat in vain may have been marked DOWN and lost its volumes
        // in a failover before this heartbeat brought it back UP.
        leaseStarts++;
      }
      long until = sentNanos + leaseNanos;
      if (!granted || until - validUntilNanos > 0) {
        validUntilNanos = until;
        lastSuccessSentNanos = sentNanos;
      }
      granted = true;
      successes++;
      lock.notifyAll();
    }
  }

  private void onFailure(String why, Exception e) {
    boolean valid = leaseValid();
    synchronized (lock) {
      failures++;
    }
    if (valid) {
      LOG.debug("{}: heartbeat failed ({}), lease still valid", nodeId, why);
    } else {
      LOG.debug("{}: heartbeat failed ({}), no valid lease", nodeId, why, e);
    }
  }

  /** True while this node holds a lease by its own clock. */
  public boolean leaseValid() {
    synchronized (lock) {
      return granted && validUntilNanos - time.nanoTime() > 0;
    }
  }

  /**
   * Waits until this node holds a lease, at most {@code timeoutMs}; true if it does. A node that
   * reads the map before it serves waits for the lease first: a lease that begins after the read
   * makes the read stale ({@link #leaseStarts()}).
   */
  public boolean awaitLease(long timeoutMs) throws InterruptedException {
    boolean[] timedOut = {false};
    // The deadline is this node's clock's: its timer wakes the wait when it passes.
    io.peerflash.util.Time.Timer deadline =
        time.schedule(
            timeoutMs,
            () -> {
              synchronized (lock) {
                timedOut[0] = true;
                lock.notifyAll();
              }
            });
    try {
      synchronized (lock) {
        while (!(granted && validUntilNanos - time.nanoTime() > 0)) {
          if (timedOut[0]) {
            return false;
          }
          // Woken by a committed heartbeat or the deadline; the lease is checked again on this
          // node's clock.
          lock.wait();
        }
        return true;
      }
    } finally {
      deadline.cancel();
    }
  }

  /**
   * How many times a lease began: the first time, and every time after the lease had run out. A
   * node serves only if no lease began since it last read the map linearizably, since the cluster
   * may have given its volumes away while it held none.
   */
  public long leaseStarts() {
    synchronized (lock) {
      return leaseStarts;
    }
  }

  /** End of the lease by {@link Time#nanoTime()}; meaningless until a first heartbeat succeeded. */
  public long leaseValidUntilNanos() {
    synchronized (lock) {
      return validUntilNanos;
    }
  }

  /** Send time (by {@link Time#nanoTime()}) of the heartbeat the current lease comes from. */
  public long lastSuccessfulHeartbeatSentNanos() {
    synchronized (lock) {
      return lastSuccessSentNanos;
    }
  }

  /** Milliseconds of lease left, 0 when none. */
  public long remainingMs() {
    synchronized (lock) {
      if (!granted) {
        return 0;
      }
      return Math.max(0, TimeUnit.NANOSECONDS.toMillis(validUntilNanos - time.nanoTime()));
    }
  }

  public long successfulHeartbeats() {
    synchronized (lock) {
      return successes;
    }
  }

  public long failedHeartbeats() {
    synchronized (lock) {
      return failures;
    }
  }

  /** Stops heartbeating; the lease then runs out by itself. */
  @Override
  public void close() {
    synchronized (lock) {
      if (task != null) {
        task.cancel(false);
      }
    }
  }
}
