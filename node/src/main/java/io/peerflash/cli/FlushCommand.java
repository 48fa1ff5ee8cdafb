package io.peerflash.cli;

import io.peerflash.client.PeerFlashClient;
import io.peerflash.client.PeerFlashException;
import io.peerflash.proto.v1.FlushResponse;
import java.io.PrintStream;
import java.time.Duration;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Parameters;

/** Flushes a volume, with a progress bar when it takes a noticeable time. */
@Command(
    name = "flush",
    description = {
      "Wait until every write acknowledged so far is durable on shared storage.",
      "Shows progress on stderr when this takes more than a moment."
    })
final class FlushCommand implements Callable<Integer> {
  static final long QUIET_MS = 300;
  static final long POLL_INTERVAL_MS = 200;
  static final int BAR_WIDTH = 10;
  // A poll must not stall the progress display for as long as a real request may take.
  private static final Duration POLL_DEADLINE = Duration.ofSeconds(2);

  @Mixin ClientOptions client;
  @Mixin OutputOption output;

  @Parameters(index = "0", paramLabel = "NAME", description = "Volume name.")
  String name;

  @Override
  public Integer call() throws Exception {
    PeerFlashCli cli = client.cli();
    try (PeerFlashClient c = client.connect()) {
      // Read before the flush starts, so progress is measured against what the flush must write.
      long dirtyAtStartBytes = c.getVolume(name).getDirtyBytes();
      long startNanos = System.nanoTime();
      CompletableFuture<FlushResponse> result = new CompletableFuture<>();
      Thread flusher =
          new Thread(
              () -> {
                try {
                  result.complete(c.flush(name));
                } catch (Throwable e) {
                  result.completeExceptionally(e);
                }
              },
              "peerflash-cli-flush");
      flusher.setDaemon(true);
      flusher.start();
      FlushResponse response;
      try {
        response = awaitWithProgress(result, c, dirtyAtStartBytes, cli);
      } catch (ExecutionException e) {
        throw e.getCause() instanceof Exception cause ? cause : e;
      }
      long elapsedMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - startNanos);
      if (output.json()) {
        OutputOption.print(cli.out(), response);
        return PeerFlashCli.EXIT_OK;
      }
      cli.out()
          .println(
              "flushed "
                  + name
                  + ": destaged "
                  + Formats.size(response.getDestagedBytes())
                  + " in "
                  + Formats.durationMs(elapsedMs)
                  // The destager writes dirty data within max-dirty-age-ms by itself: a flush
                  // that finds nothing left has nothing to do, which is not a failure.
                  + (response.getDestagedBytes() == 0
                      ? " (nothing left for it to write: shared storage holds every acknowledged"
                          + " write)"
                      : ""));
    }
    return PeerFlashCli.EXIT_OK;
  }

  private FlushResponse awaitWithProgress(
      CompletableFuture<FlushResponse> result,
      PeerFlashClient c,
      long dirtyAtStartBytes,
      PeerFlashCli cli)
      throws InterruptedException, ExecutionException {
    try {
      return result.get(QUIET_MS, TimeUnit.MILLISECONDS);
    } catch (TimeoutException e) {
      // Slow flush: show progress.
    }
    Progress progress = new Progress(cli.err(), cli.interactive());
    PeerFlashClient poller = c.withDeadline(POLL_DEADLINE);
    long leftBytes = dirtyAtStartBytes;
    while (true) {
      try {
        leftBytes = poller.getVolume(name).getDirtyBytes();
      } catch (PeerFlashException e) {
        // A missed sample only delays the display; the flush itself reports real failures.
      }
      progress.show(progressLine(dirtyAtStartBytes, leftBytes));
      try {
        FlushResponse r = result.get(POLL_INTERVAL_MS, TimeUnit.MILLISECONDS);
        progress.show(progressLine(dirtyAtStartBytes, 0));
        progress.end();
        return r;
      } catch (ExecutionException e) {
        progress.end();
        throw e;
      } catch (TimeoutException e) {
        // Still running.
      }
    }
  }

  /** E.g. {@code [#####.....] 48% 12.0 MiB left}. */
  static String progressLine(long dirtyAtStartBytes, long leftBytes) {
    double done;
    if (dirtyAtStartBytes <= 0) {
      done = leftBytes == 0 ? 1 : 0;
    } else {
      // New writes can make the volume dirtier than at the start; that shows as no progress.
      done = Math.max(0, Math.min(1, (dirtyAtStartBytes - leftBytes) / (double) dirtyAtStartBytes));
    }
    int filled = (int) Math.round(done * BAR_WIDTH);
    int percent = (int) Math.floor(done * 100);
    return String.format(
        Locale.ROOT,
        "[%s%s] %d%% %s left",
        "#".repeat(filled),
        ".".repeat(BAR_WIDTH - filled),
        percent,
        Formats.size(leftBytes));
  }

  /**
   * Redraws one line on a terminal; elsewhere (logs, pipes) prints a line only when the text
   * changes, so a long flush does not flood the log.
   */
  static final class Progress {
    private final PrintStream err;
    private final boolean interactive;
    private String last = "";

    Progress(PrintStream err, boolean interactive) {
      this.err = err;
      this.interactive = interactive;
    }

    void show(String line) {
      if (line.equals(last)) {
        return;
      }
      if (interactive) {
        // Pad so a shorter line fully covers the previous one.
        err.print("\r" + line + " ".repeat(Math.max(0, last.length() - line.length())));
      } else {
        err.println(line);
      }
      err.flush();
      last = line;
    }

    void end() {
      if (interactive && !last.isEmpty()) {
        err.println();
      }
    }
  }
}
