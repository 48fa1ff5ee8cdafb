package io.peerflash.replication.control;

import static org.assertj.core.api.Assertions.assertThat;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import io.peerflash.replication.control.RaftConnectionRefusal.Direction;
import io.peerflash.replication.control.RaftConnectionRefusal.Stage;
import io.peerflash.security.Audit;
import io.peerflash.util.ManualTime;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.slf4j.LoggerFactory;

/**
 * Every refused Raft connection is counted and told to the listeners; the audit log gets one line
 * per refusal and peer in each window, the next line saying how many it left out.
 */
class RaftRefusalsTest {
  private final ListAppender<ILoggingEvent> audit = new ListAppender<>();
  private final ManualTime time = new ManualTime();

  @BeforeEach
  void listen() {
    audit.start();
    ((Logger) LoggerFactory.getLogger("peerflash.audit")).addAppender(audit);
  }

  @AfterEach
  void stop() {
    ((Logger) LoggerFactory.getLogger("peerflash.audit")).detachAppender(audit);
  }

  private static RaftConnectionRefusal fromN9() {
    return new RaftConnectionRefusal(
        Direction.INBOUND,
        Stage.HANDSHAKE,
        "CN=n9,O=peerflash-node",
        "n9",
        "127.0.0.1:40001",
        "node 'n9' is not in the Raft configuration");
  }

  /** This test's lines (another test's leftover threads may log refusals of their own). */
  private List<String> lines() {
    return audit.list.stream()
        .map(ILoggingEvent::getFormattedMessage)
        .filter(l -> l.startsWith("refused n1: Raft"))
        .toList();
  }

  @Test
  void aPeerThatKeepsReconnectingIsOneAuditLinePerWindowAndEveryRefusalIsCounted() {
    RaftRefusals refusals = new RaftRefusals("n1", time);
    List<RaftConnectionRefusal> told = new ArrayList<>();
    refusals.addListener(told::add);
    long counted0 = Audit.refusals();

    for (int i = 0; i < 5; i++) {
      refusals.accept(fromN9());
      time.advanceMs(100);
    }
    assertThat(lines())
        .containsExactly(
            "refused n1: Raft peer CN=n9,O=peerflash-node at 127.0.0.1:40001 at the handshake:"
                + " node 'n9' is not in the Raft configuration");
    assertThat(told).hasSize(5);
    assertThat(refusals.refusals()).isEqualTo(5);
    assertThat(Audit.refusals() - counted0)
        .as("in the node's refusals metric")
        .isGreaterThanOrEqualTo(5);

    // A different peer is a line of its own at once.
    refusals.accept(
        new RaftConnectionRefusal(
            Direction.INBOUND, Stage.CALL, "", "", "", "no client certificate"));
    assertThat(lines()).hasSize(2);
    assertThat(lines().get(1))
        .isEqualTo("refused n1: Raft peer (no certificate) on a call: no client certificate");

    // After the window, the same peer again: one line, saying how many were left out.
    time.advanceMs(RaftRefusals.REPEAT_WINDOW_MS);
    refusals.accept(fromN9());
    assertThat(lines()).hasSize(3);
    assertThat(lines().get(2)).endsWith("(4 more refusals since the last line)");
    assertThat(refusals.refusals()).isEqualTo(7);
    assertThat(Audit.refusals() - counted0).isGreaterThanOrEqualTo(7);
    assertThat(told).hasSize(7);
  }
}
