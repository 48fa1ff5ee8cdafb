package io.peerflash.cli;

import io.peerflash.client.PeerFlashClient;
import io.peerflash.client.PeerFlashException;
import io.peerflash.proto.v1.ClusterMember;
import io.peerflash.proto.v1.ClusterStatus;
import io.peerflash.proto.v1.ClusterVolume;
import io.peerflash.proto.v1.Volume;
import java.io.PrintStream;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;

/** The cluster: members, leader, and per volume its owner, epoch, replicas and dirty data. */
@Command(
    name = "cluster",
    description = "Inspect the cluster.",
    subcommands = {ClusterCommand.Status.class})
final class ClusterCommand {
  @Command(
      name = "status",
      description =
          "Members and their state, the Raft leader, and per volume the owner, epoch, replicas,"
              + " dirty bytes and data at risk.")
  static final class Status implements Callable<Integer> {
    @Mixin ClientOptions client;

    @Override
    public Integer call() {
      PrintStream out = client.cli().out();
      try (PeerFlashClient c = client.connect()) {
        ClusterStatus s = c.clusterStatus();
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
}
