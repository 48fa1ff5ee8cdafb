package io.peerflash.node.cluster;

import io.peerflash.node.engine.CacheException;
import io.peerflash.proto.v1.CreateVolumeRequest;
import io.peerflash.proto.v1.SetPolicyRequest;
import io.peerflash.proto.v1.Volume;
import java.util.List;

/**
 * What the client API needs from the cluster: where a volume lives, and volume administration
 * through the cluster map. Absent on a single node.
 */
public interface ClusterRouting {
  /** Trailer naming a volume's owner, {@code NODEID@HOST:PORT}, sent with FAILED_PRECONDITION. */
  String OWNER_TRAILER = "peerflash-owner";

  /**
   * Trailer a node adds to an UNAVAILABLE that will not clear by itself soon, naming the volume's
   * state (OFFLINE: no copy can take over); clients do not retry it.
   */
  String VOLUME_STATE_TRAILER = "peerflash-volume-state";

  /**
   * Lets an I/O call proceed only on the volume's owner.
   *
   * @throws io.grpc.StatusRuntimeException FAILED_PRECONDITION with the {@link #OWNER_TRAILER} when
   *     another node owns it, UNAVAILABLE while it has no live owner (with the {@link
   *     #VOLUME_STATE_TRAILER} when none can take over), NOT_FOUND when unknown
   */
  void routeIo(String volume);

  Volume createVolume(CreateVolumeRequest request) throws CacheException;

  void deleteVolume(String name) throws CacheException;

  Volume setPolicy(SetPolicyRequest request) throws CacheException;

  Volume getVolume(String name) throws CacheException;

  List<Volume> listVolumes();
}
