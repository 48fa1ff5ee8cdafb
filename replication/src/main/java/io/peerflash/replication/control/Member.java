package io.peerflash.replication.control;

import io.peerflash.proto.v1.ClusterMember;
import io.peerflash.proto.v1.MemberState;
import java.util.Objects;

/**
 * A node of the cluster as the {@link ClusterMap} knows it.
 *
 * @param id node id (also its Raft peer id)
 * @param grpcAddress host:port of its peerflash.v1 gRPC services
 * @param raftAddress host:port of its Raft server
 * @param faultDomain replicas are spread over different fault domains; empty means "a domain of its
 *     own"
 * @param state UP, DOWN (lease expired by the leader's clock) or DRAINING (no new placements)
 * @param heartbeats how many Heartbeat/RegisterMember commands were applied for it; MarkDown
 *     compares against it so that a node heard from after the leader's decision is not marked down
 */
public record Member(
    String id,
    String grpcAddress,
    String raftAddress,
    String faultDomain,
    State state,
    long heartbeats) {

  /** Liveness state of a member. */
  public enum State {
    UP,
    DOWN,
    DRAINING
  }

  public Member {
    Objects.requireNonNull(id, "id");
    Objects.requireNonNull(grpcAddress, "grpcAddress");
    Objects.requireNonNull(raftAddress, "raftAddress");
    Objects.requireNonNull(faultDomain, "faultDomain");
    Objects.requireNonNull(state, "state");
  }

  public boolean isUp() {
    return state == State.UP;
  }

  /** UP or DRAINING: a live member whose lease the leader watches. */
  public boolean isAlive() {
    return state != State.DOWN;
  }

  Member withState(State newState) {
    return new Member(id, grpcAddress, raftAddress, faultDomain, newState, heartbeats);
  }

  Member heard() {
    return new Member(id, grpcAddress, raftAddress, faultDomain, state, heartbeats + 1);
  }

  public ClusterMember toProto() {
    return ClusterMember.newBuilder()
        .setId(id)
        .setGrpcAddress(grpcAddress)
        .setRaftAddress(raftAddress)
        .setFaultDomain(faultDomain)
        .setState(
            switch (state) {
              case UP -> MemberState.MEMBER_UP;
              case DOWN -> MemberState.MEMBER_DOWN;
              case DRAINING -> MemberState.MEMBER_DRAINING;
            })
        .setHeartbeats(heartbeats)
        .build();
  }

  static Member fromProto(ClusterMember p) {
    State s =
        switch (p.getState()) {
          case MEMBER_UP -> State.UP;
          case MEMBER_DOWN -> State.DOWN;
          case MEMBER_DRAINING -> State.DRAINING;
          default -> throw new IllegalArgumentException("bad member state " + p.getState());
        };
    return new Member(
        p.getId(),
        p.getGrpcAddress(),
        p.getRaftAddress(),
        p.getFaultDomain(),
        s,
        p.getHeartbeats());
  }
}
