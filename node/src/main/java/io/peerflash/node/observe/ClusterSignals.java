package io.peerflash.node.observe;

/** What the metrics read of a node's place in the cluster, when scraped. */
public interface ClusterSignals {
  /** Raft term this node is in, or -1 while its Raft server is not up. */
  long raftTerm();

  /** Highest log index this node knows committed, or -1. */
  long raftCommitIndex();

  /** 1 while this node is the Raft leader, else 0. */
  long raftLeader();

  /** Time left on this node's lease by its own clock; 0 once it lapsed. */
  long leaseRemainingMs();

  /** Volumes this node took over from a failed owner since it started. */
  long failovers();

  /** Copies or writes refused for a stale epoch or lease since the node started. */
  long fencingRefusals();

  /**
   * Per peer this node sends copies to: {age of its oldest copy not yet acked in ms (0: none),
   * batches in flight}.
   */
  java.util.Map<String, long[]> replicationLag();
}
