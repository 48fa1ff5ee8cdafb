package io.peerflash.client;

import io.grpc.Status;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;

/**
 * {@link PeerFlashClient#writeWithRetry}: a pipelined upload over write streams that resends, with
 * the client's redirect-following and failing-over write, the chunks a stream lost.
 */
final class ChunkedUpload {
  private ChunkedUpload() {}

  /**
   * @return the chunks that went through to shared storage before their ack
   */
  static long write(
      PeerFlashClient client,
      Routing routing,
      String volume,
      long offset,
      long length,
      int chunkBytes,
      int maxInFlight,
      PeerFlashClient.ChunkSource source)
      throws IOException {
    Objects.requireNonNull(volume, "volume");
    Objects.requireNonNull(source, "source");
    if (length < 0 || chunkBytes < 1) {
      throw new IllegalArgumentException("bad length " + length + " or chunk size " + chunkBytes);
    }
    if (length == 0) {
      return 0;
    }
    int first = (int) Math.min(chunkBytes, length);
    long wentThrough = client.write(volume, offset, source.read(0, first)) ? 1 : 0;
    long pos = first;
    while (pos < length) {
      ConcurrentLinkedQueue<Long> resend = new ConcurrentLinkedQueue<>();
      AtomicReference<PeerFlashException> fatal = new AtomicReference<>();
      AtomicBoolean stop = new AtomicBoolean();
      try (WriteStreamSession session = client.openWriteStream(volume, maxInFlight)) {
        while (pos < length && !stop.get()) {
          long p = pos;
          int n = (int) Math.min(chunkBytes, length - p);
          session
              .write(volume, offset + p, source.read(p, n))
              .whenComplete(
                  (ok, t) -> {
                    if (t == null) {
                      return;
                    }
                    PeerFlashException e =
                        PeerFlashException.from(
                            t instanceof CompletionException && t.getCause() != null
                                ? t.getCause()
                                : t);
                    if (resendable(e.code())) {
                      String owner = PeerFlashException.ownerAddress(e.owner());
                      if (owner != null) {
                        routing.learnOwner(volume, owner);
                      }
                      resend.add(p);
                    } else {
                      fatal.compareAndSet(null, e);
                    }
                    stop.set(true);
                  });
          pos += n;
        }
        // close() waits for every streamed chunk's answer.
        session.close();
        wentThrough += session.wentThrough();
      }
      if (fatal.get() != null) {
        throw fatal.get();
      }
      List<Long> again = new ArrayList<>(resend);
      again.sort(null);
      for (long p : again) {
        if (client.write(
            volume, offset + p, source.read(p, (int) Math.min(chunkBytes, length - p)))) {
          wentThrough++;
        }
      }
    }
    return wentThrough;
  }

  private static boolean resendable(Status.Code code) {
    return code == Status.Code.UNAVAILABLE
        || code == Status.Code.FAILED_PRECONDITION
        || code == Status.Code.CANCELLED
        || code == Status.Code.DEADLINE_EXCEEDED;
  }
}
