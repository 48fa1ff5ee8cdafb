package io.peerflash.node.logging;

import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.encoder.JsonEncoder;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.Appender;
import ch.qos.logback.core.OutputStreamAppender;
import java.util.Iterator;
import org.slf4j.LoggerFactory;

/**
 * The node process's log lines: which node wrote them (logback.xml prints the context property
 * {@value #NODE_PROPERTY} on every line, so the lines of several nodes collected in one place stay
 * apart) and, with {@code --log-json}, one JSON object per line instead of text.
 */
public final class NodeLogging {
  /** Context property that logback.xml's pattern and the JSON encoder's context carry. */
  public static final String NODE_PROPERTY = "peerflash.node";

  private NodeLogging() {}

  /** Names this process's node on every line logged from now on. */
  public static void identify(String nodeId) {
    context().ifPresent(c -> identify(c, nodeId));
  }

  static void identify(LoggerContext context, String nodeId) {
    // The context's property map is copied into each event, so every line written afterwards,
    // from any thread, carries it (an MDC value would stay with the thread that set it).
    context.putProperty(NODE_PROPERTY, nodeId);
  }

  /** Switches every appender of the root logger to JSON lines (logback's own JsonEncoder). */
  public static void useJson() {
    context().ifPresent(NodeLogging::useJson);
  }

  static void useJson(LoggerContext context) {
    ch.qos.logback.classic.Logger root = context.getLogger(org.slf4j.Logger.ROOT_LOGGER_NAME);
    for (Iterator<Appender<ILoggingEvent>> it = root.iteratorForAppenders(); it.hasNext(); ) {
      if (it.next() instanceof OutputStreamAppender<ILoggingEvent> appender) {
        JsonEncoder json = new JsonEncoder();
        json.setContext(context);
        // The message once, formatted; its template and arguments would repeat it.
        json.setWithMessage(false);
        json.setWithArguments(false);
        json.setWithFormattedMessage(true);
        json.start();
        appender.setEncoder(json);
      }
    }
  }

  private static java.util.Optional<LoggerContext> context() {
    // Another SLF4J binding (a library embedding the node) keeps its own format.
    return LoggerFactory.getILoggerFactory() instanceof LoggerContext c
        ? java.util.Optional.of(c)
        : java.util.Optional.empty();
  }
}
