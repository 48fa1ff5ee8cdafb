package io.peerflash.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.Server;
import io.grpc.Status;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.grpc.stub.StreamObserver;
import io.peerflash.proto.v1.AddNodeRequest;
import io.peerflash.proto.v1.AddNodeResponse;
import io.peerflash.proto.v1.ClusterMember;
import io.peerflash.proto.v1.ClusterServiceGrpc;
import io.peerflash.proto.v1.ClusterStatus;
import io.peerflash.proto.v1.DrainNodeRequest;
import io.peerflash.proto.v1.DrainNodeResponse;
import io.peerflash.proto.v1.GetClusterStatusRequest;
import io.peerflash.proto.v1.MemberState;
import io.peerflash.proto.v1.MoveVolumeRequest;
import io.peerflash.proto.v1.MoveVolumeResponse;
import io.peerflash.proto.v1.RemoveNodeRequest;
import io.peerflash.proto.v1.RemoveNodeResponse;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** `volume move`, `cluster drain` and `cluster add-node` against a scripted ClusterService. */
class ClusterCommandTest {
  /** Answers as scripted and records what it was asked. */
  static final class FakeClusterService extends ClusterServiceGrpc.ClusterServiceImplBase {
    final List<Object> requests = new ArrayList<>();
    final Deque<DrainNodeResponse> drainAnswers = new ArrayDeque<>();
    volatile Status failWith;

    private synchronized boolean failed(Object req, StreamObserver<?> out) {
      requests.add(req);
      if (failWith != null) {
        out.onError(failWith.asRuntimeException());
        return true;
      }
      return false;
    }

    @Override
    public void moveVolume(MoveVolumeRequest req, StreamObserver<MoveVolumeResponse> out) {
      if (failed(req, out)) {
        return;
      }
      out.onNext(
          MoveVolumeResponse.newBuilder()
              .setPreviousOwner("n1")
              .setOwner(req.getTo())
              .setEpoch(7)
              .setMoved(true)
              .setDestagedBytes(3 << 20)
              .setFencedMs(42)
              .build());
      out.onCompleted();
    }

    @Override
    public void drainNode(DrainNodeRequest req, StreamObserver<DrainNodeResponse> out) {
      if (failed(req, out)) {
        return;
      }
      synchronized (this) {
        // The last scripted answer repeats.
        out.onNext(drainAnswers.size() > 1 ? drainAnswers.poll() : drainAnswers.peek());
      }
      out.onCompleted();
    }

    @Override
    public void removeNode(RemoveNodeRequest req, StreamObserver<RemoveNodeResponse> out) {
      if (failed(req, out)) {
        return;
      }
      out.onNext(RemoveNodeResponse.newBuilder().addVoters("n1").addVoters("n3").build());
      out.onCompleted();
    }

    /** The map the CLI reads before and during a drain: three UP members, no volume. */
    volatile ClusterStatus status =
        ClusterStatus.newBuilder()
            .setLeaderId("n1")
            .addMembers(ClusterMember.newBuilder().setId("n1").setState(MemberState.MEMBER_UP))
            .addMembers(ClusterMember.newBuilder().setId("n2").setState(MemberState.MEMBER_UP))
            .addMembers(ClusterMember.newBuilder().setId("n3").setState(MemberState.MEMBER_UP))
            .build();

    @Override
    public void getClusterStatus(GetClusterStatusRequest req, StreamObserver<ClusterStatus> out) {
      out.onNext(status);
      out.onCompleted();
    }

    @Override
    public void addNode(AddNodeRequest req, StreamObserver<AddNodeResponse> out) {
      if (failed(req, out)) {
        return;
      }
      out.onNext(
          AddNodeResponse.newBuilder()
              .setMember(
                  ClusterMember.newBuilder()
                      .setId(req.getNode())
                      .setState(MemberState.MEMBER_UP)
                      .setGrpcAddress("10.0.0.4:7601"))
              .addVoters("n1")
              .addVoters(req.getNode())
              .build());
      out.onCompleted();
    }
  }

  private final FakeClusterService fake = new FakeClusterService();
  private Server server;
  private String serverName;
  private ByteArrayOutputStream out;
  private ByteArrayOutputStream err;

  @BeforeEach
  void start() throws Exception {
    serverName = InProcessServerBuilder.generateName();
    server = InProcessServerBuilder.forName(serverName).addService(fake).build().start();
  }

  @AfterEach
  void stop() throws Exception {
    server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
  }

  private int run(String... args) {
    out = new ByteArrayOutputStream();
    err = new ByteArrayOutputStream();
    PeerFlashCli cli =
        new PeerFlashCli(
            target -> InProcessChannelBuilder.forName(serverName).build(),
            new PrintStream(out, true, StandardCharsets.UTF_8),
            new PrintStream(err, true, StandardCharsets.UTF_8));
    return cli.execute(args);
  }

  private String out() {
    return out.toString(StandardCharsets.UTF_8);
  }

  private String err() {
    return err.toString(StandardCharsets.UTF_8);
  }

  private static DrainNodeResponse drain(List<String> owned, List<String> replicas) {
    return DrainNodeResponse.newBuilder()
        .setMember(ClusterMember.newBuilder().setId("n2").setState(MemberState.MEMBER_DRAINING))
        .addAllOwnedVolumes(owned)
        .addAllReplicaOf(replicas)
        .build();
  }

  @Test
  void volumeMoveSendsTheRequestAndReportsTheHandover() {
    assertThat(run("volume", "move", "vm1", "--to", "n3", "--timeout", "90s")).as(err()).isZero();
    MoveVolumeRequest req = (MoveVolumeRequest) fake.requests.get(0);
    assertThat(req.getVolume()).isEqualTo("vm1");
    assertThat(req.getTo()).isEqualTo("n3");
    assertThat(req.getTimeoutMs()).isEqualTo(90_000);
    assertThat(out())
        .contains("moved volume vm1 from n1 to n3 (epoch 7): destaged 3.0 MiB, I/O paused 42 ms");
    assertThat(run("volume", "move", "vm1", "--to", "n3", "-o", "json")).as(err()).isZero();
    assertThat(out())
        .contains("\"previous_owner\": \"n1\"")
        .contains("\"owner\": \"n3\"")
        .contains("\"epoch\": \"7\"")
        .contains("\"fenced_ms\": \"42\"");

    assertThat(run("volume", "move", "vm1")).isEqualTo(2);
    assertThat(err()).contains("--to");
    assertThat(run("volume", "move", "vm1", "--to", "n3", "--timeout", "soon")).isEqualTo(2);
    assertThat(err()).contains("not a positive duration");

    fake.failWith = Status.NOT_FOUND.withDescription("node 'n9' is not a member of the cluster");
    assertThat(run("volume", "move", "vm1", "--to", "n9")).isEqualTo(1);
    assertThat(err().strip())
        .isEqualTo("error: NOT_FOUND: node 'n9' is not a member of the cluster");
  }

  @Test
  void drainShowsProgressThenRemovesTheNode() {
    fake.drainAnswers.add(drain(List.of("b"), List.of("a")));
    fake.drainAnswers.add(drain(List.of(), List.of("a")));
    fake.drainAnswers.add(drain(List.of(), List.of()));
    assertThat(run("cluster", "drain", "n2")).as(err()).isZero();
    assertThat(err())
        .contains("draining n2: owns 1 volume (b), replica of 1 volume (a)")
        .contains("draining n2: owns no volume, replica of 1 volume (a)")
        .contains("draining n2: owns no volume, replica of no volume");
    assertThat(fake.requests.get(fake.requests.size() - 1))
        .isEqualTo(RemoveNodeRequest.newBuilder().setNode("n2").build());
    assertThat(out())
        .contains("node n2 is drained and removed from the cluster map and the Raft group")
        .contains("voters: n1, n3")
        .contains("it can be stopped now");
  }

  @Test
  void drainThatCannotFinishFailsAtOnceWithTheReasonAndTheFix() {
    fake.status =
        fake.status.toBuilder()
            .setMembers(2, ClusterMember.newBuilder().setId("n3").setState(MemberState.MEMBER_DOWN))
            .addVolumes(
                io.peerflash.proto.v1.ClusterVolume.newBuilder()
                    .setName("vm1")
                    .setMode(io.peerflash.proto.v1.CacheMode.WRITE_BACK)
                    .setRequestedReplicas(1)
                    .setOwner("n1")
                    .addReplicaSet("n2"))
            .build();

    assertThat(run("cluster", "drain", "n2")).isEqualTo(1);

    assertThat(err())
        .contains(
            "error: FAILED_PRECONDITION: cannot drain n2: no UP member can take another replica"
                + " of volume vm1 (it wants 1; owner n1, replicas n2): add a node (cluster"
                + " add-node), or lower its replicas (volume set-policy vm1 --replicas 0)")
        .contains("nothing was changed");
    assertThat(fake.requests).isEmpty();
  }

  @Test
  void drainOfAnUnknownNodeNamesTheMembers() {
    assertThat(run("cluster", "drain", "n9")).isEqualTo(1);
    assertThat(err())
        .contains("NOT_FOUND: node n9 is not a member of the cluster (members: n1, n2, n3)");
    assertThat(fake.requests).isEmpty();
  }

  @Test
  void drainWarnsWhenItLeavesAnEvenNumberOfVoters() {
    fake.drainAnswers.add(drain(List.of(), List.of()));
    assertThat(run("cluster", "drain", "n2")).as(err()).isZero();
    assertThat(err())
        .contains(
            "warning: after removing n2 the Raft group has 2 voters: an even number survives no"
                + " more failures than 1 would (0); add a node to make it 3");
  }

  @Test
  void drainGivesUpAtItsTimeoutWithoutRemoving() {
    fake.drainAnswers.add(drain(List.of("b"), List.of()));
    assertThat(run("cluster", "drain", "n2", "--timeout", "1s")).isEqualTo(1);
    assertThat(err())
        .contains("error: DEADLINE_EXCEEDED: node n2 still owns [b]")
        .contains("(--timeout); it stays DRAINING");
    assertThat(fake.requests).noneMatch(r -> r instanceof RemoveNodeRequest);
  }

  @Test
  void drainRemoveAndAddNodeAnswerInJsonWhenAsked() {
    fake.drainAnswers.add(drain(List.of(), List.of()));
    assertThat(run("cluster", "drain", "n2", "-o", "json")).as(err()).isZero();
    com.google.gson.JsonObject drained =
        com.google.gson.JsonParser.parseString(out()).getAsJsonObject();
    assertThat(drained.getAsJsonArray("voters").toString()).isEqualTo("[\"n1\",\"n3\"]");

    assertThat(run("cluster", "remove-node", "n2", "-o", "json")).as(err()).isZero();
    assertThat(
            com.google.gson.JsonParser.parseString(out())
                .getAsJsonObject()
                .getAsJsonArray("voters")
                .size())
        .isEqualTo(2);

    assertThat(run("cluster", "add-node", "n4", "--raft", "10.0.0.4:7700", "-o", "json"))
        .as(err())
        .isZero();
    com.google.gson.JsonObject added =
        com.google.gson.JsonParser.parseString(out()).getAsJsonObject();
    assertThat(added.getAsJsonObject("member").get("grpc_address").getAsString())
        .isEqualTo("10.0.0.4:7601");
  }

  @Test
  void addNodeReportsTheNewMember() {
    assertThat(run("cluster", "add-node", "n4", "--raft", "10.0.0.4:7700")).as(err()).isZero();
    AddNodeRequest req = (AddNodeRequest) fake.requests.get(0);
    assertThat(req.getNode()).isEqualTo("n4");
    assertThat(req.getRaftAddress()).isEqualTo("10.0.0.4:7700");
    assertThat(req.getTimeoutMs()).isEqualTo(60_000);
    assertThat(out())
        .contains("added node n4 (raft 10.0.0.4:7700): UP at 10.0.0.4:7601; voters: n1, n4");

    assertThat(run("cluster", "add-node", "n4")).isEqualTo(2);
    assertThat(err()).contains("--raft");
    // A failure the node reports is printed once, not retried.
    fake.failWith = Status.UNAVAILABLE.withDescription("nothing answers at 10.0.0.4:7700");
    int before = fake.requests.size();
    assertThat(run("cluster", "add-node", "n4", "--raft", "10.0.0.4:7700")).isEqualTo(1);
    assertThat(err()).contains("error: UNAVAILABLE: nothing answers at 10.0.0.4:7700");
    assertThat(fake.requests.size() - before).isEqualTo(1);
  }
}
