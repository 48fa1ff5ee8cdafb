package io.peerflash.security;

import io.peerflash.util.Texts;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The audit log: one line for every refused request and every administrative action, naming who
 * (from the certificate), what, and which volume or node. Logged under {@code peerflash.audit}, so
 * it can be routed to a file of its own.
 */
public final class Audit {
  private static final Logger log = LoggerFactory.getLogger("peerflash.audit");

  private static final java.util.concurrent.atomic.LongAdder REFUSALS =
      new java.util.concurrent.atomic.LongAdder();

  private Audit() {}

  /** Requests refused in this process since it started (for the node's metrics). */
  public static long refusals() {
    return REFUSALS.sum();
  }

  /** A request refused: who asked, for what, and why not. */
  public static void refused(Identity who, String action, String target, String why) {
    REFUSALS.increment();
    log.warn(
        "refused {} {}{}: {}",
        who == null ? "an unauthenticated caller" : who.describe(),
        action,
        target == null || target.isEmpty() ? "" : " " + Texts.quote(target),
        why);
  }

  /**
   * A connection or call refused for its certificate before any request was read (at the TLS
   * handshake, or a call on a connection whose certificate is no longer accepted): what was refused
   * (e.g. "TLS client", or a Raft peer with its address) and why, naming the certificate.
   */
  public static void refusedConnection(String what, String why) {
    REFUSALS.increment();
    log.warn("refused {}: {}", what, why);
  }

  /**
   * A refusal counted but not logged: a repeat of one logged moments ago (a peer that reconnects
   * several times a second), summed up in the next line logged for it.
   */
  public static void refusedAgain() {
    REFUSALS.increment();
  }

  /**
   * An administrative action that was carried out or failed.
   *
   * @param onBehalfOf the client a forwarding node acted for, or null
   * @param outcome OK, or the status code it ended with
   */
  public static void action(
      Identity who, String onBehalfOf, String action, String target, String outcome) {
    log.info(
        "{}{} {}{}: {}",
        who == null ? "an unauthenticated caller" : who.describe(),
        onBehalfOf == null || onBehalfOf.isEmpty() ? "" : " for " + Texts.quote(onBehalfOf),
        action,
        target == null || target.isEmpty() ? "" : " " + Texts.quote(target),
        outcome);
  }
}
