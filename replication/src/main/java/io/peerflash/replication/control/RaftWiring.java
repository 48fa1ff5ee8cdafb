package io.peerflash.replication.control;

import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import java.util.function.Supplier;
import org.apache.ratis.client.RaftClient;
import org.apache.ratis.client.RaftClientConfigKeys;
import org.apache.ratis.conf.Parameters;
import org.apache.ratis.conf.RaftProperties;
import org.apache.ratis.grpc.GrpcConfigKeys;
import org.apache.ratis.grpc.GrpcTlsConfig;
import org.apache.ratis.protocol.ClientId;
import org.apache.ratis.protocol.RaftGroup;
import org.apache.ratis.protocol.RaftPeer;
import org.apache.ratis.retry.RetryPolicy;
import org.apache.ratis.server.RaftServerConfigKeys;
import org.apache.ratis.util.TimeDuration;

/** How the control plane sets Ratis up: its server's properties, TLS and clients. */
final class RaftWiring {
  private RaftWiring() {}

  /** One named thread for timed tasks; cancelled tasks leave its queue at once. */
  static java.util.concurrent.ScheduledExecutorService scheduler(String name) {
    java.util.concurrent.ScheduledThreadPoolExecutor s =
        new java.util.concurrent.ScheduledThreadPoolExecutor(
            1, new io.peerflash.util.NamedThreadFactory(name, true));
    s.setRemoveOnCancelPolicy(true);
    s.setExecuteExistingDelayedTasksAfterShutdownPolicy(false);
    return s;
  }

  static RaftPeer peer(String id, String address) {
    return RaftPeer.newBuilder().setId(id).setAddress(address).build();
  }

  static RaftProperties serverProperties(ControlPlaneConfig config) {
    RaftProperties p = new RaftProperties();
    HostPort hp = HostPort.parse(config.raftAddress());
    GrpcConfigKeys.Server.setHost(p, hp.host());
    GrpcConfigKeys.Server.setPort(p, hp.port());
    RaftServerConfigKeys.setStorageDir(p, List.of(config.storageDir().toFile()));
    long min = config.electionTimeoutMinMs();
    RaftServerConfigKeys.Rpc.setTimeoutMin(p, TimeDuration.valueOf(min, TimeUnit.MILLISECONDS));
    RaftServerConfigKeys.Rpc.setTimeoutMax(p, TimeDuration.valueOf(2 * min, TimeUnit.MILLISECONDS));
    // readLinearizable(): ReadIndex on the leader instead of a possibly deposed leader's state.
    RaftServerConfigKeys.Read.setOption(p, RaftServerConfigKeys.Read.Option.LINEARIZABLE);
    RaftServerConfigKeys.Snapshot.setAutoTriggerEnabled(p, true);
    RaftServerConfigKeys.Snapshot.setAutoTriggerThreshold(p, config.snapshotThreshold());
    RaftServerConfigKeys.Snapshot.setCreationGap(p, Math.min(1024, config.snapshotThreshold()));
    RaftServerConfigKeys.Snapshot.setRetentionFileNum(p, 3);
    RaftServerConfigKeys.Log.setPurgeGap(p, (int) Math.min(1024, config.snapshotThreshold()));
    config.raftOverrides().forEach(p::set);
    return p;
  }

  /**
   * The TLS settings Ratis' gRPC transport takes as {@link Parameters}: one {@link GrpcTlsConfig}
   * as the default for its server, admin and client services and for clients (mutual TLS: the
   * server requires a client certificate, clients present theirs), built from the configured key
   * manager and the membership-checking trust manager; and a per-call check on the server.
   *
   * @param allowedPeers the Raft members (id to address) a connection may come from
   * @param refused told of every connection or call refused
   */
  static Parameters parameters(
      ControlPlaneConfig config,
      Supplier<Map<String, String>> allowedPeers,
      Consumer<RaftConnectionRefusal> refused) {
    Parameters p = new Parameters();
    RaftTls tls = config.tls();
    if (tls == null) {
      return p;
    }
    RaftMemberTrustManager trustManager =
        new RaftMemberTrustManager(tls.trustManager(), allowedPeers, refused);
    GrpcConfigKeys.TLS.setConf(p, new GrpcTlsConfig(tls.keyManager(), trustManager, true));
    RaftMemberInterceptor perCall = new RaftMemberInterceptor(allowedPeers, refused);
    GrpcConfigKeys.Server.setServicesCustomizer(p, (builder, types) -> builder.intercept(perCall));
    return p;
  }

  static RaftClient client(
      Parameters parameters, RaftGroup group, TimeDuration requestTimeout, RetryPolicy retry) {
    RaftProperties p = new RaftProperties();
    RaftClientConfigKeys.Rpc.setRequestTimeout(p, requestTimeout);
    return RaftClient.newBuilder()
        .setParameters(parameters)
        .setProperties(p)
        .setRaftGroup(group)
        .setClientId(ClientId.randomId())
        .setRetryPolicy(retry)
        .build();
  }

  /** host:port. */
  record HostPort(String host, int port) {
    static HostPort parse(String s) {
      int colon = s.lastIndexOf(':');
      if (colon <= 0 || colon == s.length() - 1) {
        throw new IllegalArgumentException("not host:port: " + s);
      }
      String host = s.substring(0, colon);
      if (host.startsWith("[") && host.endsWith("]")) {
        host = host.substring(1, host.length() - 1);
      }
      return new HostPort(host, Integer.parseInt(s.substring(colon + 1)));
    }
  }
}
