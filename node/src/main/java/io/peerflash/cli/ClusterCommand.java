package io.peerflash.cli;

import io.peerflash.client.PeerFlashClient;
import io.peerflash.client.PeerFlashException;
import io.peerflash.node.health.ClusterHealth;
import io.peerflash.proto.v1.AddNodeResponse;
import io.peerflash.proto.v1.ClusterMember;
import io.peerflash.proto.v1.ClusterStatus;
import io.peerflash.proto.v1.ClusterVolume;
import io.peerflash.proto.v1.DrainNodeResponse;
import io.peerflash.proto.v1.RemoveNodeResponse;
import io.peerflash.proto.v1.Volume;
import java.io.PrintStream;
import java.time.Duration;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** The cluster: members, leader, and per volume its owner, epoch, replicas and dirty data. */
@Command(
    name = "cluster",
    description = "Inspect the cluster, drain and remove a node, add a node.")
final class ClusterCommand {
  static final long DRAIN_POLL_MS = 500;
  // How often a running drain re-reads the map to say what it waits for.
  static final long BLOCKER_CHECK_NANOS = 2_000_000_000L;

  @Command(
      name = "status",
      description =
          "Members and their state, the Raft leader, and per volume the owner, epoch, replicas,"
              + " dirty bytes and data at risk.")
  static final class Status implements Callable<Integer> {
    @Mixin ClientOptions client;
    @Mixin OutputOption output;

    @Mixin WatchOption watch;

    @Override
    public Integer call() {
      return watch.run(client.cli().out(), client.cli().err(), this::once);
    }

    private int once() {
      PrintStream out = client.cli().out();
      try (PeerFlashClient c = client.connect()) {
        ClusterStatus s = c.clusterStatus();
        if (output.json()) {
          OutputOption.print(out, s);
          return PeerFlashCli.EXIT_OK;
        }
        out.println(Formats.field("answered by", s.getAnsweredBy()));
        out.println(
            Formats.field("leader", s.getLeaderId().isEmpty() ? "(none)" : s.getLeaderId()));
        out.println();
        Table members = new Table("MEMBER", "STATE", "ADDRESS", "RAFT", "FAULT DOMAIN");
        for (ClusterMember m : s.getMembersList()) {
          members.row(
              m.getId(),
              m.getState().name().replace("MEMBER_", ""),
              m.getGrpcAddress(),
              m.getRaftAddress(),
              m.getFaultDomain().isEmpty() ? "-" : m.getFaultDomain());
        }
        members.print(out);
        out.println();
        if (s.getVolumesCount() == 0) {
          out.println("no volumes");
          return PeerFlashCli.EXIT_OK;
        }
        Table volumes =
            new Table("VOLUME", "OWNER", "EPOCH", "REPLICAS", "WANTED", "DIRTY", "AT RISK", "LAG");
        for (ClusterVolume v : s.getVolumesList()) {
          String dirty = "?";
          long dirtyBytes = -1;
          long atRiskBytes = -1;
          String lag = "?";
          try {
            Volume vol = c.getVolume(v.getName()); // answered by the owner
            dirtyBytes = vol.getDirtyBytes();
            atRiskBytes = vol.getAtRiskBytes();
            lag =
                vol.getReplicasCount() == 0
                    ? "-"
                    : vol.getReplicasList().stream().mapToLong(r -> r.getLagMs()).max().getAsLong()
                        + " ms";
            dirty = Formats.size(dirtyBytes);
          } catch (PeerFlashException e) {
            dirty = "? (" + e.code() + ")";
          }
          boolean fewer = v.getReplicaSetCount() < v.getRequestedReplicas();
          // Fewer replicas than wanted: dirty data written before has fewer copies than asked
          // for until the owner has destaged it (it does so at once; new writes go through).
          String atRisk = atRiskBytes < 0 ? "?" : Formats.size(atRiskBytes);
          String replicas = String.join(",", v.getReplicaSetList());
          if (v.getSyncingCount() > 0) {
            replicas +=
                (replicas.isEmpty() ? "" : ",")
                    + String.join(",", v.getSyncingList())
                    + " (filling)";
          }
          volumes.row(
              v.getName(),
              v.getOwner(),
              v.getEpoch(),
              replicas.isEmpty() ? "-" : replicas,
              v.getRequestedReplicas() + (fewer ? " (degraded)" : ""),
              dirty,
              atRisk,
              lag);
        }
        volumes.print(out);
      }
      return PeerFlashCli.EXIT_OK;
    }
  }

  @Command(
      name = "health",
      description = {
        "The cluster's health in one line, HEALTH_OK, HEALTH_WARN or HEALTH_ERR, then one line per"
            + " reason (errors first): members down or draining, an even number of Raft voters,"
            + " and every volume that is not HEALTHY with its state and why.",
        "It asks one node for the cluster map and every live member for its own status."
      })
  static final class Health implements Callable<Integer> {
    @Mixin ClientOptions client;
    @Mixin OutputOption output;

    @Mixin WatchOption watch;

    @Override
    public Integer call() {
      return watch.run(client.cli().out(), client.cli().err(), this::once);
    }

    private int once() {
      PrintStream out = client.cli().out();
      ClusterView view;
      try (PeerFlashClient c = client.connect()) {
        view = ClusterView.gather(client, c);
      }
      ClusterHealth.Report report =
          ClusterHealth.summarize(view.cluster(), view.nodes(), view.unanswered());
      if (output.json()) {
        StringBuilder json = new StringBuilder();
        json.append("{\n  \"health\": \"").append(report.level()).append("\",\n  \"reasons\": [");
        for (int i = 0; i < report.reasons().size(); i++) {
          ClusterHealth.Reason r = report.reasons().get(i);
          json.append(i == 0 ? "\n" : ",\n")
              .append("    {\"level\": \"")
              .append(r.level())
              .append("\", \"reason\": ")
              .append(Formats.jsonString(r.text()))
              .append("}");
        }
        json.append(report.reasons().isEmpty() ? "]\n}" : "\n  ]\n}");
        out.println(json);
        return PeerFlashCli.EXIT_OK;
      }
      out.println(report.level());
      for (ClusterHealth.Reason r : report.reasons()) {
        out.println(
            "  "
                + (r.level() == ClusterHealth.Level.HEALTH_ERR ? "ERR " : "WARN")
                + " "
                + r.text());
      }
      return PeerFlashCli.EXIT_OK;
    }
  }

  @Command(
      name = "drain",
      description = {
        "Empty a node so it can be stopped: it takes no new placements, moves the volumes it owns"
            + " to other nodes, and owners replace it as a replica. Waits until it holds nothing,"
            + " then removes it from the cluster map and the Raft group.",
        "Shows progress on stderr."
      })
  static final class Drain implements Callable<Integer> {
    @Mixin ClientOptions client;
    @Mixin OutputOption output;

    @Parameters(index = "0", paramLabel = "NODE", description = "Id of the node to drain.")
    String node;

    @Option(
        names = "--timeout",
        paramLabel = "DURATION",
        defaultValue = "10m",
        converter = Converters.DurationConverter.class,
        description = "Give up waiting after this long (default: 10m); the node stays DRAINING.")
    Duration timeout;

    @Option(
        names = "--cancel",
        description =
            "Cancel a drain of NODE (one that gave up at its timeout, or one running in another"
                + " terminal): it is UP again and takes placements; what it moved stays moved.")
    boolean cancel;

    @Option(
        names = "--force",
        description =
            "Start the drain even when the cluster map shows it cannot finish (it then waits for"
                + " a node to be added or a policy to change, up to --timeout).")
    boolean force;

    @Override
    public Integer call() throws InterruptedException {
      PeerFlashCli cli = client.cli();
      long deadline = System.nanoTime() + timeout.toNanos();
      try (PeerFlashClient c = client.connect()) {
        if (cancel) {
          DrainNodeResponse r = c.cancelDrain(node);
          if (output.json()) {
            OutputOption.print(cli.out(), r);
            return PeerFlashCli.EXIT_OK;
          }
          cli.out()
              .println(
                  "drain of "
                      + node
                      + " cancelled: it is "
                      + r.getMember().getState().name().replace("MEMBER_", "")
                      + "; "
                      + progressLine(r).replaceFirst("^draining [^:]*: ", ""));
          return PeerFlashCli.EXIT_OK;
        }
        ClusterStatus before = c.clusterStatus();
        if (before.getMembersList().stream().noneMatch(m -> m.getId().equals(node))) {
          throw new PeerFlashException(
              io.grpc.Status.NOT_FOUND.withDescription(
                  "node "
                      + node
                      + " is not a member of the cluster (members: "
                      + String.join(
                          ", ", before.getMembersList().stream().map(m -> m.getId()).toList())
                      + ")"));
        }
        java.util.List<String> blockers = DrainPlan.blockers(before, node);
        if (!blockers.isEmpty() && !force) {
          // Nothing changed yet: the node is not DRAINING.
          throw new PeerFlashException(
              io.grpc.Status.FAILED_PRECONDITION.withDescription(
                  "cannot drain "
                      + node
                      + ": "
                      + String.join("; ", blockers)
                      + " (nothing was changed; --force starts the drain anyway)"));
        }
        String even = DrainPlan.evenVotersWarning(before, node);
        if (even != null) {
          cli.err().println("warning: " + even);
        }
        DrainNodeResponse r = c.drainNode(node);
        FlushCommand.Progress progress = new FlushCommand.Progress(cli.err(), cli.interactive());
        long lastCheckNanos = System.nanoTime();
        while (r.getOwnedVolumesCount() > 0 || r.getReplicaOfCount() > 0) {
          if (System.nanoTime() - lastCheckNanos > BLOCKER_CHECK_NANOS) {
            lastCheckNanos = System.nanoTime();
            try {
              blockers = DrainPlan.blockers(c.clusterStatus(), node);
            } catch (PeerFlashException e) {
              // A missed look at the map only delays the display.
            }
          }
          progress.show(
              progressLine(r)
                  + (blockers.isEmpty() ? "" : "; waiting: " + String.join("; ", blockers)));
          if (System.nanoTime() > deadline) {
            progress.end();
            throw new PeerFlashException(
                io.grpc.Status.DEADLINE_EXCEEDED.withDescription(
                    "node "
                        + node
                        + " still owns "
                        + r.getOwnedVolumesList()
                        + " and holds replicas of "
                        + r.getReplicaOfList()
                        + " after "
                        + Formats.durationMs(timeout.toMillis())
                        + " (--timeout)"
                        + (blockers.isEmpty() ? "" : ", waiting: " + String.join("; ", blockers))
                        + "; it stays DRAINING: run the drain again to keep waiting"));
          }
          Thread.sleep(DRAIN_POLL_MS);
          try {
            r = c.drainNode(node);
          } catch (PeerFlashException e) {
            if (e.code() != io.grpc.Status.Code.UNAVAILABLE
                && e.code() != io.grpc.Status.Code.DEADLINE_EXCEEDED) {
              throw e;
            }
            // A missed poll (leader change, say) only delays the display; keep waiting.
          }
        }
        progress.show(progressLine(r));
        progress.end();
        RemoveNodeResponse removed = c.removeNode(node);
        if (output.json()) {
          OutputOption.print(cli.out(), removed);
          return PeerFlashCli.EXIT_OK;
        }
        cli.out()
            .println(
                "node "
                    + node
                    + " is drained and removed from the cluster map and the Raft group (voters: "
                    + String.join(", ", removed.getVotersList())
                    + "); it can be stopped now");
      }
      return PeerFlashCli.EXIT_OK;
    }

    /** E.g. {@code draining n2: owns 1 volume (vm1), replica of 2 volumes (a, b)}. */
    static String progressLine(DrainNodeResponse r) {
      return "draining "
          + r.getMember().getId()
          + ": owns "
          + count(r.getOwnedVolumesList())
          + ", replica of "
          + count(r.getReplicaOfList());
    }

    private static String count(java.util.List<String> volumes) {
      return volumes.isEmpty()
          ? "no volume"
          : volumes.size()
              + (volumes.size() == 1 ? " volume (" : " volumes (")
              + String.join(", ", volumes)
              + ")";
    }
  }

  @Command(
      name = "remove-node",
      description = {
        "Remove a member that is gone for good (DOWN) or drained (DRAINING, holding nothing) from"
            + " the cluster map and the Raft group. A member that still owns volumes or holds"
            + " copies is refused with what it holds: drain it (cluster drain) while it runs."
      })
  static final class RemoveNode implements Callable<Integer> {
    @Mixin ClientOptions client;
    @Mixin OutputOption output;

    @Parameters(index = "0", paramLabel = "NODE", description = "Id of the member to remove.")
    String node;

    @Override
    public Integer call() {
      PeerFlashCli cli = client.cli();
      try (PeerFlashClient c = client.connect()) {
        ClusterStatus before = c.clusterStatus();
        String even = DrainPlan.evenVotersWarning(before, node);
        RemoveNodeResponse removed = c.removeNode(node);
        if (even != null) {
          cli.err().println("warning: " + even);
        }
        if (output.json()) {
          OutputOption.print(cli.out(), removed);
          return PeerFlashCli.EXIT_OK;
        }
        cli.out()
            .println(
                "node "
                    + node
                    + " removed from the cluster map and the Raft group (voters: "
                    + String.join(", ", removed.getVotersList())
                    + ")");
      }
      return PeerFlashCli.EXIT_OK;
    }
  }

  @Command(
      name = "add-node",
      description = {
        "Add a running node to the cluster as a Raft voter. Start it first with --peers naming the"
            + " current voters (not itself); once added it registers and takes placements."
      })
  static final class AddNode implements Callable<Integer> {
    @Mixin ClientOptions client;
    @Mixin OutputOption output;

    @Parameters(index = "0", paramLabel = "ID", description = "Id of the new node (its --id).")
    String node;

    @Option(
        names = "--raft",
        required = true,
        paramLabel = "HOST:PORT",
        description = "Address of the new node's Raft server (its --raft).")
    String raft;

    @Option(
        names = "--timeout",
        paramLabel = "DURATION",
        defaultValue = "60s",
        converter = Converters.DurationConverter.class,
        description = "Give up after this long (default: 60s).")
    Duration timeout;

    @Override
    public Integer call() {
      AddNodeResponse r;
      try (PeerFlashClient c = client.connect()) {
        r = c.addNode(node, raft, timeout);
      }
      if (output.json()) {
        OutputOption.print(client.cli().out(), r);
        return PeerFlashCli.EXIT_OK;
      }
      client
          .cli()
          .out()
          .println(
              "added node "
                  + node
                  + " (raft "
                  + raft
                  + "): "
                  + r.getMember().getState().name().replace("MEMBER_", "")
                  + " at "
                  + r.getMember().getGrpcAddress()
                  + "; voters: "
                  + String.join(", ", r.getVotersList()));
      return PeerFlashCli.EXIT_OK;
    }
  }
}
