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
 * Checks every volume of a workload after the faults have healed and the workload has stopped:
 *
 * <ol>
 *   <li>the whole volume is read through the cluster and judged by the volume's {@link WriteModel}
 *       as one more read: no block older than its last acknowledged write (else an acknowledged
 *       write was <b>lost</b>), none older than a version an earlier read returned (a
 *       <b>time-travel</b> read), nothing never written, and, as no write is in flight any more,
 *       every write whole or absent: a write found on one block and older data on another of its
 *       blocks is <b>torn</b> (so is one any read during the faults saw in part);
 *   <li>what was read is the model of the volume; after {@code Flush}, the volume's file on shared
 *       storage equals it byte for byte, and reading the volume again returns it unchanged.
 * </ol>
 *
 * Together with the workload's checks of reads made during the faults, this gives the summary line
 * of a scenario.
 */
public final class ConsistencyChecker {
  private static final int CHUNK = 1 << 20;

  /** The outcome of a scenario, summed over its volumes. */
  public record Report(
      String scenario,
      int volumes,
      long acknowledged,
      long acknowledgedMultiBlock,
      long lost,
      long tornWrites,
      long staleReads,
      long timeTravelReads,
      long neverWritten,
      long sharedMismatches,
      long changedAfterFlush,
      long maybeApplied,
      long reads,
      long failoverMs,
      long worstFailoverMs,
      long volumeBytes,
      List<String> problems) {

    /** Whether every check passed. */
    public boolean consistent() {
      return lost == 0
          && tornWrites == 0
          && staleReads == 0
          && timeTravelReads == 0
          && neverWritten == 0
          && sharedMismatches == 0
          && changedAfterFlush == 0;
    }

    public String summary() {
      return String.format(
          "SCENARIO %-22s volumes %d, writes acknowledged %6d (%d multi-block), lost %d, torn"
              + " writes %d, stale reads %d, time-travel reads %d, never-written reads %d, shared"
              + " storage %s after Flush, failover %s (reads checked %d, maybe-applied writes %d)",
          scenario,
          volumes,
          acknowledged,
          acknowledgedMultiBlock,
          lost,
          tornWrites,
          staleReads,
          timeTravelReads,
          neverWritten,
          sharedMismatches == 0 && changedAfterFlush == 0
              ? "= model (" + volumeBytes / 1024 + " KiB)"
              : sharedMismatches + " blocks differ, " + changedAfterFlush + " changed",
          failoverMs < 0 ? "never (no write acknowledged after the fault)" : failoverMs + " ms",
          reads,
          maybeApplied);
    }
  }

  private ConsistencyChecker() {}

  /**
   * Runs the final checks on every volume. {@code faultAtNanos} is when the (first) fault was
   * injected: a volume's failover time is the longest stretch without an acknowledged write from
   * then on; the report's is the first volume's (the one the faults aim at).
   */
  public static Report check(
      String scenario, DockerCluster cluster, Workload workload, long faultAtNanos) {
    workload.stop();
    List<String> problems = new ArrayList<>();
    for (Throwable t : workload.crashes()) {
      problems.add("workload thread failed: " + t);
    }
    long acknowledged = 0;
    long multiBlock = 0;
    long lost = 0;
    long torn = 0;
    long stale = 0;
    long timeTravel = 0;
    long neverWritten = 0;
    long sharedMismatches = 0;
    long changed = 0;
    long maybeApplied = 0;
    long reads = 0;
    long bytes = 0;
    long worstFailover = 0;
    List<String> details = new ArrayList<>();
    try (PeerFlashClient c = cluster.newClient(Duration.ofSeconds(30))) {
      for (Workload.VolumeLoad v : workload.volumes()) {
        long blocks = v.blocks();
        long volumeBytes = blocks * BLOCK;
        String volume = v.name();
        WriteModel model = v.model();
        WriteModel.ReadStart start = model.startRead(0, (int) blocks, System.nanoTime());
        byte[] image = readAll(c, volume, volumeBytes);
        WriteModel.ReadCheck fin = model.check(start, image, System.nanoTime());
        for (WriteModel.Finding f : fin.findings()) {
          v.problem(
              f.verdict() == WriteModel.Verdict.STALE ? "acknowledged write lost" : "final read",
              f);
        }
        lost += fin.count(WriteModel.Verdict.STALE);
        timeTravel += v.timeTravelReads() + fin.count(WriteModel.Verdict.TIME_TRAVEL);
        neverWritten += v.neverWrittenReads() + fin.count(WriteModel.Verdict.NEVER_WRITTEN);
        torn += model.tornWrites().size();
        stale += v.staleReads();
        retry("flush " + volume, Duration.ofMinutes(2), () -> c.flush(volume));
        byte[] shared = cluster.sharedFile(volume);
        long mismatches = differingBlocks(image, shared, blocks);
        if (mismatches > 0) {
          problems.add(
              mismatches
                  + " blocks of shared storage of "
                  + volume
                  + " differ from the model after Flush, e.g. "
                  + firstDifference(v, image, shared, blocks));
        }
        sharedMismatches += mismatches;
        byte[] again = readAll(c, volume, volumeBytes);
        long changedBlocks = differingBlocks(image, again, blocks);
        if (changedBlocks > 0) {
          problems.add(changedBlocks + " blocks of " + volume + " read differently after Flush");
        }
        changed += changedBlocks;
        acknowledged += v.acknowledged();
        multiBlock += v.acknowledgedMultiBlock();
        maybeApplied += v.maybeApplied();
        reads += v.reads();
        bytes += volumeBytes;
        long failover = v.longestStallMsSince(faultAtNanos);
        worstFailover = failover < 0 || worstFailover < 0 ? -1 : Math.max(worstFailover, failover);
        details.add(
            String.format(
                "  volume %s: %d KiB, writes acknowledged %d (%d multi-block), maybe applied %d (%d"
                    + " of them seen by a read), writes in all %d, reads checked %d (failed %d), final read saw %d distinct"
                    + " writes, failover %d ms",
                volume,
                volumeBytes / 1024,
                v.acknowledged(),
                v.acknowledgedMultiBlock(),
                v.maybeApplied(),
                model.failedButSeen(),
                model.writes(),
                v.reads(),
                v.failedReads(),
                fin.distinctWrites(),
                failover));
      }
      problems.addAll(workload.problems());
      Report r =
          new Report(
              scenario,
              workload.volumes().size(),
              acknowledged,
              multiBlock,
              lost,
              torn,
              stale,
              timeTravel,
              neverWritten,
              sharedMismatches,
              changed,
              maybeApplied,
              reads,
              workload.primary().longestStallMsSince(faultAtNanos),
              worstFailover,
              bytes,
              List.copyOf(problems));
      record(r, workload, details);
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

  private static String firstDifference(
      Workload.VolumeLoad v, byte[] model, byte[] shared, long blocks) {
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
            + v.codec().decode(i, model, from)
            + ", shared storage "
            + v.codec().decode(i, shared, from)
            + ", last acknowledged write "
            + v.model().lastAcked(i);
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

  private static void record(Report r, Workload w, List<String> details) {
    String line = r.summary();
    System.out.println(line);
    details.forEach(System.out::println);
    System.out.println(
        "  failed write calls "
            + w.errors()
            + ", longest write call "
            + w.longestWriteCallMs()
            + " ms, worst failover over the volumes "
            + r.worstFailoverMs()
            + " ms");
    w.errorSamples().forEach(e -> System.out.println("  write error: " + e));
    r.problems().forEach(p -> System.out.println("  " + p));
    appendSummary(line);
  }

  /** Appends one line to the run's summary of every scenario (target/fault-summary.txt). */
  public static void appendSummary(String line) {
    Path summary =
        Path.of(System.getProperty("peerflash.log.dir", "target/container-logs"))
            .resolveSibling("fault-summary.txt");
    try {
      Files.createDirectories(summary.getParent());
      Files.writeString(
          summary,
          line + "\n",
          java.nio.charset.StandardCharsets.UTF_8,
          StandardOpenOption.CREATE,
          StandardOpenOption.APPEND);
    } catch (IOException ignored) {
      // the line is in the test output as well
    }
  }

  /** Milliseconds since {@code nanoTime}. */
  public static long msSince(long nanoTime) {
    return TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - nanoTime);
  }
}
