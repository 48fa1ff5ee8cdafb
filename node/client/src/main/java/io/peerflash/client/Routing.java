package io.peerflash.client;

import io.grpc.ConnectivityState;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;

/**
 * Where a client's calls go: one lazily opened channel per node address, the known addresses (the
 * targets given, then owners learned from redirects) and, per volume, the address of its owner as
 * last seen. Shared by a client and its {@link PeerFlashClient#withDeadline} views. Thread-safe.
 */
final class Routing {
  private final PeerFlashClient.ChannelFactory factory; // null: only the fixed channels
  private final boolean ownsFixed;
  private final Map<String, ManagedChannel> fixed;
  private final List<String> targets;
  private final CopyOnWriteArrayList<String> known;
  private final Map<String, ManagedChannel> opened = new LinkedHashMap<>(); // guarded by this
  private final Map<String, String> owners = new ConcurrentHashMap<>();
  private volatile String preferred;
  private volatile boolean reached;
  private boolean closed; // guarded by this

  /** Every address is opened through {@code factory} and closed with the client. */
  Routing(List<String> targets, PeerFlashClient.ChannelFactory factory) {
    this(targets, factory, Map.of(), true);
  }

  /**
   * Starts from one existing channel, known under {@code address}; other addresses (redirects) can
   * be reached only when {@code factory} is not null.
   */
  Routing(
      String address,
      ManagedChannel channel,
      boolean ownsChannel,
      PeerFlashClient.ChannelFactory factory) {
    this(List.of(address), factory, Map.of(address, channel), ownsChannel);
  }

  private Routing(
      List<String> targets,
      PeerFlashClient.ChannelFactory factory,
      Map<String, ManagedChannel> fixed,
      boolean ownsFixed) {
    if (targets.isEmpty()) {
      throw new IllegalArgumentException("no target");
    }
    this.targets = List.copyOf(targets);
    this.factory = factory;
    this.fixed = Map.copyOf(fixed);
    this.ownsFixed = ownsFixed;
    this.known = new CopyOnWriteArrayList<>(targets);
  }

  /** Whether a call can be sent to {@code address} at all. */
  boolean canOpen(String address) {
    return factory != null || fixed.containsKey(address);
  }

  /** The channel to {@code address}, opened on first use. */
  ManagedChannel channel(String address) {
    ManagedChannel ch = fixed.get(address);
    if (ch != null) {
      return ch;
    }
    synchronized (this) {
      if (closed) {
        throw new PeerFlashException(Status.CANCELLED.withDescription("client is closed"));
      }
      if (factory == null) {
        throw new IllegalStateException("no channel to " + address);
      }
      return opened.computeIfAbsent(address, factory::open);
    }
  }

  /** Where a call about {@code volume} (null: no volume) goes first. */
  String first(String volume) {
    if (volume != null) {
      String owner = owners.get(volume);
      if (owner != null) {
        return owner;
      }
    }
    String p = preferred;
    return p != null ? p : targets.get(0);
  }

  /** The next address to try after the ones in {@code failed}, or null when all have failed. */
  String next(String volume, Set<String> failed) {
    List<String> order = new ArrayList<>();
    if (volume != null && owners.get(volume) != null) {
      order.add(owners.get(volume));
    }
    if (preferred != null) {
      order.add(preferred);
    }
    order.addAll(known);
    for (String address : order) {
      if (!failed.contains(address) && canOpen(address)) {
        return address;
      }
    }
    return null;
  }

  /** {@code address} answered a call about {@code volume} (null: no volume). */
  void answered(String volume, String address) {
    reached = true;
    preferred = address;
    if (volume != null) {
      owners.put(volume, address);
    }
  }

  /** Some node answered, if only with an error: the cluster exists, so failures are transient. */
  void markReached() {
    reached = true;
  }

  boolean reached() {
    return reached;
  }

  /** A node named {@code address} as the owner of {@code volume}. */
  void learnOwner(String volume, String address) {
    if (!canOpen(address)) {
      return;
    }
    owners.put(volume, address);
    known.addIfAbsent(address);
  }

  /**
   * {@code address} could not be reached: stop sending there first, and let its channel reconnect
   * now rather than after gRPC's reconnect backoff, so a restarted node is found at the next try.
   */
  void unreachable(String volume, String address, ManagedChannel channel) {
    if (volume != null) {
      owners.remove(volume, address);
    }
    if (address.equals(preferred)) {
      preferred = null;
    }
    if (channel.getState(false) != ConnectivityState.SHUTDOWN) {
      channel.resetConnectBackoff();
    }
  }

  /** The cached owner address of {@code volume}, or null. */
  String owner(String volume) {
    return owners.get(volume);
  }

  List<String> knownAddresses() {
    return List.copyOf(known);
  }

  List<String> targets() {
    return targets;
  }

  synchronized boolean closed() {
    return closed;
  }

  /** Shuts down every channel the client owns; later calls fail. */
  void close() {
    List<ManagedChannel> toClose;
    synchronized (this) {
      if (closed) {
        return;
      }
      closed = true;
      toClose = new ArrayList<>(opened.values());
    }
    if (ownsFixed) {
      toClose.addAll(fixed.values());
    }
    for (ManagedChannel ch : toClose) {
      ch.shutdown();
    }
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
    boolean interrupted = false;
    for (ManagedChannel ch : toClose) {
      try {
        if (interrupted
            || !ch.awaitTermination(
                Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS)) {
          ch.shutdownNow();
        }
      } catch (InterruptedException e) {
        interrupted = true;
        ch.shutdownNow();
      }
    }
    if (interrupted) {
      Thread.currentThread().interrupt();
    }
  }
}
