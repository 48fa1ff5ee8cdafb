package io.peerflash.node.observe;

/** Times requests as the client sees them, where they enter the node (gRPC or NBD). */
public interface RequestTimer {
  /** Where a request entered the node. */
  enum FrontEnd {
    GRPC,
    NBD
  }

  /** What it asked for. */
  enum Op {
    WRITE,
    READ,
    TRIM,
    FLUSH
  }

  /**
   * A request ended.
   *
   * @param startNanos when it was received ({@link System#nanoTime})
   * @param ok whether it succeeded
   */
  void record(FrontEnd frontEnd, Op op, long startNanos, boolean ok);

  RequestTimer NONE = (frontEnd, op, startNanos, ok) -> {};
}
