package io.peerflash.node.health;

import io.peerflash.node.engine.VolumeStatusView;
import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.index.VolumeInfo.Role;
import java.util.function.ToIntFunction;

/**
 * Bytes at risk, defined once: dirty data of a volume this node owns while fewer copies of it exist
 * than the volume's policy wants, whatever the reason (no peer to hold one, a replica lost and not
 * yet replaced, re-protection still filling a new one). Such data is lost if this node fails before
 * it is destaged.
 */
public final class VolumeRisk {
  private final ToIntFunction<String> inSyncReplicas;

  /**
   * @param inSyncReplicas the number of replicas holding every dirty block of a volume now (0 on a
   *     single node)
   */
  public VolumeRisk(ToIntFunction<String> inSyncReplicas) {
    this.inSyncReplicas = inSyncReplicas;
  }

  public long atRiskBytes(VolumeStatusView v) {
    if (v.info().role() != Role.OWNER || v.info().mode() != CacheMode.WRITE_BACK) {
      return 0;
    }
    return atRiskBytes(
        v.dirtyBytes(), v.info().replicas(), inSyncReplicas.applyAsInt(v.info().name()));
  }

  /**
   * The definition: all of the owner's dirty bytes while fewer replicas are in sync than wanted.
   */
  public static long atRiskBytes(long dirtyBytes, int wantedReplicas, int inSyncReplicas) {
    return inSyncReplicas < wantedReplicas ? dirtyBytes : 0;
  }
}
