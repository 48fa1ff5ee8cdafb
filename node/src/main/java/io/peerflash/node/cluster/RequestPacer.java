package io.peerflash.node.cluster;

import io.peerflash.util.Time;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Paces a map request a node makes on its own about one volume (ask for replicas, clear them).
 *
 * <p>The first request for a situation goes at once; the same request for the same situation again
 * only after {@code retryMs}, so a request the map cannot grant (no free peer) is not resent on
 * every map change. A different situation (the volume's record changed: a policy change, a move,
 * another epoch) or a different request is due at once: a user who changes a volume's policy twice
 * in a row must not wait out the pause the first change started.
 */
final class RequestPacer {
  /** The last request made for a volume: what, about which situation, and when. */
  private record Attempt(String request, Object situation, long atMs) {}

  private final Time time;
  private final long retryMs;
  private final Map<String, Attempt> last = new ConcurrentHashMap<>();

  RequestPacer(Time time, long retryMs) {
    this.time = time;
    this.retryMs = retryMs;
  }

  /**
   * Whether {@code request} for {@code volume} in {@code situation} may be made now; if so, it is
   * recorded as made now.
   */
  boolean due(String volume, String request, Object situation) {
    long now = time.nowMs();
    Attempt previous = last.get(volume);
    if (previous != null
        && previous.request().equals(request)
        && previous.situation().equals(situation)
        && now - previous.atMs() < retryMs) {
      return false;
    }
    last.put(volume, new Attempt(request, situation, now));
    return true;
  }

  /**
   * Tells the pacer the volume's situation as the node sees it now, whether or not it asks for
   * anything: a situation that changed since the last request was made is a new one even if it
   * changes back (a policy raised, lowered and raised again is asked for at once, not after the
   * pause the first ask started).
   */
  void seen(String volume, Object situation) {
    Attempt previous = last.get(volume);
    if (previous != null && !previous.situation().equals(situation)) {
      last.remove(volume, previous);
    }
  }

  /** How long until the same request for the same situation is due again; 0 if it is due now. */
  long msUntilDue(String volume) {
    Attempt previous = last.get(volume);
    return previous == null ? 0 : Math.max(0, previous.atMs() + retryMs - time.nowMs());
  }

  /** Forgets every volume but these (the others were deleted or are no longer owned here). */
  void retainOnly(Set<String> volumes) {
    last.keySet().retainAll(volumes);
  }
}
