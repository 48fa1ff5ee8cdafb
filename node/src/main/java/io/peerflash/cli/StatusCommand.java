package io.peerflash.cli;

import io.peerflash.client.PeerFlashClient;
import io.peerflash.proto.v1.ClusterMember;
import io.peerflash.proto.v1.NodeStatus;
import io.peerflash.proto.v1.Volume;
import java.io.PrintStream;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** The node's cache occupancy, hit rate, destaging and per-volume dirty state. */
@Command(
    name = "status",
    description =
        "Show the node's cache state and its volumes (the first --target that answers);"
            + " --cluster: every member at once.")
final class StatusCommand implements Callable<Integer> {
  @Mixin ClientOptions client;
  @Mixin OutputOption output;
  @Mixin WatchOption watch;

  @Option(
      names = "--cluster",
      description =
          "Every member at once, each asked itself: one line per node (state, cache, dirty, hit"
              + " rate, volumes, problems); with -o json each node's whole status.")
  boolean cluster;

  @Override
  public Integer call() {
    try (PeerFlashClient c = client.connect()) {
      return watch.run(client.cli().out(), client.cli().err(), () -> cluster ? all(c) : one(c));
    }
  }

  /** {@code status --cluster}: one line per member, asked directly. */
  private int all(PeerFlashClient c) {
    PrintStream out = client.cli().out();
    ClusterView view = ClusterView.gather(client, c);
    if (output.json()) {
      StringBuilder json = new StringBuilder("{\n\"nodes\": [");
      boolean first = true;
      for (NodeStatus n : view.nodes().values()) {
        json.append(first ? "\n" : ",\n").append(OutputOption.json(n));
        first = false;
      }
      json.append("],\n\"unanswered\": {");
      first = true;
      for (java.util.Map.Entry<String, String> e : view.unanswered().entrySet()) {
        json.append(first ? "\n" : ",\n")
            .append(Formats.jsonString(e.getKey()))
            .append(": ")
            .append(Formats.jsonString(e.getValue()));
        first = false;
      }
      out.println(json.append("}\n}"));
      return PeerFlashCli.EXIT_OK;
    }
    Table table =
        new Table("NODE", "STATE", "CACHE", "USED", "DIRTY", "HIT RATE", "VOLUMES", "PROBLEMS");
    for (ClusterMember m : view.cluster().getMembersList()) {
      String state = m.getState().name().replace("MEMBER_", "");
      if (m.getId().equals(view.cluster().getLeaderId())) {
        state += " (leader)";
      }
      NodeStatus n = view.nodes().get(m.getId());
      if (n == null) {
        String why = view.unanswered().get(m.getId());
        table.row(m.getId(), state, "-", "-", "-", "-", "-", why == null ? "-" : why);
        continue;
      }
      java.util.List<String> problems = new java.util.ArrayList<>();
      if (!n.getLocalFlashFailure().isEmpty()) {
        problems.add("local flash failed");
      }
      if (!n.getLocalIndexProblem().isEmpty()) {
        problems.add("index not writable");
      }
      if (!n.getFencedReason().isEmpty()) {
        problems.add("fenced");
      }
      if (!n.getCertificateWarning().isEmpty()) {
        problems.add("certificate");
      }
      table.row(
          m.getId(),
          state,
          Formats.size(n.getCacheSizeBytes()),
          Formats.size(n.getCacheUsedBytes()),
          Formats.size(n.getDirtyBytes()),
          Formats.percent(n.getHitRate()),
          n.getVolumesCount(),
          problems.isEmpty() ? "-" : String.join(", ", problems));
    }
    table.print(out);
    return PeerFlashCli.EXIT_OK;
  }

  private int one(PeerFlashClient c) {
    NodeStatus s = c.status();
    PrintStream out = client.cli().out();
    if (output.json()) {
      OutputOption.print(out, s);
      return PeerFlashCli.EXIT_OK;
    }
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
    if (!s.getFencedReason().isEmpty()) {
      out.println(Formats.field("FENCED", s.getFencedReason()));
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
