package io.peerflash.node.cluster;

import io.peerflash.node.engine.CacheException;
import io.peerflash.proto.v1.CreateVolumeRequest;
import io.peerflash.proto.v1.SetPolicyRequest;
import io.peerflash.proto.v1.Volume;
import java.util.List;
import java.util.concurrent.CompletableFuture;

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

  /** The volume as this node's replica of the map has it (which may lag the leader's). */
  Volume getVolume(String name) throws CacheException;

  /**
   * Completes once this node's map holds every change committed before the call (a volume created a
   * moment ago through another node is then known here); fails when the leader cannot be reached
   * within {@link #CATCH_UP_TIMEOUT_MS}. Callers use it when a name is missing from the map before
   * they answer that no such volume exists.
   */
  CompletableFuture<Void> catchUp();

  /** How long {@link #catchUp} waits for the leader's answer and this node's applying it. */
  long CATCH_UP_TIMEOUT_MS = 5_000;

  List<Volume> listVolumes();
}
