package io.peerflash.cli;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.encoder.PatternLayoutEncoder;
import ch.qos.logback.classic.spi.Configurator;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.ConsoleAppender;
import ch.qos.logback.core.spi.ContextAwareBase;

/**
 * Logging of a client command, set up in code: warnings and errors to stderr, library chatter off
 * (as {@link ClientLogging} then also says). Reading and acting on {@code logback.xml} costs a
 * short command a tenth of its time; a node, which logs for hours, keeps that configuration.
 *
 * <p>Found by logback through {@code META-INF/services}; it acts only when {@link PeerFlashCli}'s
 * {@code main} has set {@link #PROPERTY} for a client command before anything logs, and leaves
 * every other process (nodes, tests) to {@code logback.xml}.
 */
public final class ClientLogConfigurator extends ContextAwareBase implements Configurator {
  /** Set to {@code client} to use this configuration. */
  static final String PROPERTY = "peerflash.logging";

  @Override
  public ExecutionStatus configure(LoggerContext context) {
    if (!"client".equals(System.getProperty(PROPERTY))) {
      return ExecutionStatus.NEUTRAL;
    }
    PatternLayoutEncoder encoder = new PatternLayoutEncoder();
    encoder.setContext(context);
    encoder.setPattern("%d{yyyy-MM-dd'T'HH:mm:ss.SSSXXX} %-5level %logger{20} - %msg%n");
    encoder.start();
    ConsoleAppender<ILoggingEvent> stderr = new ConsoleAppender<>();
    stderr.setContext(context);
    stderr.setName("STDERR");
    stderr.setTarget("System.err");
    stderr.setEncoder(encoder);
    stderr.start();
    Logger root = context.getLogger(Logger.ROOT_LOGGER_NAME);
    root.setLevel(Level.WARN);
    root.addAppender(stderr);
    context.getLogger("io.grpc").setLevel(Level.OFF);
    return ExecutionStatus.DO_NOT_INVOKE_NEXT_IF_ANY;
  }
}
