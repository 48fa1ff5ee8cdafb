package io.peerflash.faults;

import static io.peerflash.faults.BlockCodec.BLOCK;

import io.peerflash.client.PeerFlashClient;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * Checks a volume after the faults have healed and the workload has stopped:
 *
 * <ol>
 *   <li>every block read through the cluster holds its last acknowledged write or a later attempted
 *       one (else an acknowledged write was <b>lost</b>), and nothing never written;
 *   <li>what was read is the model of the volume; after {@code Flush}, the volume's file on shared
 *       storage equals it byte for byte, and reading the volume again returns it unchanged.
 * </ol>
 *
 * Together with the workload's checks of reads made during the faults, this gives the summary line
 * of a scenario.
 */
public final class ConsistencyChecker {
  private static final int CHUNK = 1 << 20;

  /** The outcome of a scenario. */
  public record Report(
      String scenario,
      long acknowledged,
      long lost,
      long staleReads,
      long neverWritten,
      long sharedMismatches,
      long changedAfterFlush,
      long uncertain,
      long reads,
      long failoverMs,
      long volumeBytes,
      List<String> problems) {

    /** Whether every check passed. */
    public boolean consistent() {
      return lost == 0
          && staleReads == 0
          && neverWritten == 0
          && sharedMismatches == 0
          && changedAfterFlush == 0;
    }

    public String summary() {
      return String.format(
          "SCENARIO %-22s writes acknowledged %6d, lost %d, stale reads %d, never-written reads %d,"
              + " shared storage %s after Flush, failover %s (reads checked %d, uncertain writes"
              + " %d)",
          scenario,
          acknowledged,
          lost,
          staleReads,
          neverWritten,
          sharedMismatches == 0 && changedAfterFlush == 0
              ? "= model (" + volumeBytes / 1024 + " KiB)"
              : sharedMismatches + " blocks differ, " + changedAfterFlush + " changed",
          failoverMs < 0 ? "never (no write acknowledged after the fault)" : failoverMs + " ms",
          reads,
          uncertain);
    }
  }

  private ConsistencyChecker() {}

  /**
   * Runs the final checks. {@code faultAtNanos} is when the (first) fault was injected: the
   * failover time is the longest stretch without an acknowledged write from then on.
   */
  public static Report check(
      String scenario, DockerCluster cluster, Workload workload, long faultAtNanos) {
    workload.stop();
    List<String> problems = new ArrayList<>(workload.problems());
    for (Throwable t : workload.crashes()) {
      problems.add("workload thread failed: " + t);
    }
    long blocks = workload.blocks();
    long bytes = blocks * BLOCK;
    String volume = workload.volume();
    long lost = 0;
    long neverWritten = workload.neverWrittenReads();
    byte[] model;
    try (PeerFlashClient c = cluster.newClient(Duration.ofSeconds(30))) {
      model = readAll(c, volume, bytes);
      WriteModel writes = workload.model();
      for (long b = 0; b < blocks; b++) {
        long acked = writes.lastAcked(b);
        switch (writes.judge(b, acked, model, (int) (b * BLOCK))) {
          case STALE -> {
            lost++;
            workload.problem("acknowledged write lost", b, acked, model, (int) (b * BLOCK));
          }
          case NEVER_WRITTEN -> {
            neverWritten++;
            workload.problem(
                "final read of data never written", b, acked, model, (int) (b * BLOCK));
          }
          case OK -> {}
        }
      }
      retry("flush " + volume, Duration.ofMinutes(2), () -> c.flush(volume));
      byte[] shared = cluster.sharedFile(volume);
      long sharedMismatches = differingBlocks(model, shared, blocks);
      if (sharedMismatches > 0) {
        problems.add(
            sharedMismatches
                + " blocks of shared storage differ from the model after Flush, e.g. "
                + firstDifference(workload, model, shared, blocks));
      }
      byte[] again = readAll(c, volume, bytes);
      long changed = differingBlocks(model, again, blocks);
      if (changed > 0) {
        problems.add(changed + " blocks read differently after Flush");
      }
      problems.addAll(workload.problems().stream().filter(p -> !problems.contains(p)).toList());
      Report r =
          new Report(
              scenario,
              workload.acknowledged(),
              lost,
              workload.staleReads(),
              neverWritten,
              sharedMismatches,
              changed,
              workload.uncertain(),
              workload.reads(),
              workload.longestStallMsSince(faultAtNanos),
              bytes,
              List.copyOf(problems));
      record(r, workload);
      return r;
    } finally {
      workload.close();
    }
  }

  private static byte[] readAll(PeerFlashClient c, String volume, long bytes) {
    byte[] all = new byte[(int) bytes];
    for (long off = 0; off < bytes; off += CHUNK) {
      final long at = off;
      int len = (int) Math.min(CHUNK, bytes - off);
      byte[] part =
          retry(
              "read " + volume + " at " + off,
              Duration.ofMinutes(1),
              () -> c.read(volume, at, len));
      System.arraycopy(part, 0, all, (int) off, len);
    }
    return all;
  }

  /** Blocks of {@code a} (the model) that {@code b} does not hold identically. */
  static long differingBlocks(byte[] a, byte[] b, long blocks) {
    long n = 0;
    for (long i = 0; i < blocks; i++) {
      int from = (int) (i * BLOCK);
      int to = from + BLOCK;
      if (b.length < to || !Arrays.equals(a, from, to, b, from, to)) {
        n++;
      }
    }
    return n;
  }

  private static String firstDifference(Workload w, byte[] model, byte[] shared, long blocks) {
    for (long i = 0; i < blocks; i++) {
      int from = (int) (i * BLOCK);
      int to = from + BLOCK;
      if (shared.length < to) {
        return "file is " + shared.length + " bytes, expected " + model.length;
      }
      if (!Arrays.equals(model, from, to, shared, from, to)) {
        return "block "
            + i
            + ": model "
            + w.codec().decode(i, model, from)
            + ", shared storage "
            + w.codec().decode(i, shared, from)
            + ", last acknowledged write "
            + w.model().lastAcked(i);
      }
    }
    return "none";
  }

  /** Retries a call until it succeeds or {@code budget} has passed (the cluster is healing). */
  static <T> T retry(String what, Duration budget, Supplier<T> call) {
    long deadline = System.nanoTime() + budget.toNanos();
    while (true) {
      try {
        return call.get();
      } catch (RuntimeException e) {
        if (System.nanoTime() > deadline) {
          throw new IllegalStateException(what + " failed for " + budget, e);
        }
        DockerCluster.sleep(500);
      }
    }
  }

  private static void record(Report r, Workload w) {
    String line = r.summary();
    System.out.println(line);
    System.out.println(
        "  write attempts failed "
            + w.failedAttempts()
            + " "
            + w.errors()
            + ", reads failed "
            + w.failedReads()
            + ", longest write call "
            + w.longestWriteCallMs()
            + " ms");
    w.errorSamples().forEach(e -> System.out.println("  write error: " + e));
    r.problems().forEach(p -> System.out.println("  " + p));
    Path summary =
        Path.of(System.getProperty("peerflash.log.dir", "target/container-logs"))
            .resolveSibling("fault-summary.txt");
    try {
      Files.createDirectories(summary.getParent());
      Files.writeString(summary, line + "\n", StandardOpenOption.CREATE, StandardOpenOption.APPEND);
    } catch (IOException ignored) {
      // the line is in the test output as well
    }
  }

  /** Milliseconds since {@code nanoTime}. */
  public static long msSince(long nanoTime) {
    return TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - nanoTime);
  }
}
