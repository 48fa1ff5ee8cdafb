package io.peerflash.itbench;

import com.hazelcast.config.Config;
import com.hazelcast.config.JoinConfig;
import com.hazelcast.config.NetworkConfig;
import com.hazelcast.core.Hazelcast;
import com.hazelcast.core.HazelcastInstance;
import java.util.Arrays;
import java.util.List;

/**
 * One Hazelcast member on loopback, for the side-by-side benchmark: TCP/IP join with the given
 * member addresses only (no multicast, no discovery, no phone-home), and the benchmark's map with
 * one synchronous backup. Runs until killed.
 *
 * <p>Usage: {@code HazelcastMember PORT HOST:PORT,HOST:PORT}
 */
public final class HazelcastMember {
  static final String CLUSTER = "peerflash-bench";
  static final String MAP = "bench";

  private HazelcastMember() {}

  public static void main(String[] args) throws InterruptedException {
    if (args.length != 2) {
      System.err.println("usage: HazelcastMember PORT HOST:PORT,HOST:PORT");
      System.exit(2);
    }
    int port = Integer.parseInt(args[0]);
    List<String> members = Arrays.asList(args[1].split(","));
    HazelcastInstance hz = Hazelcast.newHazelcastInstance(config(port, members));
    Runtime.getRuntime().addShutdownHook(new Thread(hz::shutdown, "member-stop"));
    System.out.println("member ready on 127.0.0.1:" + port);
    System.out.flush();
    Thread.currentThread().join();
  }

  static Config config(int port, List<String> members) {
    Config config = new Config();
    config.setClusterName(CLUSTER);
    config.setProperty("hazelcast.phone.home.enabled", "false");
    config.setProperty("hazelcast.local.localAddress", "127.0.0.1");
    NetworkConfig net = config.getNetworkConfig();
    net.setPort(port).setPortAutoIncrement(false);
    net.getInterfaces().setEnabled(true).addInterface("127.0.0.1");
    JoinConfig join = net.getJoin();
    join.getMulticastConfig().setEnabled(false);
    join.getAutoDetectionConfig().setEnabled(false);
    join.getTcpIpConfig().setEnabled(true).setMembers(members);
    // One synchronous backup: a put returns once the backup member has the value too.
    config.getMapConfig(MAP).setBackupCount(1).setAsyncBackupCount(0);
    return config;
  }
}
