package io.peerflash.node.logging;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.turbo.TurboFilter;
import ch.qos.logback.core.spi.FilterReply;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.LongSupplier;
import org.slf4j.Marker;
import org.slf4j.MarkerFactory;

/**
 * Lets through one warning per source and window from the loggers it watches, counts the rest, and
 * says how many it held back when the next one comes through: a Raft leader whose follower is down
 * warns (with a stack trace) on every retry, several times a second, which buries everything else.
 *
 * <p>The source of a warning is its logger plus its first argument (Ratis names the link there,
 * e.g. {@code n1@group-...->n3-GrpcLogAppender}), so each down peer gets its own line. Configured
 * in logback.xml with {@code <loggerPrefix>} (repeatable) and {@code <windowMs>}.
 */
public final class RepeatedWarningFilter extends TurboFilter {
  /** Marks the filter's own summary lines, which it always lets through. */
  static final Marker SUMMARY = MarkerFactory.getMarker("peerflash-repeated-warnings");

  private static final class Window {
    long startMs;
    int heldBack;

    Window(long startMs) {
      this.startMs = startMs;
    }
  }

  private final java.util.List<String> loggerPrefixes =
      new java.util.concurrent.CopyOnWriteArrayList<>();
  private final Map<String, Window> windows = new ConcurrentHashMap<>();
  private volatile long windowMs = 30_000;
  private final LongSupplier clockMs;

  public RepeatedWarningFilter() {
    this(System::currentTimeMillis);
  }

  RepeatedWarningFilter(LongSupplier clockMs) {
    this.clockMs = clockMs;
  }

  /** A logger name prefix to watch (logback calls this once per {@code <loggerPrefix>}). */
  public void addLoggerPrefix(String prefix) {
    loggerPrefixes.add(prefix);
  }

  public void setWindowMs(long windowMs) {
    if (windowMs < 1) {
      throw new IllegalArgumentException("windowMs must be at least 1, got " + windowMs);
    }
    this.windowMs = windowMs;
  }

  @Override
  public FilterReply decide(
      Marker marker, Logger logger, Level level, String format, Object[] params, Throwable t) {
    if (marker == SUMMARY
        || level == null
        || !level.isGreaterOrEqual(Level.WARN)
        || !watched(logger.getName())) {
      return FilterReply.NEUTRAL;
    }
    String source =
        logger.getName() + "|" + (params != null && params.length > 0 ? params[0] : format);
    long now = clockMs.getAsLong();
    int heldBack;
    synchronized (this) {
      Window w = windows.get(source);
      if (w != null && now - w.startMs < windowMs) {
        w.heldBack++;
        return FilterReply.DENY;
      }
      heldBack = w == null ? 0 : w.heldBack;
      windows.put(source, new Window(now));
    }
    if (heldBack > 0) {
      logger.warn(
          SUMMARY,
          "{} more warning(s) like the next one held back in the last {} s",
          heldBack,
          windowMs / 1000);
    }
    return FilterReply.NEUTRAL;
  }

  private boolean watched(String name) {
    for (String p : loggerPrefixes) {
      if (name.startsWith(p)) {
        return true;
      }
    }
    return false;
  }
}
