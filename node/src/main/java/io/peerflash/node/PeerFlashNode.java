package io.peerflash.node;

import java.io.IOException;

/** A running node: the cache engine, the destager and the gRPC server. */
public final class PeerFlashNode implements AutoCloseable {
  private PeerFlashNode() {}

  /** Opens the local cache and shared storage, recovers, and starts serving. */
  public static PeerFlashNode start(NodeConfig config) throws IOException {
    throw new UnsupportedOperationException("not yet wired");
  }

  /** The bound client port (useful with port 0). */
  public int port() {
    return 0;
  }

  /** Blocks until the node has shut down. */
  public void awaitTermination() throws InterruptedException {}

  /** Stops accepting, finishes in-flight requests, keeps dirty data for the next start. */
  @Override
  public void close() {}
}
