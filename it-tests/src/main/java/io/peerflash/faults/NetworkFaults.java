package io.peerflash.faults;

import io.peerflash.faults.DockerCluster.Node;
import java.util.List;

/** Network faults inside the nodes' containers, with iptables (the containers have NET_ADMIN). */
public final class NetworkFaults {
  private final DockerCluster cluster;
  private final List<Node> nodes;

  NetworkFaults(DockerCluster cluster, List<Node> nodes) {
    this.cluster = cluster;
    this.nodes = nodes;
  }

  /** Drops every packet between two nodes (in both directions), inside {@code a}. */
  public void cutLink(Node a, Node b) {
    cluster.execAsRoot(a, "iptables", "-w", "-I", "INPUT", "-s", b.ip(), "-j", "DROP");
    cluster.execAsRoot(a, "iptables", "-w", "-I", "OUTPUT", "-d", b.ip(), "-j", "DROP");
  }

  /**
   * Drops a random fraction of the packets of the replication links of {@code n}: to and from the
   * client port and the replica link of every other node.
   */
  public void replicationPacketLoss(Node n, double probability) {
    String p = String.valueOf(probability);
    for (Node o : nodes) {
      if (o == n) {
        continue;
      }
      // Copies travel on the replica link; the client port carries the rest (and copies to a
      // node without a link).
      for (int port : new int[] {DockerCluster.CLIENT_PORT, DockerCluster.REPLICA_LINK_PORT}) {
        cluster.execAsRoot(
            n,
            "iptables",
            "-w",
            "-I",
            "OUTPUT",
            "-p",
            "tcp",
            "-d",
            o.ip(),
            "--dport",
            String.valueOf(port),
            "-m",
            "statistic",
            "--mode",
            "random",
            "--probability",
            p,
            "-j",
            "DROP");
        cluster.execAsRoot(
            n,
            "iptables",
            "-w",
            "-I",
            "INPUT",
            "-p",
            "tcp",
            "-s",
            o.ip(),
            "--sport",
            String.valueOf(port),
            "-m",
            "statistic",
            "--mode",
            "random",
            "--probability",
            p,
            "-j",
            "DROP");
      }
    }
  }

  /** Removes every iptables rule inside the node. */
  public void healNetwork(Node n) {
    cluster.execAsRoot(n, "iptables", "-w", "-F", "INPUT");
    cluster.execAsRoot(n, "iptables", "-w", "-F", "OUTPUT");
  }

  /** Packets the node's iptables rules dropped so far (shows a fault really bit). */
  public long droppedPackets(Node n) {
    String out = cluster.execAsRoot(n, "iptables", "-w", "-L", "-v", "-n", "-x");
    long dropped = 0;
    for (String line : out.split("\n")) {
      String[] f = line.trim().split("\\s+");
      if (f.length > 2 && f[2].equals("DROP") && f[0].matches("\\d+")) {
        dropped += Long.parseLong(f[0]);
      }
    }
    return dropped;
  }
}
