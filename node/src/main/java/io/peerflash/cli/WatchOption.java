package io.peerflash.cli;

import io.peerflash.client.PeerFlashException;
import java.io.PrintStream;
import java.time.Duration;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import picocli.CommandLine.Option;

/**
 * {@code --watch [SECONDS]}: a command that prints state prints it again every SECONDS (2 when none
 * is given), each time under a line with the date and time, until Ctrl-C. A failed round (a node
 * down while it fails over, say) prints its error and the watch goes on.
 */
final class WatchOption {
  /** One round: the command's output once. */
  interface Round {
    int run();
  }

  @Option(
      names = "--watch",
      arity = "0..1",
      paramLabel = "SECONDS",
      fallbackValue = "2s",
      converter = Converters.DurationConverter.class,
      description =
          "Print it again every SECONDS (default 2; 500ms and the like also work) until Ctrl-C.")
  Duration every;

  // Tests and scripts that want a bounded watch: stop after this many rounds.
  @Option(names = "--watch-count", hidden = true, paramLabel = "N")
  int count;

  int run(PrintStream out, PrintStream err, Round round) {
    if (every == null) {
      return round.run();
    }
    int exit = PeerFlashCli.EXIT_OK;
    for (int i = 0; count <= 0 || i < count; i++) {
      if (i > 0) {
        try {
          Thread.sleep(every.toMillis());
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          return exit;
        }
        out.println();
      }
      out.println(
          "--- "
              + ZonedDateTime.now().format(DateTimeFormatter.ISO_OFFSET_DATE_TIME)
              + " (every "
              + Formats.durationMs(every.toMillis())
              + ")");
      try {
        exit = round.run();
      } catch (PeerFlashException e) {
        err.println("error: " + e.code() + ": " + e.description());
        exit = PeerFlashCli.EXIT_FAILURE;
      }
      out.flush();
    }
    return exit;
  }
}
