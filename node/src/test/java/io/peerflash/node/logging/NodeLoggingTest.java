package io.peerflash.node.logging;

import static org.assertj.core.api.Assertions.assertThat;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.joran.JoranConfigurator;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.classic.spi.LoggingEvent;
import ch.qos.logback.core.OutputStreamAppender;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The node's own logback.xml, loaded into a context of its own; lines made by its encoder. */
class NodeLoggingTest {
  private static final String STAMP =
      "\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\\.\\d{3}(Z|[+-]\\d{2}:\\d{2})";

  private LoggerContext context;

  @BeforeEach
  void setUp() throws Exception {
    context = new LoggerContext();
    // The SLF4J provider gives the process's context one; a context made here needs its own.
    context.setMDCAdapter(new ch.qos.logback.classic.util.LogbackMDCAdapter());
    JoranConfigurator configurator = new JoranConfigurator();
    configurator.setContext(context);
    configurator.doConfigure(NodeLogging.class.getResource("/logback.xml"));
  }

  @SuppressWarnings("unchecked")
  private String line(Level level, String format, Object... args) {
    var appender =
        (OutputStreamAppender<ILoggingEvent>)
            context.getLogger(org.slf4j.Logger.ROOT_LOGGER_NAME).getAppender("STDERR");
    LoggingEvent event =
        new LoggingEvent(
            NodeLoggingTest.class.getName(),
            context.getLogger("io.peerflash.x"),
            level,
            format,
            null,
            args);
    return new String(appender.getEncoder().encode(event), StandardCharsets.UTF_8).strip();
  }

  @Test
  void everyLineCarriesDateZoneAndNodeId() {
    assertThat(line(Level.INFO, "before the node is known"))
        .matches(STAMP + " INFO  - \\[.*\\] .* - before the node is known");

    NodeLogging.identify(context, "n7");

    assertThat(line(Level.WARN, "volume {} failed over", "vm1"))
        .matches(STAMP + " WARN  n7 \\[.*\\] .* - volume vm1 failed over");
  }

  @Test
  void jsonLinesNameTheNode() {
    NodeLogging.identify(context, "n2");
    NodeLogging.useJson(context);

    String line = line(Level.INFO, "volume {} failed over", "vm1");

    assertThat(line).startsWith("{").endsWith("}").doesNotContain("\n");
    assertThat(line)
        .contains("\"level\":\"INFO\"")
        .contains("\"loggerName\":\"io.peerflash.x\"")
        .contains("\"peerflash.node\":\"n2\"")
        .contains("\"formattedMessage\":\"volume vm1 failed over\"")
        .containsPattern("\"timestamp\":\\d+");
  }
}
