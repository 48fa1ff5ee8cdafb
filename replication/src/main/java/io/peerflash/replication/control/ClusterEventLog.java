package io.peerflash.replication.control;

import io.peerflash.proto.v1.ClusterEvent;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * The most recent cluster events, numbered in the order they happened: the state machine appends
 * the events of each applied command (so every node keeps the same history) and writes them into
 * its snapshots, so the history survives restarts and log compaction.
 */
public final class ClusterEventLog {
  /** Events kept by default; older ones are dropped first. */
  public static final int DEFAULT_CAPACITY = 1000;

  private final int capacity;
  private final ArrayDeque<ClusterEvent> events;
  private long nextSeq = 1;

  public ClusterEventLog(int capacity) {
    if (capacity <= 0) {
      throw new IllegalArgumentException("capacity must be positive, got " + capacity);
    }
    this.capacity = capacity;
    this.events = new ArrayDeque<>(Math.min(capacity, 64));
  }

  /** Numbers and keeps {@code fresh} (in order), dropping the oldest beyond the capacity. */
  public synchronized void append(List<ClusterEvent> fresh) {
    for (ClusterEvent e : fresh) {
      events.addLast(e.toBuilder().setSeq(nextSeq++).build());
      if (events.size() > capacity) {
        events.removeFirst();
      }
    }
  }

  /**
   * Events with a seq above {@code afterSeq}, of {@code volume} and {@code node} when not empty,
   * oldest first; at most {@code limit} of them (the most recent ones; 0: no limit); with the seq
   * of the newest event at the same instant, so a reader following the history misses none.
   */
  public synchronized Page page(long afterSeq, String volume, String node, int limit) {
    return new Page(list(afterSeq, volume, node, limit), lastSeq());
  }

  /** Some events and the seq of the newest one kept when they were read. */
  public record Page(List<ClusterEvent> events, long lastSeq) {}

  /** As {@link #page}, the events only. */
  public synchronized List<ClusterEvent> list(
      long afterSeq, String volume, String node, int limit) {
    List<ClusterEvent> out = new ArrayList<>();
    for (ClusterEvent e : events) {
      if (e.getSeq() > afterSeq
          && (volume.isEmpty() || volume.equals(e.getVolume()))
          && (node.isEmpty() || node.equals(e.getNode()))) {
        out.add(e);
      }
    }
    if (limit > 0 && out.size() > limit) {
      return List.copyOf(out.subList(out.size() - limit, out.size()));
    }
    return Collections.unmodifiableList(out);
  }

  /** The seq of the newest event (0: none yet). */
  public synchronized long lastSeq() {
    return nextSeq - 1;
  }

  /** Every kept event, oldest first, and the seq the next one gets: what a snapshot holds. */
  public synchronized Saved save() {
    return new Saved(List.copyOf(events), nextSeq);
  }

  /** Replaces the history with a snapshot's (at start, and when the leader sent a snapshot). */
  public synchronized void restore(List<ClusterEvent> saved, long savedNextSeq) {
    events.clear();
    int skip = Math.max(0, saved.size() - capacity);
    events.addAll(saved.subList(skip, saved.size()));
    long newest = saved.isEmpty() ? 0 : saved.get(saved.size() - 1).getSeq();
    nextSeq = Math.max(Math.max(1, savedNextSeq), newest + 1);
  }

  /** A copy of the history for a snapshot. */
  public record Saved(List<ClusterEvent> events, long nextSeq) {}
}
