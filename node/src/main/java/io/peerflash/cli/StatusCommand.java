package io.peerflash.cli;

import io.peerflash.client.PeerFlashClient;
import io.peerflash.proto.v1.NodeStatus;
import io.peerflash.proto.v1.Volume;
import java.io.PrintStream;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;

/** The node's cache occupancy, hit rate, destaging and per-volume dirty state. */
@Command(name = "status", description = "Show the node's cache state and its volumes.")
final class StatusCommand implements Callable<Integer> {
  @Mixin ClientOptions client;

  @Override
  public Integer call() {
    NodeStatus s;
    try (PeerFlashClient c = client.connect()) {
      s = c.status();
    }
    PrintStream out = client.cli().out();
    double usedFraction =
        s.getCacheSizeBytes() == 0 ? 0 : s.getCacheUsedBytes() / (double) s.getCacheSizeBytes();
    out.println(Formats.field("node", s.getNodeId()));
    if (!s.getLocalFlashFailure().isEmpty()) {
      out.println(Formats.field("LOCAL FLASH FAILED", s.getLocalFlashFailure()));
    }
    if (!s.getCertificateWarning().isEmpty()) {
      out.println(Formats.field("CERTIFICATE", s.getCertificateWarning()));
    }
    if (!s.getLocalIndexProblem().isEmpty()) {
      out.println(Formats.field("index not writable", s.getLocalIndexProblem()));
    }
    out.println(
        Formats.field(
            "cache",
            Formats.size(s.getCacheSizeBytes())
                + ", "
                + Formats.size(s.getCacheUsedBytes())
                + " used ("
                + Formats.percent(usedFraction)
                + "), "
                + Formats.size(s.getDirtyBytes())
                + " dirty"));
    out.println(
        Formats.field(
            "read hit rate",
            Formats.percent(s.getHitRate())
                + " ("
                + s.getReadHits()
                + " hits, "
                + s.getReadMisses()
                + " misses)"));
    out.println(Formats.field("sync writes", s.getSyncWrites() ? "on" : "off"));
    out.println(Formats.field("destaged", Formats.size(s.getDestagedBytes())));
    out.println(Formats.field("evicted blocks", s.getEvictedBlocks()));
    out.println(
        Formats.field(
            "backpressure",
            s.getBackpressureWaits() + " waits, " + s.getBackpressureRejections() + " rejections"));
    out.println();
    if (s.getVolumesCount() == 0) {
      out.println("no volumes");
      return PeerFlashCli.EXIT_OK;
    }
    Table table = new Table("VOLUME", "MODE", "STATE", "DIRTY", "CACHED", "OLDEST DIRTY");
    for (Volume v : s.getVolumesList()) {
      table.row(
          v.getName(),
          Formats.mode(v.getPolicy().getMode()),
          v.getState(),
          Formats.size(v.getDirtyBytes()),
          Formats.size(v.getCachedBytes()),
          v.getOldestDirtyAgeMs() == 0 ? "-" : Formats.durationMs(v.getOldestDirtyAgeMs()));
    }
    table.print(out);
    return PeerFlashCli.EXIT_OK;
  }
}
