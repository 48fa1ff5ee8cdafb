package io.peerflash.node.wire;

import io.grpc.Status;
import io.peerflash.node.engine.CacheException;
import io.peerflash.node.engine.VolumeStatusView;
import io.peerflash.node.index.VolumeInfo;
import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.Volume;
import io.peerflash.proto.v1.VolumePolicy;
import io.peerflash.proto.v1.VolumeState;
import io.peerflash.util.Texts;

/** Translation between engine values and peerflash.v1 messages and statuses. */
public final class Protos {
  private Protos() {}

  public static Status toStatus(CacheException e) {
    Status.Code code =
        switch (e.reason()) {
          case NOT_FOUND -> Status.Code.NOT_FOUND;
          case ALREADY_EXISTS -> Status.Code.ALREADY_EXISTS;
          case INVALID_ARGUMENT -> Status.Code.INVALID_ARGUMENT;
          case RESOURCE_EXHAUSTED -> Status.Code.RESOURCE_EXHAUSTED;
          case UNAVAILABLE -> Status.Code.UNAVAILABLE;
          case DATA_LOSS -> Status.Code.DATA_LOSS;
          case FAILED_PRECONDITION -> Status.Code.FAILED_PRECONDITION;
          case DEADLINE_EXCEEDED -> Status.Code.DEADLINE_EXCEEDED;
        };
    return Status.fromCode(code).withDescription(Texts.description(e.getMessage()));
  }

  public static VolumeInfo.CacheMode mode(CacheMode mode) throws CacheException {
    return switch (mode) {
      case WRITE_BACK -> VolumeInfo.CacheMode.WRITE_BACK;
      case WRITE_THROUGH -> VolumeInfo.CacheMode.WRITE_THROUGH;
      case WRITE_AROUND -> VolumeInfo.CacheMode.WRITE_AROUND;
      default ->
          throw new CacheException(
              CacheException.Reason.INVALID_ARGUMENT,
              "policy.mode must be WRITE_BACK, WRITE_THROUGH or WRITE_AROUND");
    };
  }

  /**
   * Checks a policy's enums: the mode must be one of the three, and on_peer_loss unspecified or one
   * of the three (a value this version does not know is refused, never stored or passed on).
   */
  public static void checkPolicy(io.peerflash.proto.v1.VolumePolicy policy) throws CacheException {
    mode(policy.getMode());
    if (policy.getOnPeerLoss() == io.peerflash.proto.v1.OnPeerLoss.UNRECOGNIZED) {
      throw new CacheException(
          CacheException.Reason.INVALID_ARGUMENT,
          "policy.on_peer_loss "
              + policy.getOnPeerLossValue()
              + " is unknown: use ON_PEER_LOSS_WRITE_THROUGH, ON_PEER_LOSS_BLOCK or"
              + " ON_PEER_LOSS_ACCEPT");
    }
  }

  /**
   * The wire's unsigned replica count as an int: 2^32-1 must not turn into -1 (the engine's range
   * check names the rule).
   */
  public static int replicas(int wire) {
    return wire < 0 ? Integer.MAX_VALUE : wire;
  }

  public static CacheMode mode(VolumeInfo.CacheMode mode) {
    return switch (mode) {
      case WRITE_BACK -> CacheMode.WRITE_BACK;
      case WRITE_THROUGH -> CacheMode.WRITE_THROUGH;
      case WRITE_AROUND -> CacheMode.WRITE_AROUND;
    };
  }

  /** The wire state of a volume's health. */
  public static VolumeState state(VolumeStatusView.Health health) {
    return switch (health) {
      case HEALTHY -> VolumeState.HEALTHY;
      case STORAGE_FAILING -> VolumeState.STORAGE_FAILING;
      case CORRUPT_DIRTY_DATA -> VolumeState.CORRUPT_DIRTY_DATA;
      case LOCAL_FLASH_FAILED -> VolumeState.LOCAL_FLASH_FAILED;
    };
  }

  public static Volume volume(VolumeStatusView s) {
    VolumeInfo info = s.info();
    io.peerflash.node.health.VolumeHealth.Assessment health =
        io.peerflash.node.health.VolumeHealth.assess(
            new io.peerflash.node.health.VolumeHealth.OwnerReport(
                state(s.health()), s.healthDetail(), s.dirtyBytes(), ""));
    return Volume.newBuilder()
        .setName(info.name())
        .setSizeBytes(info.sizeBytes())
        .setPolicy(
            VolumePolicy.newBuilder().setMode(mode(info.mode())).setReplicas(info.replicas()))
        .setState(health.state())
        .setStateDetail(health.reason())
        .addAllProblems(health.problems())
        .setDirtyBytes(s.dirtyBytes())
        .setCachedBytes(s.cachedBytes())
        .setOldestDirtyAgeMs(s.oldestDirtyAgeMs())
        .setCorruptBlocks(s.corruptBlocks())
        .build();
  }
}
