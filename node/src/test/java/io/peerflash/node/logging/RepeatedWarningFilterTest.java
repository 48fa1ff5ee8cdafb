package io.peerflash.node.logging;

import static org.assertj.core.api.Assertions.assertThat;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class RepeatedWarningFilterTest {
  private static final String APPENDER = "org.apache.ratis.grpc.server.GrpcLogAppender";
  private static final String FORMAT =
      "{}: Follower failed (request={}, errorCount={}); keep nextIndex ({}) unchanged and retry.";

  private final AtomicLong nowMs = new AtomicLong(1_000_000);
  private LoggerContext context;
  private ListAppender<ILoggingEvent> seen;

  @BeforeEach
  void setUp() {
    context = new LoggerContext();
    RepeatedWarningFilter filter = new RepeatedWarningFilter(nowMs::get);
    filter.addLoggerPrefix("org.apache.ratis.grpc.server.");
    filter.setWindowMs(30_000);
    filter.setContext(context);
    filter.start();
    context.addTurboFilter(filter);
    seen = new ListAppender<>();
    seen.setContext(context);
    seen.start();
    Logger root = context.getLogger(Logger.ROOT_LOGGER_NAME);
    root.setLevel(Level.INFO);
    root.addAppender(seen);
  }

  private void retryFailed(String link, int errorCount) {
    context
        .getLogger(APPENDER)
        .warn(FORMAT, link, null, errorCount, 7, new RuntimeException("connection refused"));
  }

  private List<String> lines() {
    return seen.list.stream().map(ILoggingEvent::getFormattedMessage).toList();
  }

  @Test
  void theShippedLogbackXmlInstallsTheFilterForRatisAppenders() throws Exception {
    LoggerContext shipped = new LoggerContext();
    ch.qos.logback.classic.joran.JoranConfigurator joran =
        new ch.qos.logback.classic.joran.JoranConfigurator();
    joran.setContext(shipped);
    joran.doConfigure(RepeatedWarningFilterTest.class.getResource("/logback.xml"));
    assertThat(shipped.getTurboFilterList())
        .hasAtLeastOneElementOfType(RepeatedWarningFilter.class);
    ListAppender<ILoggingEvent> lines = new ListAppender<>();
    lines.setContext(shipped);
    lines.start();
    Logger root = shipped.getLogger(Logger.ROOT_LOGGER_NAME);
    root.detachAndStopAllAppenders();
    root.addAppender(lines);
    for (int i = 0; i < 50; i++) {
      shipped
          .getLogger(APPENDER)
          .warn(FORMAT, "n1->n3", null, i, 7, new RuntimeException("connection refused"));
    }
    // Fifty retries of one down peer within the 30 s window: one line.
    assertThat(lines.list).hasSize(1);
    shipped.stop();
  }

  @Test
  void oneLinePerDownPeerAndWindowThenACountOfWhatWasHeldBack() {
    for (int i = 0; i < 50; i++) {
      retryFailed("n1->n3", i);
      retryFailed("n1->n2", i);
      nowMs.addAndGet(150); // about 7 a second, as a leader retries a down follower
    }
    // 50 x 150 ms = 7.5 s: one line per peer so far.
    assertThat(lines()).hasSize(2);
    assertThat(lines().get(0)).contains("n1->n3").contains("errorCount=0");
    assertThat(lines().get(1)).contains("n1->n2");

    nowMs.addAndGet(30_000);
    retryFailed("n1->n3", 50);
    assertThat(lines())
        .hasSize(4)
        .element(2)
        .isEqualTo("49 more warning(s) like the next one held back in the last 30 s");
    assertThat(lines().get(3)).contains("n1->n3").contains("errorCount=50");
    assertThat(seen.list.get(3).getThrowableProxy()).as("the stack trace is kept").isNotNull();
  }

  @Test
  void otherLoggersAndLevelsPassUntouched() {
    Logger ours = context.getLogger("io.peerflash.replication.control.LivenessMonitor");
    for (int i = 0; i < 5; i++) {
      ours.warn("{}: marking n3 DOWN", "n1");
      context.getLogger(APPENDER).info(FORMAT, "n1->n3", null, i, 7);
    }
    assertThat(lines()).hasSize(10);
  }
}
