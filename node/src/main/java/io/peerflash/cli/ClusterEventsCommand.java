package io.peerflash.cli;

import io.peerflash.client.PeerFlashClient;
import io.peerflash.proto.v1.ClusterEvent;
import io.peerflash.proto.v1.ListClusterEventsRequest;
import io.peerflash.proto.v1.ListClusterEventsResponse;
import java.io.PrintStream;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneId;
import java.time.format.DateTimeFormatter;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code peerflash cluster events}: the cluster's event history, one line per event (time, kind,
 * volume or member, epoch, what happened and why), oldest first; {@code --follow} keeps printing
 * new ones.
 */
@Command(
    name = "events",
    description = {
      "The cluster's event history, oldest first: failovers (with the epoch that fences the old"
          + " owner), members going DOWN and UP, re-protection, moves, drains, membership and"
          + " policy changes. Every node keeps the same last 1,000 events."
    })
final class ClusterEventsCommand implements Callable<Integer> {
  private static final DateTimeFormatter TIME =
      DateTimeFormatter.ofPattern("yyyy-MM-dd'T'HH:mm:ss.SSSXXX");

  @Mixin ClientOptions client;
  @Mixin OutputOption output;

  @Option(names = "--volume", paramLabel = "NAME", description = "Only events of this volume.")
  String volume = "";

  @Option(names = "--node", paramLabel = "ID", description = "Only events of this member.")
  String node = "";

  @Option(
      names = {"-n", "--limit"},
      paramLabel = "N",
      description = "Only the N most recent events (default: every event kept).")
  int limit;

  @Option(
      names = {"-f", "--follow"},
      description = "After the history, print new events as they happen, until Ctrl-C.")
  boolean follow;

  @Option(
      names = "--poll",
      paramLabel = "DURATION",
      defaultValue = "1s",
      converter = Converters.DurationConverter.class,
      description = "With --follow: how often to ask for new events (default 1s).")
  Duration poll;

  // Tests and scripts that want a bounded follow: stop after this many polls.
  @Option(names = "--follow-polls", hidden = true, paramLabel = "N")
  int followPolls;

  @Override
  public Integer call() {
    if (limit < 0) {
      client.cli().err().println("error: --limit must be at least 0, got " + limit);
      return PeerFlashCli.EXIT_USAGE;
    }
    PrintStream out = client.cli().out();
    try (PeerFlashClient c = client.connect()) {
      ListClusterEventsRequest.Builder request =
          ListClusterEventsRequest.newBuilder().setVolume(volume).setNode(node).setLimit(limit);
      ListClusterEventsResponse page = c.clusterEvents(request.build());
      if (!follow && output.json()) {
        OutputOption.print(out, page);
        return PeerFlashCli.EXIT_OK;
      }
      if (!follow && page.getEventsCount() == 0) {
        out.println("no events" + (volume.isEmpty() && node.isEmpty() ? "" : " match"));
        return PeerFlashCli.EXIT_OK;
      }
      print(out, page);
      long after = page.getLastSeq();
      for (int i = 0; follow && (followPolls <= 0 || i < followPolls); i++) {
        try {
          Thread.sleep(poll.toMillis());
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          break;
        }
        page = c.clusterEvents(request.setAfterSeq(after).setLimit(0).build());
        print(out, page);
        after = Math.max(after, page.getLastSeq());
      }
    }
    return PeerFlashCli.EXIT_OK;
  }

  private void print(PrintStream out, ListClusterEventsResponse page) {
    for (ClusterEvent e : page.getEventsList()) {
      out.println(output.json() ? OutputOption.json(e).replaceAll("\\s*\\n\\s*", " ") : line(e));
    }
    out.flush();
  }

  /** One event: time, seq, kind, the volume or member, its epoch, and what happened. */
  static String line(ClusterEvent e) {
    String time =
        e.getTimeMs() == 0
            ? "(time unknown)"
            : TIME.format(Instant.ofEpochMilli(e.getTimeMs()).atZone(ZoneId.systemDefault()));
    String subject =
        !e.getVolume().isEmpty()
            ? "volume " + e.getVolume() + " epoch " + e.getEpoch()
            : "member " + e.getNode();
    return time
        + " #"
        + e.getSeq()
        + " "
        + e.getKind().name().replace("EVENT_", "")
        + " "
        + subject
        + ": "
        + e.getDetail()
        + (e.getProposedBy().isEmpty() ? "" : " (by " + e.getProposedBy() + ")");
  }
}
