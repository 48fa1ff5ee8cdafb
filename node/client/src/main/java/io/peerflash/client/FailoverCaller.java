package io.peerflash.client;

import io.grpc.ConnectivityState;
import io.grpc.Deadline;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.time.Duration;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.TimeUnit;

/**
 * Runs one call of a {@link PeerFlashClient} against the cluster: to the node {@link Routing} names
 * first, following redirects to a volume's owner, failing over to the other nodes and backing off
 * between rounds until the retry budget or the call's deadline runs out.
 */
final class FailoverCaller {
  static final long INITIAL_BACKOFF_NANOS = TimeUnit.MILLISECONDS.toNanos(50);
  static final long MAX_BACKOFF_NANOS = TimeUnit.SECONDS.toNanos(1);

  private final Routing routing;
  private final Duration retryBudget;

  FailoverCaller(Routing routing, Duration retryBudget) {
    this.routing = routing;
    this.retryBudget = retryBudget;
  }

  /** One attempt of a call on one node. */
  @FunctionalInterface
  interface Attempt<T> {
    T run(ManagedChannel channel, Deadline deadline);
  }

  /**
   * Runs {@code attempt} against the right node, following redirects and failing over as {@link
   * PeerFlashClient}'s class comment describes. {@code volume} is null for calls about no volume.
   */
  <T> T call(String volume, Duration callDeadline, Duration attemptTimeout, Attempt<T> attempt) {
    // The deadline is fixed per call, not per stub, because a gRPC deadline is an absolute instant;
    // every attempt of the call shares it.
    Deadline rpcDeadline =
        callDeadline == null ? null : Deadline.after(callDeadline.toNanos(), TimeUnit.NANOSECONDS);
    Set<String> failed = new HashSet<>();
    int redirects = 0;
    long backoff = INITIAL_BACKOFF_NANOS;
    long giveUpAt = 0;
    boolean failing = false;
    int attempts = 0;
    StatusRuntimeException last;
    String address = routing.first(volume);
    while (true) {
      ManagedChannel ch = routing.channel(address);
      attempts++;
      Deadline attemptDeadline = rpcDeadline;
      if (attemptTimeout != null) {
        Deadline bound = Deadline.after(attemptTimeout.toNanos(), TimeUnit.NANOSECONDS);
        attemptDeadline = rpcDeadline == null ? bound : rpcDeadline.minimum(bound);
      }
      try {
        T result = attempt.run(ch, attemptDeadline);
        routing.answered(volume, address);
        return result;
      } catch (StatusRuntimeException e) {
        last = e;
      }
      Status.Code code = last.getStatus().getCode();
      String next;
      if (code == Status.Code.FAILED_PRECONDITION && volume != null) {
        routing.markReached();
        String owner = ownerAddress(last.getTrailers());
        if (owner == null || owner.equals(address) || !routing.canOpen(owner)) {
          throw PeerFlashException.from(last);
        }
        routing.learnOwner(volume, owner);
        if (!failed.contains(owner) && redirects < PeerFlashClient.MAX_REDIRECTS) {
          redirects++;
          address = owner;
          continue;
        }
        // Sent back to an owner that just proved unreachable, or bounced around: ownership is
        // moving. Ask the nodes not yet tried, then wait and ask again.
        failed.add(address);
        failed.add(owner);
        next = routing.next(volume, failed);
      } else if (code == Status.Code.UNAVAILABLE
          && last.getTrailers() != null
          && last.getTrailers().containsKey(PeerFlashException.VOLUME_STATE_KEY)) {
        // The node knows no retry within the budget will help (e.g. OFFLINE): say so now.
        routing.markReached();
        throw PeerFlashException.from(last);
      } else if (connectionFailure(code, ch)
          || (code == Status.Code.DEADLINE_EXCEEDED
              && attemptDeadline != rpcDeadline
              && (rpcDeadline == null || !rpcDeadline.isExpired()))) {
        // (or an I/O attempt ran out of its own time while the call still has some: the node
        // may be frozen; try the others)
        if (ch.isShutdown() || routing.closed()) {
          throw PeerFlashException.from(last);
        }
        if (ch.getState(false) == ConnectivityState.READY) {
          routing.markReached(); // The node itself said UNAVAILABLE (e.g. shutting down).
        }
        routing.unreachable(volume, address, ch);
        failed.add(address);
        next = routing.next(volume, failed);
      } else {
        routing.markReached();
        throw PeerFlashException.from(last);
      }
      if (!failing) {
        failing = true;
        long budget = retryBudget.toNanos();
        giveUpAt = System.nanoTime() + budget;
        if (rpcDeadline != null) {
          long left = rpcDeadline.timeRemaining(TimeUnit.NANOSECONDS);
          if (left < budget) {
            giveUpAt = System.nanoTime() + left;
          }
        }
      }
      if (next == null) {
        // Every known node has failed this round.
        if (!routing.reached()) {
          throw gaveUp(last, attempts, "no node answered");
        }
        long left = giveUpAt - System.nanoTime();
        if (left <= 0) {
          throw gaveUp(last, attempts, "retry budget exhausted");
        }
        sleep(Math.min(backoff, left));
        backoff = Math.min(backoff * 2, MAX_BACKOFF_NANOS);
        failed.clear();
        redirects = 0;
        next = routing.first(volume);
      }
      address = next;
    }
  }

  // UNAVAILABLE: refused, reset, unreachable or shutting down. DEADLINE_EXCEEDED counts only when
  // no connection was ever made: otherwise the node may simply be slow, and the deadline is spent.
  private static boolean connectionFailure(Status.Code code, ManagedChannel ch) {
    return code == Status.Code.UNAVAILABLE
        || (code == Status.Code.DEADLINE_EXCEEDED && ch.getState(false) != ConnectivityState.READY);
  }

  private static String ownerAddress(Metadata trailers) {
    return trailers == null
        ? null
        : PeerFlashException.ownerAddress(trailers.get(PeerFlashException.OWNER_KEY));
  }

  private PeerFlashException gaveUp(StatusRuntimeException last, int attempts, String why) {
    if (attempts <= 1) {
      return PeerFlashException.from(last);
    }
    Status s = last.getStatus();
    String description = s.getDescription();
    String extra =
        why + " after " + attempts + " attempts (nodes tried: " + routing.knownAddresses() + ")";
    return new PeerFlashException(
        s.withDescription(description == null ? extra : description + "; " + extra),
        last.getTrailers());
  }

  private static void sleep(long nanos) {
    try {
      TimeUnit.NANOSECONDS.sleep(nanos);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new PeerFlashException(
          Status.CANCELLED.withDescription("interrupted while waiting to retry"));
    }
  }
}
