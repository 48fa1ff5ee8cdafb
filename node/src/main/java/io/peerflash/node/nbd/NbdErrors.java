package io.peerflash.node.nbd;

import io.grpc.StatusRuntimeException;
import io.peerflash.node.engine.CacheException;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;

/** Maps a failure of the engine or of a forwarded call to the NBD error a client gets. */
final class NbdErrors {
  private NbdErrors() {}

  /** A request the front end refuses before calling the engine, with the NBD error to send. */
  static final class Refused extends RuntimeException {
    private static final long serialVersionUID = 1L;
    final int error;

    Refused(int error, String message) {
      super(message, null, false, false);
      this.error = error;
    }
  }

  static Throwable unwrap(Throwable t) {
    while ((t instanceof CompletionException || t instanceof ExecutionException)
        && t.getCause() != null) {
      t = t.getCause();
    }
    return t;
  }

  /** The NBD error for a failure: EINVAL, EPERM, ENOSPC or, for anything storage-side, EIO. */
  static int errorOf(Throwable failure) {
    Throwable t = unwrap(failure);
    if (t instanceof Refused r) {
      return r.error;
    }
    if (t instanceof CacheException c) {
      return switch (c.reason()) {
        case INVALID_ARGUMENT -> NbdProtocol.EINVAL;
        case RESOURCE_EXHAUSTED -> NbdProtocol.ENOSPC;
        default -> NbdProtocol.EIO;
      };
    }
    if (t instanceof StatusRuntimeException s) {
      return switch (s.getStatus().getCode()) {
        case INVALID_ARGUMENT, OUT_OF_RANGE -> NbdProtocol.EINVAL;
        case PERMISSION_DENIED -> NbdProtocol.EPERM;
        case RESOURCE_EXHAUSTED -> NbdProtocol.ENOSPC;
        default -> NbdProtocol.EIO;
      };
    }
    return NbdProtocol.EIO;
  }

  static String messageOf(Throwable failure) {
    Throwable t = unwrap(failure);
    String m = t.getMessage();
    return m == null ? t.getClass().getSimpleName() : m;
  }
}
