package io.peerflash.cli;

import io.peerflash.cli.Converters.ModeCandidates;
import io.peerflash.cli.Converters.ModeConverter;
import io.peerflash.cli.Converters.OnPeerLossConverter;
import io.peerflash.cli.Converters.SizeConverter;
import io.peerflash.client.PeerFlashClient;
import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.CreateVolumeRequest;
import io.peerflash.proto.v1.ListVolumesResponse;
import io.peerflash.proto.v1.OnPeerLoss;
import io.peerflash.proto.v1.ReplicaStatus;
import io.peerflash.proto.v1.SetPolicyRequest;
import io.peerflash.proto.v1.Volume;
import io.peerflash.proto.v1.VolumePolicy;
import java.io.PrintStream;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code peerflash volume ...}: the volume catalogue and policies. */
@Command(
    name = "volume",
    description = "Create, list, inspect and delete volumes, and change their cache policy.")
final class VolumeCommand implements Callable<Integer> {
  private static final int BLOCK = io.peerflash.util.Blocks.BLOCK_BYTES;

  @Spec CommandSpec spec;

  @Override
  public Integer call() {
    throw new ParameterException(
        spec.commandLine(), "missing sub-command (create, list, stat, delete, set-policy or move)");
  }

  static String replicas(int n) {
    return n == 1 ? "1 replica" : n + " replicas";
  }

  /** A volume created or changed into a state other than HEALTHY is worth a warning. */
  static void warnIfUnhealthy(PrintStream err, Volume v) {
    if (v.getState() != io.peerflash.proto.v1.VolumeState.HEALTHY) {
      err.println(
          "warning: volume " + v.getName() + " is " + v.getState() + ": " + v.getStateDetail());
    }
  }

  static void requireReplicas(CommandSpec spec, Integer replicas) {
    if (replicas != null && replicas < 0) {
      throw new ParameterException(
          spec.commandLine(), "--replicas must be 0 or more, got " + replicas);
    }
  }

  @Command(name = "create", description = "Create a volume.")
  static final class Create implements Callable<Integer> {
    @Mixin ClientOptions client;
    @Spec CommandSpec spec;

    @Parameters(index = "0", paramLabel = "NAME", description = "Volume name.")
    String name;

    @Option(
        names = "--size",
        paramLabel = "SIZE",
        converter = SizeConverter.class,
        description =
            "Volume size, e.g. 10GiB or 1.5GiB (a multiple of 4KiB; K, M, G and T are binary"
                + " units). Required unless --adopt is given (then the file's size).")
    Long sizeBytes;

    @Option(
        names = "--adopt",
        description =
            "Use the file already on shared storage under NAME as the volume's content (e.g. a"
                + " disk image being migrated). Without it such a file is refused, never"
                + " emptied.")
    boolean adopt;

    @Option(
        names = "--mode",
        paramLabel = "MODE",
        defaultValue = "write-back",
        converter = ModeConverter.class,
        completionCandidates = ModeCandidates.class,
        description = "${COMPLETION-CANDIDATES} (default: ${DEFAULT-VALUE}).")
    CacheMode mode;

    @Option(
        names = "--replicas",
        paramLabel = "N",
        defaultValue = "0",
        description = "Peer copies of each dirty block, 0-2 (default: ${DEFAULT-VALUE}).")
    int replicas;

    @Option(
        names = "--on-peer-loss",
        paramLabel = "POLICY",
        defaultValue = "write-through",
        converter = OnPeerLossConverter.class,
        description =
            "While fewer replicas hold copies than wanted: write-through (writes go to shared"
                + " storage), block (writes wait, bounded, then fail) or accept (acknowledged with"
                + " fewer copies, reported at risk). Default: ${DEFAULT-VALUE}.")
    OnPeerLoss onPeerLoss;

    @Option(
        names = "--allow-degraded",
        description =
            "Create it even when the cluster has too few UP members for --replicas: it starts"
                + " DEGRADED (writes follow --on-peer-loss until members join).")
    boolean allowDegraded;

    @Mixin OutputOption output;

    @Override
    public Integer call() {
      requireReplicas(spec, replicas);
      if (sizeBytes == null && !adopt) {
        throw new ParameterException(
            spec.commandLine(), "Missing required option: '--size=SIZE' (or --adopt)");
      }
      if (sizeBytes != null && (sizeBytes <= 0 || sizeBytes % BLOCK != 0)) {
        long below = sizeBytes / BLOCK * BLOCK;
        throw new ParameterException(
            spec.commandLine(),
            "--size "
                + sizeBytes
                + " is not a positive multiple of "
                + BLOCK
                + " bytes (4KiB); "
                + (below > 0
                    ? "the nearest valid sizes are " + below + " and " + (below + BLOCK)
                    : "the smallest valid size is " + BLOCK));
      }
      try (PeerFlashClient c = client.connect()) {
        Volume v =
            c.createVolume(
                CreateVolumeRequest.newBuilder()
                    .setName(name)
                    .setSizeBytes(sizeBytes == null ? 0 : sizeBytes)
                    .setPolicy(
                        PeerFlashClient.policy(mode, replicas).toBuilder()
                            .setOnPeerLoss(onPeerLoss))
                    .setAdoptExisting(adopt)
                    .setAllowDegraded(allowDegraded)
                    .build());
        if (output.json()) {
          OutputOption.print(client.cli().out(), v);
          return PeerFlashCli.EXIT_OK;
        }
        warnIfUnhealthy(client.cli().err(), v);
        client
            .cli()
            .out()
            .println(
                "created volume "
                    + v.getName()
                    + ": "
                    + Formats.size(v.getSizeBytes())
                    + ", "
                    + Formats.mode(v.getPolicy().getMode())
                    + ", "
                    + replicas(v.getPolicy().getReplicas()));
      }
      return PeerFlashCli.EXIT_OK;
    }
  }

  @Command(name = "list", description = "List the volumes of the node.")
  static final class ListVolumes implements Callable<Integer> {
    @Mixin ClientOptions client;

    @Mixin OutputOption output;

    @Mixin WatchOption watch;

    @Override
    public Integer call() {
      return watch.run(client.cli().out(), client.cli().err(), this::once);
    }

    private int once() {
      List<Volume> volumes;
      try (PeerFlashClient c = client.connect()) {
        volumes = c.listVolumes();
      }
      PrintStream out = client.cli().out();
      if (output.json()) {
        OutputOption.print(out, ListVolumesResponse.newBuilder().addAllVolumes(volumes));
        return PeerFlashCli.EXIT_OK;
      }
      if (volumes.isEmpty()) {
        out.println("no volumes");
        return PeerFlashCli.EXIT_OK;
      }
      Table table =
          new Table("NAME", "SIZE", "MODE", "REPLICAS", "STATE", "DIRTY", "CACHED", "REASON");
      for (Volume v : volumes) {
        table.row(
            v.getName(),
            Formats.size(v.getSizeBytes()),
            Formats.mode(v.getPolicy().getMode()),
            v.getPolicy().getReplicas(),
            v.getState(),
            Formats.size(v.getDirtyBytes()),
            Formats.size(v.getCachedBytes()),
            v.getProblemsCount() == 0 ? "-" : v.getProblems(0).getReason());
      }
      table.print(out);
      return PeerFlashCli.EXIT_OK;
    }
  }

  @Command(name = "stat", description = "Show everything the node reports about a volume.")
  static final class Stat implements Callable<Integer> {
    @Mixin ClientOptions client;

    @Parameters(index = "0", paramLabel = "NAME", description = "Volume name.")
    String name;

    @Mixin OutputOption output;

    @Mixin WatchOption watch;

    @Override
    public Integer call() {
      return watch.run(client.cli().out(), client.cli().err(), this::once);
    }

    private int once() {
      Volume v;
      try (PeerFlashClient c = client.connect()) {
        v = c.getVolume(name);
      }
      PrintStream out = client.cli().out();
      if (output.json()) {
        OutputOption.print(out, v);
        return PeerFlashCli.EXIT_OK;
      }
      out.println(Formats.field("name", v.getName()));
      out.println(Formats.field("size", Formats.sizeExact(v.getSizeBytes())));
      out.println(Formats.field("mode", Formats.mode(v.getPolicy().getMode())));
      out.println(Formats.field("replicas", v.getPolicy().getReplicas()));
      out.println(Formats.field("state", v.getState()));
      out.println(
          Formats.field("state detail", v.getStateDetail().isEmpty() ? "-" : v.getStateDetail()));
      // The first problem is the state above; the others are also true.
      for (int i = 1; i < v.getProblemsCount(); i++) {
        out.println(
            Formats.field(
                "also", v.getProblems(i).getState() + ": " + v.getProblems(i).getReason()));
      }
      out.println(Formats.field("dirty", Formats.sizeExact(v.getDirtyBytes())));
      out.println(Formats.field("cached", Formats.sizeExact(v.getCachedBytes())));
      out.println(
          Formats.field(
              "oldest dirty age",
              v.getOldestDirtyAgeMs() == 0 ? "-" : Formats.durationMs(v.getOldestDirtyAgeMs())));
      out.println(Formats.field("corrupt blocks", v.getCorruptBlocks()));
      for (String uri : v.getNbdUrisList()) {
        out.println(Formats.field("nbd", uri));
      }
      if (!v.getOwner().isEmpty()) {
        out.println(Formats.field("owner", v.getOwner() + " (epoch " + v.getEpoch() + ")"));
        out.println(
            Formats.field(
                "replicas held",
                v.getEffectiveReplicas() + " of " + v.getPolicy().getReplicas() + " wanted"));
        out.println(
            Formats.field(
                "on peer loss", OnPeerLossConverter.format(v.getPolicy().getOnPeerLoss())));
        out.println(Formats.field("at risk", Formats.size(v.getAtRiskBytes())));
        for (ReplicaStatus r : v.getReplicasList()) {
          out.println(
              Formats.field(
                  "replica " + r.getNode(),
                  (r.getInSync()
                          ? "in sync"
                          : "re-protecting, "
                              + Formats.size(r.getResyncRemainingBytes())
                              + " left to copy")
                      + ", lag "
                      + r.getLagMs()
                      + " ms ("
                      + r.getInFlightBatches()
                      + " batches in flight)"));
        }
      }
      return PeerFlashCli.EXIT_OK;
    }
  }

  @Command(name = "delete", description = "Delete a volume and its data.")
  static final class Delete implements Callable<Integer> {
    @Mixin ClientOptions client;

    @Parameters(index = "0", paramLabel = "NAME", description = "Volume name.")
    String name;

    @Override
    public Integer call() {
      try (PeerFlashClient c = client.connect()) {
        c.deleteVolume(name);
      }
      client.cli().out().println("deleted volume " + name);
      return PeerFlashCli.EXIT_OK;
    }
  }

  @Command(
      name = "set-policy",
      description = {
        "Change a volume's cache mode and/or replica count online; what is not given is kept.",
        "Leaving write-back destages all dirty data first, so this can take a while."
      })
  static final class SetPolicy implements Callable<Integer> {
    @Mixin ClientOptions client;
    @Spec CommandSpec spec;

    @Parameters(index = "0", paramLabel = "NAME", description = "Volume name.")
    String name;

    @Option(
        names = "--mode",
        paramLabel = "MODE",
        converter = ModeConverter.class,
        completionCandidates = ModeCandidates.class,
        description = "${COMPLETION-CANDIDATES}.")
    CacheMode mode;

    @Option(names = "--replicas", paramLabel = "N", description = "Peer copies, 0-2.")
    Integer replicas;

    @Option(
        names = "--on-peer-loss",
        paramLabel = "POLICY",
        converter = OnPeerLossConverter.class,
        description = "write-through, block or accept.")
    OnPeerLoss onPeerLoss;

    @Option(
        names = "--allow-degraded",
        description =
            "Apply it even when the cluster has too few UP members for --replicas: the volume"
                + " runs DEGRADED (writes follow its on-peer-loss policy).")
    boolean allowDegraded;

    @Mixin OutputOption output;

    @Override
    public Integer call() {
      if (mode == null && replicas == null && onPeerLoss == null) {
        throw new ParameterException(
            spec.commandLine(), "nothing to change: give --mode, --replicas and/or --on-peer-loss");
      }
      requireReplicas(spec, replicas);
      PrintStream out = client.cli().out();
      try (PeerFlashClient c = client.connect()) {
        // The RPC replaces the whole policy, so the part not given is read back first.
        Volume current = c.getVolume(name);
        CacheMode newMode = mode != null ? mode : current.getPolicy().getMode();
        int newReplicas = replicas != null ? replicas : current.getPolicy().getReplicas();
        if (current.getPolicy().getMode() == CacheMode.WRITE_BACK
            && newMode != CacheMode.WRITE_BACK
            && current.getDirtyBytes() > 0) {
          client
              .cli()
              .err()
              .println(
                  "leaving write-back: destaging "
                      + Formats.size(current.getDirtyBytes())
                      + " of dirty data first...");
        }
        VolumePolicy.Builder policy = PeerFlashClient.policy(newMode, newReplicas).toBuilder();
        if (onPeerLoss != null) {
          policy.setOnPeerLoss(onPeerLoss);
        }
        Volume v =
            c.setPolicy(
                SetPolicyRequest.newBuilder()
                    .setName(name)
                    .setPolicy(policy)
                    .setAllowDegraded(allowDegraded)
                    .build());
        if (output.json()) {
          OutputOption.print(out, v);
          return PeerFlashCli.EXIT_OK;
        }
        warnIfUnhealthy(client.cli().err(), v);
        out.println(
            "volume "
                + v.getName()
                + ": "
                + Formats.mode(v.getPolicy().getMode())
                + ", "
                + replicas(v.getPolicy().getReplicas()));
      }
      return PeerFlashCli.EXIT_OK;
    }
  }

  @Command(
      name = "move",
      description = {
        "Hand a volume to another node of the cluster online, without losing a write.",
        "The owner destages the volume, pauses its I/O briefly (clients retry) and commits the new"
            + " owner."
      })
  static final class Move implements Callable<Integer> {
    @Mixin ClientOptions client;
    @Mixin OutputOption output;

    @Parameters(index = "0", paramLabel = "NAME", description = "Volume name.")
    String name;

    @Option(
        names = "--to",
        required = true,
        paramLabel = "NODE",
        description = "Id of the new owner (an UP member).")
    String to;

    @Option(
        names = "--timeout",
        paramLabel = "DURATION",
        defaultValue = "2m",
        converter = Converters.DurationConverter.class,
        description = "Give up (the old owner keeps the volume) after this long (default: 2m).")
    java.time.Duration timeout;

    @Override
    public Integer call() {
      io.peerflash.proto.v1.MoveVolumeResponse r;
      try (PeerFlashClient c = client.connect()) {
        r = c.moveVolume(name, to, timeout);
      }
      PrintStream out = client.cli().out();
      if (output.json()) {
        OutputOption.print(out, r);
      } else if (!r.getMoved()) {
        out.println("volume " + name + " is already owned by " + r.getOwner() + "; nothing to do");
      } else {
        out.println(
            "moved volume "
                + name
                + " from "
                + r.getPreviousOwner()
                + " to "
                + r.getOwner()
                + " (epoch "
                + r.getEpoch()
                + "): destaged "
                + Formats.size(r.getDestagedBytes())
                + ", I/O paused "
                + Formats.durationMs(r.getFencedMs()));
      }
      return PeerFlashCli.EXIT_OK;
    }
  }
}
