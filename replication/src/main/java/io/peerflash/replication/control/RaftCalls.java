package io.peerflash.replication.control;

import io.peerflash.proto.v1.ClusterMapSnapshot;
import io.peerflash.proto.v1.CommandResult;
import io.peerflash.proto.v1.MapCommand;
import java.io.IOException;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.apache.ratis.client.RaftClient;
import org.apache.ratis.conf.Parameters;
import org.apache.ratis.protocol.Message;
import org.apache.ratis.protocol.RaftClientReply;
import org.apache.ratis.protocol.RaftGroup;
import org.apache.ratis.protocol.RaftPeerId;
import org.apache.ratis.retry.RetryPolicies;
import org.apache.ratis.server.RaftServer;
import org.apache.ratis.thirdparty.com.google.protobuf.UnsafeByteOperations;
import org.apache.ratis.util.TimeDuration;

/**
 * How this node's commands, heartbeats and reads reach the Raft leader: a command client (retried
 * across leader changes), a heartbeat client (short attempts, few retries, so a lost heartbeat does
 * not hold up the next), an admin client for configuration changes, and, while this node leads, its
 * own server ({@link LeaderLocalCalls}). Every call blocks: callers run them on threads of their
 * own (the control plane's submit threads, the lease thread).
 */
final class RaftCalls implements AutoCloseable {
  /** How long a submitted command is retried (across leader changes) before it fails. */
  static final int SUBMIT_ATTEMPTS = 150;

  static final TimeDuration RETRY_SLEEP = TimeDuration.valueOf(100, TimeUnit.MILLISECONDS);

  /**
   * One attempt of the command client, before it tries another node. A commit takes milliseconds;
   * an attempt that waits longer has most likely gone to a dead node (a killed host's address hangs
   * rather than refuses), and after a leader's death the client's guesses of the next one may hit
   * the dead nodes more than once: each wrong guess costs this much.
   */
  static final long COMMAND_ATTEMPT_TIMEOUT_MS = 1_000;

  /** How long a command this node submits to itself as the leader may take to commit. */
  static final long LOCAL_COMMIT_TIMEOUT_MS = 3_000;

  /**
   * One attempt of a configuration change: adding a voter commits only once the leader has caught
   * the new node up, which may take seconds, and a resent change is not recognised as the same one
   * (the leader answers that a reconfiguration is in progress). Not much longer: an attempt at a
   * dead former leader costs this much.
   */
  static final long ADMIN_ATTEMPT_TIMEOUT_MS = 10_000;

  private final RaftPeerId self;
  private final RaftClient commandClient;
  private final RaftClient heartbeatClient;
  private final RaftClient adminClient;
  private final long heartbeatAttemptMs;
  private final LeaderLocalCalls leaderLocal;

  /**
   * @param group the initial voters (a client knows only these nodes)
   * @param leaderReady whether this node is the leader and has committed in its term
   */
  RaftCalls(
      RaftServer server,
      RaftGroup group,
      Parameters parameters,
      long heartbeatIntervalMs,
      BooleanSupplier leaderReady) {
    this.self = server.getId();
    this.commandClient =
        RaftWiring.client(
            parameters,
            group,
            TimeDuration.valueOf(COMMAND_ATTEMPT_TIMEOUT_MS, TimeUnit.MILLISECONDS),
            RetryPolicies.retryUpToMaximumCountWithFixedSleep(SUBMIT_ATTEMPTS, RETRY_SLEEP));
    this.heartbeatAttemptMs = Math.max(200, heartbeatIntervalMs);
    this.heartbeatClient =
        RaftWiring.client(
            parameters,
            group,
            TimeDuration.valueOf(heartbeatAttemptMs, TimeUnit.MILLISECONDS),
            RetryPolicies.retryUpToMaximumCountWithFixedSleep(
                3,
                TimeDuration.valueOf(
                    Math.max(20, heartbeatIntervalMs / 10), TimeUnit.MILLISECONDS)));
    this.adminClient =
        RaftWiring.client(
            parameters,
            group,
            TimeDuration.valueOf(ADMIN_ATTEMPT_TIMEOUT_MS, TimeUnit.MILLISECONDS),
            RetryPolicies.retryUpToMaximumCountWithFixedSleep(SUBMIT_ATTEMPTS, RETRY_SLEEP));
    this.leaderLocal = new LeaderLocalCalls(server, group.getGroupId(), leaderReady);
  }

  /** A command through the command client. */
  CommandResult command(MapCommand command) throws IOException {
    return send(commandClient, command, 0);
  }

  /**
   * A command harmless applied twice ({@link LeaderLocalCalls}): through this node's own server
   * while it leads, else (or once it stopped leading) through the command client.
   */
  CommandResult commandAsLeader(MapCommand command) throws IOException {
    return send(commandClient, command, LOCAL_COMMIT_TIMEOUT_MS);
  }

  /**
   * A heartbeat: the leader's own commits locally, since its client may still aim at a dead former
   * leader and the leader must not lose its lease to that.
   */
  CommandResult heartbeat(MapCommand heartbeat) throws IOException {
    return send(heartbeatClient, heartbeat, heartbeatAttemptMs);
  }

  /**
   * The leader's map, read linearizably.
   *
   * @param throughOwnServer ask this node's own server, which learns who leads from the Raft
   *     traffic itself and gets the read index from it, rather than the client's guess of the
   *     leader (after a leader's death, its dead address first). Only for an initial voter that is
   *     a member and knows a leader: the client knows the initial voters only.
   */
  ClusterMapSnapshot readMap(boolean throughOwnServer) throws IOException {
    RaftClientReply reply =
        throughOwnServer
            ? commandClient.io().sendReadOnly(Message.EMPTY, self)
            : commandClient.io().sendReadOnly(Message.EMPTY);
    if (!reply.isSuccess()) {
      throw reply.getException() != null
          ? reply.getException()
          : new IOException("query failed: " + reply);
    }
    return ClusterMapSnapshot.parseFrom(reply.getMessage().getContent().toByteArray());
  }

  /** The client for configuration changes ({@link #ADMIN_ATTEMPT_TIMEOUT_MS}). */
  RaftClient admin() {
    return adminClient;
  }

  /** How many commands this node committed through its own server as the leader. */
  long leaderLocalCommands() {
    return leaderLocal.sent();
  }

  private CommandResult send(RaftClient client, MapCommand command, long localTimeoutMs)
      throws IOException {
    Message message = Message.valueOf(UnsafeByteOperations.unsafeWrap(command.toByteArray()));
    RaftClientReply reply = localTimeoutMs > 0 ? leaderLocal.send(message, localTimeoutMs) : null;
    if (reply == null) {
      reply = client.io().send(message);
    }
    if (!reply.isSuccess()) {
      throw reply.getException() != null
          ? reply.getException()
          : new IOException("command failed: " + reply);
    }
    return CommandResult.parseFrom(reply.getMessage().getContent().toByteArray());
  }

  @Override
  public void close() throws IOException {
    try {
      heartbeatClient.close();
      adminClient.close();
    } finally {
      commandClient.close();
    }
  }
}
