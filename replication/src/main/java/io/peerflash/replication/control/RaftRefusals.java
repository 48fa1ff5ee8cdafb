package io.peerflash.replication.control;

import io.peerflash.security.Audit;
import io.peerflash.util.Time;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The Raft connections and calls a node refuses: each one an audit line and a count in the node's
 * refusals metric, and told to the listeners. A refused peer keeps reconnecting (Ratis retries
 * several times a second), so the same refusal (direction, stage, certificate) is one audit line
 * per {@link #REPEAT_WINDOW_MS}, which says how many times it was refused since the last line.
 */
final class RaftRefusals implements Consumer<RaftConnectionRefusal> {
  private static final Logger LOG = LoggerFactory.getLogger(RaftRefusals.class);

  /** The same refusal is logged at most once in this period; each one is counted. */
  static final long REPEAT_WINDOW_MS = TimeUnit.SECONDS.toMillis(10);

  /**
   * At most this many refusals remembered; older ones are forgotten first (see {@link #accept}).
   */
  static final int MAX_REMEMBERED = 1024;

  private static final class Seen {
    final long loggedAtNanos;
    long repeats;

    Seen(long loggedAtNanos) {
      this.loggedAtNanos = loggedAtNanos;
    }
  }

  private final String nodeId;
  private final Time time;
  private final Map<String, Seen> seen = new ConcurrentHashMap<>();
  private final java.util.concurrent.atomic.LongAdder refused =
      new java.util.concurrent.atomic.LongAdder();
  private final List<Consumer<RaftConnectionRefusal>> listeners = new CopyOnWriteArrayList<>();

  RaftRefusals(String nodeId, Time time) {
    this.nodeId = nodeId;
    this.time = time;
  }

  void addListener(Consumer<RaftConnectionRefusal> listener) {
    listeners.add(Objects.requireNonNull(listener));
  }

  void removeListener(Consumer<RaftConnectionRefusal> listener) {
    listeners.remove(listener);
  }

  /** Refusals since this node started, logged or not. */
  long refusals() {
    return refused.sum();
  }

  /**
   * Counts and reports one refusal. The key is what a line would say (direction, stage, the
   * certificate's subject); its line is written when the key was not seen in the last window, and
   * then says how many refusals the window before it held back.
   */
  @Override
  public void accept(RaftConnectionRefusal r) {
    refused.increment();
    String key = r.direction() + " " + r.stage() + " " + r.peerSubject();
    long now = time.nanoTime();
    long window = TimeUnit.MILLISECONDS.toNanos(REPEAT_WINDOW_MS);
    long[] heldBack = {-1};
    seen.compute(
        key,
        (k, s) -> {
          if (s == null || now - s.loggedAtNanos >= window) {
            heldBack[0] = s == null ? 0 : s.repeats;
            return new Seen(now);
          }
          s.repeats++;
          return s;
        });
    if (heldBack[0] >= 0) {
      Audit.refusedConnection(describe(r), r.reason() + since(heldBack[0]));
      if (seen.size() > MAX_REMEMBERED) {
        // Subjects are the caller's choice (a self-signed certificate says anything): forget the
        // refusals whose window has passed, so the map stays small.
        seen.values().removeIf(s -> now - s.loggedAtNanos >= window);
        if (seen.size() > MAX_REMEMBERED) {
          seen.clear(); // a flood of subjects: more lines, but bounded memory
        }
      }
    } else {
      Audit.refusedAgain();
      LOG.debug("{}: refused Raft peer again: {}", nodeId, r);
    }
    for (Consumer<RaftConnectionRefusal> l : listeners) {
      try {
        l.accept(r);
      } catch (RuntimeException e) {
        LOG.warn("{}: Raft refusal listener failed", nodeId, e);
      }
    }
  }

  private String describe(RaftConnectionRefusal r) {
    return nodeId
        + ": Raft "
        + (r.direction() == RaftConnectionRefusal.Direction.INBOUND ? "peer " : "server ")
        + (r.peerSubject().isEmpty() ? "(no certificate)" : r.peerSubject())
        + (r.remoteAddress().isEmpty() ? "" : " at " + r.remoteAddress())
        + (r.stage() == RaftConnectionRefusal.Stage.CALL ? " on a call" : " at the handshake");
  }

  private static String since(long repeats) {
    return repeats <= 0
        ? ""
        : " (" + repeats + " more refusal" + (repeats == 1 ? "" : "s") + " since the last line)";
  }
}
