package io.peerflash.cli;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import org.slf4j.LoggerFactory;

/**
 * Silences library logging in client commands. Without a logback configuration, logback logs
 * netty's DEBUG chatter to stdout, which would corrupt {@code read --out -}; and gRPC logs
 * connection failures with stack traces that the CLI already reports as one line. Loading the
 * command's TLS identity is not news either.
 */
final class ClientLogging {
  // java.util.logging holds loggers weakly: a level set on an unreferenced logger can be lost.
  private static final java.util.logging.Logger GRPC_JUL =
      java.util.logging.Logger.getLogger("io.grpc");

  private ClientLogging() {}

  static void quiet() {
    GRPC_JUL.setLevel(java.util.logging.Level.OFF);
    if (LoggerFactory.getLogger(org.slf4j.Logger.ROOT_LOGGER_NAME) instanceof Logger root) {
      root.setLevel(Level.WARN);
    }
    if (LoggerFactory.getLogger("io.grpc") instanceof Logger grpc) {
      grpc.setLevel(Level.OFF);
    }
    // The node's configuration logs io.peerflash at INFO; a command says what it did itself, and
    // only a warning about its own certificate (near expiry, a reload refused) is worth a line.
    if (LoggerFactory.getLogger("io.peerflash.security") instanceof Logger security) {
      security.setLevel(Level.WARN);
    }
  }
}
