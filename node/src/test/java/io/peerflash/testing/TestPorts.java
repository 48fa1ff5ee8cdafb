package io.peerflash.testing;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Free loopback ports for test servers, taken below the kernel's ephemeral range (32768 and up on
 * Linux). A port from {@code new ServerSocket(0)} is ephemeral: after its server stops, an outgoing
 * connection can get it as its local port, and a restart of that server on the same port then fails
 * with "address already in use" (Ratis exits the JVM when that happens to its server).
 */
public final class TestPorts {
  private static final int FIRST = 20_000;
  private static final int LAST = 32_000;
  // Each JVM starts at its own place in the range, so concurrent test JVMs rarely collide.
  private static final AtomicInteger NEXT =
      new AtomicInteger(FIRST + (int) (ProcessHandle.current().pid() * 7919 % (LAST - FIRST)));

  private TestPorts() {}

  /** A port nothing listens on now, never handed out before by this JVM (until the range wraps). */
  public static synchronized int free() {
    for (int tries = 0; tries <= LAST - FIRST; tries++) {
      int port = NEXT.getAndIncrement();
      if (port > LAST) {
        NEXT.set(FIRST + 1);
        port = FIRST;
      }
      try (ServerSocket s = new ServerSocket()) {
        s.bind(new InetSocketAddress("127.0.0.1", port));
        return port;
      } catch (IOException inUse) {
        // try the next one
      }
    }
    throw new IllegalStateException("no free loopback port in " + FIRST + "-" + LAST);
  }
}
