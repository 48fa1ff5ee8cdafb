package io.peerflash.node.cluster;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.peerflash.proto.v1.AddNodeRequest;
import io.peerflash.proto.v1.AddNodeResponse;
import io.peerflash.proto.v1.CommandResult;
import io.peerflash.proto.v1.DrainNodeRequest;
import io.peerflash.proto.v1.DrainNodeResponse;
import io.peerflash.proto.v1.MapCommand;
import io.peerflash.proto.v1.RemoveNodeRequest;
import io.peerflash.proto.v1.RemoveNodeResponse;
import io.peerflash.replication.control.ClusterMap;
import io.peerflash.replication.control.ControlPlane;
import io.peerflash.replication.control.Member;
import io.peerflash.replication.control.VolumeRecord;
import io.peerflash.util.NamedThreadFactory;
import io.peerflash.util.Time;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Membership administration, on any node: drain (the draining node moves its volumes itself, see
 * {@link VolumeMover}), removal of a drained member from the map and the Raft group, and addition
 * of a running node as a Raft voter.
 */
final class Membership implements AutoCloseable {
  static final long DEFAULT_ADD_TIMEOUT_MS = 60_000;
  private static final long COMMAND_TIMEOUT_MS = 15_000;
  private static final long READ_TIMEOUT_MS = 5_000;
  private static final int PROBE_TIMEOUT_MS = 2_000;

  private final ControlPlane controlPlane;
  private final Time time;
  private final ExecutorService raftAdmin =
      Executors.newCachedThreadPool(new NamedThreadFactory("peerflash-raft-admin", true));

  Membership(ControlPlane controlPlane, Time time) {
    this.controlPlane = controlPlane;
    this.time = time;
  }

  /** DrainNode: commits Drain unless the member is DRAINING already; reports what it holds. */
  DrainNodeResponse drain(DrainNodeRequest req) {
    String id = required(req.getNode());
    ClusterMap map = current();
    Member m = member(map, id);
    if (req.getCancel()) {
      if (m.state() == Member.State.DOWN) {
        throw Status.FAILED_PRECONDITION
            .withDescription("node " + id + " is DOWN: there is no drain to cancel")
            .asRuntimeException();
      }
      if (m.state() == Member.State.DRAINING) {
        submit(
            MapCommand.newBuilder()
                .setUndrain(MapCommand.Undrain.newBuilder().setNodeId(id))
                .build(),
            "cancelling the drain of " + id);
        map = current();
        m = member(map, id);
      }
      return DrainNodeResponse.newBuilder()
          .setMember(m.toProto())
          .addAllOwnedVolumes(map.volumesOwnedBy(id).stream().map(VolumeRecord::name).toList())
          .addAllReplicaOf(replicaOf(map, id))
          .build();
    }
    if (m.state() == Member.State.DOWN) {
      throw Status.FAILED_PRECONDITION
          .withDescription("node " + id + " is DOWN: only a running node can move its volumes away")
          .asRuntimeException();
    }
    if (m.state() == Member.State.UP) {
      boolean othersUp =
          map.members().values().stream().anyMatch(x -> x.isUp() && !x.id().equals(id));
      if (!othersUp && !map.volumesOwnedBy(id).isEmpty()) {
        throw Status.FAILED_PRECONDITION
            .withDescription(
                "node " + id + " is the only UP member: nothing could take its volumes")
            .asRuntimeException();
      }
      submit(
          MapCommand.newBuilder().setDrain(MapCommand.Drain.newBuilder().setNodeId(id)).build(),
          "draining " + id);
      map = current();
      m = member(map, id);
    }
    return DrainNodeResponse.newBuilder()
        .setMember(m.toProto())
        .addAllOwnedVolumes(map.volumesOwnedBy(id).stream().map(VolumeRecord::name).toList())
        .addAllReplicaOf(replicaOf(map, id))
        .build();
  }

  /**
   * RemoveNode: for a DRAINING or DOWN member holding nothing: RemoveMember, then the Raft voter.
   * Running it again after a failure between the two finishes the second step.
   */
  RemoveNodeResponse remove(RemoveNodeRequest req) {
    String id = required(req.getNode());
    ClusterMap map = current();
    Member m = map.member(id).orElse(null);
    if (m == null && !controlPlane.raftPeers().containsKey(id)) {
      throw notMember(map, id);
    }
    if (m != null) {
      if (m.state() == Member.State.UP) {
        throw Status.FAILED_PRECONDITION
            .withDescription("node " + id + " is UP: drain it first (cluster drain " + id + ")")
            .asRuntimeException();
      }
      List<String> owned = map.volumesOwnedBy(id).stream().map(VolumeRecord::name).toList();
      List<String> replicas = replicaOf(map, id);
      if (!owned.isEmpty() || !replicas.isEmpty()) {
        throw Status.FAILED_PRECONDITION
            .withDescription(
                "node "
                    + id
                    + " still owns "
                    + owned
                    + " and holds replicas of "
                    + replicas
                    + "; wait until the drain has moved them")
            .asRuntimeException();
      }
      submit(
          MapCommand.newBuilder()
              .setRemoveMember(MapCommand.RemoveMember.newBuilder().setNodeId(id))
              .build(),
          "removing " + id + " from the cluster map");
    }
    try {
      controlPlane.removePeer(id);
    } catch (IOException | RuntimeException e) {
      throw Status.UNAVAILABLE
          .withDescription(
              "node "
                  + id
                  + " left the cluster map, but removing it from the Raft group failed: "
                  + e.getMessage()
                  + "; run the removal again")
          .asRuntimeException();
    }
    return RemoveNodeResponse.newBuilder().addAllVoters(controlPlane.raftPeers().keySet()).build();
  }

  /**
   * AddNode: the node must be running (started with the current voters as peers); the leader brings
   * it up to date, then the node registers itself in the map.
   */
  AddNodeResponse add(AddNodeRequest req) {
    String id = required(req.getNode());
    String address = req.getRaftAddress();
    int colon = address.lastIndexOf(':');
    int port = -1;
    try {
      port = colon > 0 ? Integer.parseInt(address.substring(colon + 1)) : -1;
    } catch (NumberFormatException e) {
      // reported below
    }
    if (port <= 0 || port > 65535) {
      throw Status.INVALID_ARGUMENT
          .withDescription("raft address must be HOST:PORT, got '" + address + "'")
          .asRuntimeException();
    }
    long timeoutMs = req.getTimeoutMs() == 0 ? DEFAULT_ADD_TIMEOUT_MS : req.getTimeoutMs();
    long deadline = time.nowMs() + timeoutMs;
    Map<String, String> voters = controlPlane.raftPeers();
    if (voters.containsKey(id) && !voters.get(id).equals(address)) {
      throw Status.ALREADY_EXISTS
          .withDescription("node " + id + " is already a voter, at " + voters.get(id))
          .asRuntimeException();
    }
    for (Map.Entry<String, String> v : voters.entrySet()) {
      if (!v.getKey().equals(id) && v.getValue().equals(address)) {
        throw Status.INVALID_ARGUMENT
            .withDescription(address + " is the Raft address of voter " + v.getKey())
            .asRuntimeException();
      }
    }
    if (!voters.containsKey(id)) {
      probe(id, address.substring(0, colon), port, voters);
      CompletableFuture<Void> added =
          CompletableFuture.runAsync(
              () -> {
                try {
                  controlPlane.addPeer(id, address);
                } catch (IOException e) {
                  throw new java.io.UncheckedIOException(e);
                }
              },
              raftAdmin);
      try {
        added.get(Math.max(1, deadline - time.nowMs()), TimeUnit.MILLISECONDS);
      } catch (TimeoutException e) {
        throw Status.DEADLINE_EXCEEDED
            .withDescription(
                "the Raft group did not take "
                    + id
                    + " at "
                    + address
                    + " within "
                    + timeoutMs
                    + " ms (is the node listening there started with --id "
                    + id
                    + "?)")
            .asRuntimeException();
      } catch (ExecutionException e) {
        Throwable cause = e.getCause() instanceof java.io.UncheckedIOException u ? u.getCause() : e;
        throw Status.UNAVAILABLE
            .withDescription("adding " + id + " as a Raft voter failed: " + cause)
            .asRuntimeException();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw Status.CANCELLED.withDescription("interrupted").asRuntimeException();
      }
    }
    // The node registers itself once it sees itself a voter.
    while (true) {
      Member m = controlPlane.map().member(id).orElse(null);
      if (m != null && m.isAlive()) {
        return AddNodeResponse.newBuilder()
            .setMember(m.toProto())
            .addAllVoters(controlPlane.raftPeers().keySet())
            .build();
      }
      if (time.nowMs() >= deadline) {
        throw Status.DEADLINE_EXCEEDED
            .withDescription(
                id
                    + " joined the Raft group but has not registered in the cluster map within "
                    + timeoutMs
                    + " ms")
            .asRuntimeException();
      }
      try {
        time.sleepMs(50);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw Status.CANCELLED.withDescription("interrupted").asRuntimeException();
      }
    }
  }

  /** Fails fast when nothing listens at the address: Raft would otherwise retry for minutes. */
  private static void probe(String id, String host, int port, Map<String, String> voters) {
    try (Socket s = new Socket()) {
      s.connect(new InetSocketAddress(host, port), PROBE_TIMEOUT_MS);
    } catch (IOException e) {
      throw Status.UNAVAILABLE
          .withDescription(
              "nothing answers at "
                  + host
                  + ":"
                  + port
                  + " ("
                  + e.getMessage()
                  + "): start the node first, e.g. peerflash node --id "
                  + id
                  + " --raft "
                  + host
                  + ":"
                  + port
                  + " --peers "
                  + String.join(
                      ",",
                      voters.entrySet().stream().map(v -> v.getKey() + "=" + v.getValue()).toList())
                  + " ...")
          .asRuntimeException();
    }
  }

  private static List<String> replicaOf(ClusterMap map, String id) {
    return map.volumes().values().stream()
        .filter(v -> v.allReplicas().contains(id))
        .map(VolumeRecord::name)
        .toList();
  }

  private static String required(String id) {
    if (id.isEmpty()) {
      throw Status.INVALID_ARGUMENT.withDescription("node id is required").asRuntimeException();
    }
    return id;
  }

  private static Member member(ClusterMap map, String id) {
    return map.member(id).orElseThrow(() -> notMember(map, id));
  }

  private static StatusRuntimeException notMember(ClusterMap map, String id) {
    return Status.NOT_FOUND
        .withDescription(
            "node '"
                + id
                + "' is not a member of the cluster (members: "
                + map.members().keySet()
                + ")")
        .asRuntimeException();
  }

  /** The map as the leader has it: progress polls then agree whichever node answers. */
  private ClusterMap current() {
    try {
      return controlPlane.readLinearizable().get(READ_TIMEOUT_MS, TimeUnit.MILLISECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw Status.CANCELLED.withDescription("interrupted").asRuntimeException();
    } catch (ExecutionException | TimeoutException e) {
      throw Status.UNAVAILABLE
          .withDescription("cannot read the cluster map from the Raft leader: " + e)
          .asRuntimeException();
    }
  }

  private void submit(MapCommand command, String what) {
    CommandResult r;
    try {
      r = controlPlane.submit(command).get(COMMAND_TIMEOUT_MS, TimeUnit.MILLISECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw Status.CANCELLED.withDescription("interrupted").asRuntimeException();
    } catch (ExecutionException | TimeoutException e) {
      throw Status.UNAVAILABLE
          .withDescription(what + ": the cluster did not commit the change: " + e)
          .asRuntimeException();
    }
    if (!r.getOk()) {
      throw Status.FAILED_PRECONDITION
          .withDescription(what + ": " + r.getMessage())
          .asRuntimeException();
    }
  }

  @Override
  public void close() {
    raftAdmin.shutdownNow();
  }
}
