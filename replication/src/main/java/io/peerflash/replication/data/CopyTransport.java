package io.peerflash.replication.data;

import io.grpc.Status;
import io.peerflash.proto.v1.ReplicateAck;
import io.peerflash.proto.v1.ReplicateRequest;

/**
 * How an owner's requests of copies reach one replica node and its acks come back: a stream opened
 * per {@link PeerReplicator} generation. Two carry it: the replica link (length-prefixed frames
 * over mutual TLS, {@code io.peerflash.replication.link}) and the Replicate gRPC stream ({@link
 * GrpcCopyTransport}).
 */
public interface CopyTransport {
  /** What a stream tells its owner; called one at a time, never after {@link #failed}. */
  interface Listener {
    /** The stream can carry requests now (connected, TLS handshake done). */
    void ready();

    void ack(ReplicateAck ack);

    /** The stream is gone: the peer ended it, or the connection or its setup failed. */
    void failed(Status why);
  }

  /** One stream; requests sent before it is ready go out once it is. */
  interface Stream {
    /** Sends one request; may throw if the stream is already broken. */
    void send(ReplicateRequest request);

    /** Ends the stream from this side; the listener hears nothing more of it. */
    void cancel(Status why);
  }

  Stream open(Listener listener);
}
