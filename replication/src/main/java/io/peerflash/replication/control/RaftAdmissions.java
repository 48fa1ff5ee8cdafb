package io.peerflash.replication.control;

import io.peerflash.proto.v1.CommandResult;
import io.peerflash.proto.v1.MapCommand;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Nodes being added as Raft voters, admitted to Raft connections before the configuration names
 * them (see {@code AdmitRaftPeer} in cluster.proto). Fed by the state machine in log order; kept
 * outside the map, and not in snapshots: an admission only matters for the few seconds of an add,
 * and its deadline is absolute, so replaying an old one after a restart admits nobody.
 */
final class RaftAdmissions {
  private record Admission(String raftAddress, long untilMs) {}

  private final Map<String, Admission> byNode = new ConcurrentHashMap<>();

  /** A {@link ClusterStateMachine.CommandListener}. */
  void onApplied(long index, MapCommand command, CommandResult result, ClusterMap map) {
    if (!result.getOk() || command.getCommandCase() != MapCommand.CommandCase.ADMIT_RAFT_PEER) {
      return;
    }
    MapCommand.AdmitRaftPeer a = command.getAdmitRaftPeer();
    if (a.getUntilMs() == 0) {
      byNode.remove(a.getNodeId());
    } else {
      byNode.put(a.getNodeId(), new Admission(a.getRaftAddress(), a.getUntilMs()));
    }
  }

  /**
   * Node id to Raft address of the admissions still running at {@code nowMs}. An admission ends
   * once this node sees the node in its Raft configuration: from then on the configuration admits
   * it, and removing it from the configuration must be enough to refuse it.
   */
  Map<String, String> current(long nowMs, Set<String> inConfiguration) {
    Map<String, String> out = new TreeMap<>();
    byNode.forEach(
        (id, a) -> {
          if (inConfiguration.contains(id)) {
            byNode.remove(id, a);
          } else if (a.untilMs() > nowMs) {
            out.put(id, a.raftAddress());
          }
        });
    return out;
  }
}
