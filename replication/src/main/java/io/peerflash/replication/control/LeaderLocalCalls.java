package io.peerflash.replication.control;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;
import org.apache.ratis.protocol.ClientId;
import org.apache.ratis.protocol.Message;
import org.apache.ratis.protocol.RaftClientReply;
import org.apache.ratis.protocol.RaftClientRequest;
import org.apache.ratis.protocol.RaftGroupId;
import org.apache.ratis.server.RaftServer;

/**
 * Commands the Raft leader submits to its own server instead of through a Raft client.
 *
 * <p>A client sends to the node it last saw lead. After that leader died, its first attempt goes to
 * the dead node and waits out a whole per-attempt timeout (a killed host's address does not refuse,
 * it hangs), and its next guess, a random other member, may be dead too. The leader's own commands
 * are the ones that cannot wait: its heartbeats (its own lease), the DOWN marks of silent nodes and
 * the failovers that follow. Taken locally, they cost one commit.
 *
 * <p>Only for commands that are harmless applied twice (conditional on an epoch or a heartbeat
 * count, or a heartbeat): when this node stops leading while one is pending, Ratis answers "not
 * leader" although the entry may still commit under the next leader, and the caller resends it
 * through its client; and a command that timed out here may still commit after its caller tried
 * again. Calls from here and from a client carry different client ids, so Ratis' retry cache cannot
 * tell them apart.
 */
final class LeaderLocalCalls {
  private final RaftServer server;
  private final RaftGroupId group;
  private final BooleanSupplier leaderReady;
  private final ClientId clientId = ClientId.randomId();
  private final AtomicLong callIds = new AtomicLong();
  private final AtomicLong sent = new AtomicLong();

  LeaderLocalCalls(RaftServer server, RaftGroupId group, BooleanSupplier leaderReady) {
    this.server = server;
    this.group = group;
    this.leaderReady = leaderReady;
  }

  /**
   * Submits {@code message} as a write to this node's server if it is the ready leader.
   *
   * @return its reply; null when this node does not lead, or stopped leading before the command
   *     committed (send it through a client then)
   * @throws IOException when it did not commit within {@code timeoutMs} (e.g. the leader lost its
   *     majority) or the server failed it
   */
  RaftClientReply send(Message message, long timeoutMs) throws IOException {
    if (!leaderReady.getAsBoolean()) {
      return null;
    }
    RaftClientRequest request =
        RaftClientRequest.newBuilder()
            .setClientId(clientId)
            .setServerId(server.getId())
            .setGroupId(group)
            .setCallId(callIds.incrementAndGet())
            .setMessage(message)
            .setType(RaftClientRequest.writeRequestType())
            .setTimeoutMs(timeoutMs)
            .build();
    sent.incrementAndGet();
    RaftClientReply reply;
    try {
      reply = server.submitClientRequestAsync(request).get(timeoutMs, TimeUnit.MILLISECONDS);
    } catch (TimeoutException e) {
      throw new IOException(
          "not committed within " + timeoutMs + " ms by this node as the Raft leader", e);
    } catch (ExecutionException e) {
      throw e.getCause() instanceof IOException io ? io : new IOException(e.getCause());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new InterruptedIOException("interrupted waiting for a local Raft commit");
    }
    if (reply.getNotLeaderException() != null
        || reply.getLeaderNotReadyException() != null
        || reply.getLeaderSteppingDownException() != null) {
      return null;
    }
    return reply;
  }

  /** How many commands went to the local server (a test's evidence of the path taken). */
  long sent() {
    return sent.get();
  }
}
