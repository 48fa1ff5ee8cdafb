package io.peerflash.replication.data;

import io.grpc.Status;
import io.peerflash.proto.v1.BlockImage;
import io.peerflash.proto.v1.ReplicateAck;
import io.peerflash.proto.v1.ReplicateRequest;
import io.peerflash.security.Audit;
import io.peerflash.security.Identity;
import io.peerflash.util.Texts;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.LongAdder;

/**
 * The replica side of an owner's stream of copies, whatever carries it (the Replicate gRPC stream
 * or the replica link): checks the sender's certificate, hands copies to the {@link ReplicaSink}
 * with their epoch check (which the sink decides together with the store), acks. Requests of one
 * stream are applied and acked in arrival order.
 *
 * <p>At flash speed a replicated write's latency is mostly thread hand-offs, so a copy is stored on
 * the thread that delivers it (the transport's) whenever that needs no wait: without sync, a
 * page-cache write and an index put of a few microseconds, acked from the same thread. A request
 * that would wait (cache full, this node's map behind the sender's epoch, an fsync with sync, a
 * busy lock) and every request behind it on the stream go to the apply executor instead, which
 * drains them in order and stores consecutive copy requests as one batch: one index commit (one
 * fsync with sync) for all of them, one ack each, like a group commit.
 */
public final class ReplicaStreams {
  /** Copy requests stored as one batch at most. */
  static final int MAX_BATCH_REQUESTS = 64;

  /** Where a stream's acks go, in the order they are given; never called concurrently. */
  public interface Acks {
    void send(ReplicateAck ack);

    /** The stream ended normally after its last ack. */
    void complete();
  }

  private final ReplicaSink sink;
  private final EpochGuard guard;
  private final Executor applyExecutor;
  private final LongAdder requestsReceived = new LongAdder();

  /**
   * @param applyExecutor where requests that may wait are applied (a named pool)
   */
  public ReplicaStreams(ReplicaSink sink, EpochGuard guard, Executor applyExecutor) {
    this.sink = sink;
    this.guard = guard;
    this.applyExecutor = applyExecutor;
  }

  /**
   * A new stream from {@code sender}.
   *
   * @param sender who sent it, from its TLS certificate; null on a plaintext node
   */
  public Stream open(Acks acks, Identity sender) {
    return new Stream(acks, sender);
  }

  /** Copy, release and reset requests received on every stream so far (tests wait on it). */
  public long requestsReceived() {
    return requestsReceived.sum();
  }

  ReplicaSink sink() {
    return sink;
  }

  EpochGuard guard() {
    return guard;
  }

  /**
   * One owner's stream. Its transport calls {@link #onNext}, {@link #onError} and {@link
   * #onCompleted} one at a time, in arrival order.
   */
  public final class Stream {
    private final Acks acks;
    // Guarded by this. While draining, a drain task on the apply executor owns the queue and the
    // acks; otherwise the delivering thread may apply and ack itself.
    private final ArrayDeque<ReplicateRequest> queued = new ArrayDeque<>();
    private boolean draining;
    private boolean ended;
    private boolean cancelled;
    // Who sent the stream, from its TLS certificate; null on a plaintext node.
    private final Identity sender;

    private Stream(Acks acks, Identity sender) {
      this.acks = acks;
      this.sender = sender;
    }

    /**
     * A copy is accepted only from the node its certificate names, and only if that node is the one
     * the request names as owner (which the epoch guard then checks against the cluster map): the
     * owner_id field alone proves nothing.
     */
    private ReplicateAck refusal(ReplicateRequest req) {
      String why =
          senderRefusal(sender, "Replicate", "sent copies of", req.getVolume(), req.getOwnerId());
      if (why == null) {
        return null;
      }
      return ReplicateAck.newBuilder()
          .setBatchId(req.getBatchId())
          .setCode(Status.Code.PERMISSION_DENIED.value())
          .setMessage(why)
          .build();
    }

    /** A request arrived. */
    public void onNext(ReplicateRequest req) {
      requestsReceived.increment();
      synchronized (this) {
        if (draining) {
          // Even a refusal waits its turn: while a drain runs it alone may ack (the stream's
          // messages must not be sent from two threads at once), in arrival order.
          queued.add(req);
          return;
        }
      }
      // Nothing is queued and no drain runs (only this method starts one): refuse, or apply here
      // if that needs no wait.
      ReplicateAck ack = refusal(req);
      if (ack == null) {
        ack = tryApplyNow(req);
      }
      if (ack != null) {
        answer(ack);
        return;
      }
      synchronized (this) {
        queued.add(req);
        draining = true;
      }
      applyExecutor.execute(this::drain);
    }

    /** The owner went away, or the transport failed. */
    public void onError(Throwable t) {
      // The owner went away; copies already applied stay until released or superseded. Queued
      // ones will get no ack, so the owner counts them as failed: storing them is pointless.
      cancelled();
    }

    /** The owner ended the stream: it is completed after the last ack. */
    public void onCompleted() {
      synchronized (this) {
        if (draining) {
          ended = true; // the drain completes the stream after its last ack
          return;
        }
      }
      complete();
    }

    /** The owner gave up on the stream: queued requests are dropped, no more acks are sent. */
    public synchronized void cancelled() {
      cancelled = true;
      queued.clear();
    }

    private void drain() {
      while (true) {
        List<ReplicateRequest> batch;
        synchronized (this) {
          if (queued.isEmpty()) {
            draining = false;
            if (!ended) {
              return;
            }
            break;
          }
          batch = new ArrayList<>(Math.min(queued.size(), MAX_BATCH_REQUESTS));
          while (!queued.isEmpty() && batch.size() < MAX_BATCH_REQUESTS) {
            batch.add(queued.poll());
          }
        }
        applyInOrder(batch);
      }
      complete();
    }

    /** Applies requests in order; consecutive copy requests of one volume and epoch as one. */
    private void applyInOrder(List<ReplicateRequest> batch) {
      int i = 0;
      while (i < batch.size()) {
        ReplicateRequest first = batch.get(i);
        ReplicateAck refused = refusal(first);
        if (refused != null) {
          answer(refused);
          i++;
          continue;
        }
        // The requests grouped with it name the same owner: the sender may send them all.
        int end = i + 1;
        if (copyOnly(first)) {
          while (end < batch.size() && sameCopyGroup(first, batch.get(end))) {
            end++;
          }
        }
        if (end - i == 1 || !applyGroup(batch.subList(i, end))) {
          // One request, or a group that failed as a whole: each gets its own outcome.
          for (int k = i; k < end; k++) {
            answer(applyOne(batch.get(k)));
          }
        }
        i = end;
      }
    }

    /** Stores a group of copy requests with one sink call; false (nothing acked) if it failed. */
    private boolean applyGroup(List<ReplicateRequest> group) {
      ReplicateRequest first = group.get(0);
      List<BlockCopy> blocks = new ArrayList<>();
      for (ReplicateRequest r : group) {
        addBlocks(blocks, r.getBlocksList());
      }
      try {
        guard.checkReplicate(first.getVolume(), first.getEpoch(), first.getOwnerId());
        sink.apply(first.getVolume(), blocks, epochCheck(first));
      } catch (ReplicaException | RuntimeException e) {
        return false;
      }
      for (ReplicateRequest r : group) {
        answer(ReplicateAck.newBuilder().setBatchId(r.getBatchId()).build());
      }
      return true;
    }

    private void answer(ReplicateAck ack) {
      synchronized (this) {
        if (cancelled) {
          return;
        }
      }
      try {
        acks.send(ack);
      } catch (RuntimeException e) {
        cancelled(); // cancelled meanwhile: the owner has given up on this stream
      }
    }

    private void complete() {
      synchronized (this) {
        if (cancelled) {
          return;
        }
      }
      try {
        acks.complete();
      } catch (RuntimeException e) {
        cancelled();
      }
    }
  }

  /**
   * Why {@code sender} may not act as the owner {@code ownerId} of {@code volume} (audited), or
   * null when it may, as far as its certificate tells: a replica takes copies, and syncs them on
   * request, only from the node its certificate names, and only if that node is the one the request
   * names as owner (which the epoch guard then checks against the cluster map): the owner_id field
   * alone proves nothing. A plaintext node (no identity) checks only the map.
   *
   * @param did what the sender did, for the message ("sent copies of")
   */
  static String senderRefusal(
      Identity sender, String method, String did, String volume, String ownerId) {
    if (sender == null) {
      return null;
    }
    String why = null;
    if (sender.kind() != Identity.Kind.NODE) {
      why =
          sender.describe()
              + " is not a node: only a volume's owner sends its replicas copies and syncs";
    } else if (!sender.name().equals(ownerId)) {
      why =
          "node '"
              + sender.name()
              + "' "
              + did
              + " volume "
              + Texts.quote(volume)
              + " claiming owner "
              + Texts.quote(ownerId);
    }
    if (why != null) {
      Audit.refused(sender, method, volume, why);
    }
    return why;
  }

  /** A request that only carries copies (no reset, no releases): the common, batchable kind. */
  private static boolean copyOnly(ReplicateRequest req) {
    return req.getResetBelowSeq() == 0
        && req.getReleasedBlocksCount() == 0
        && req.getReleasedSeqsCount() == 0
        && req.getBlocksCount() > 0;
  }

  private static boolean sameCopyGroup(ReplicateRequest first, ReplicateRequest next) {
    return copyOnly(next)
        && next.getEpoch() == first.getEpoch()
        && next.getVolume().equals(first.getVolume())
        && next.getOwnerId().equals(first.getOwnerId());
  }

  /** The ack of a copy request stored without waiting, or null when storing it needs a wait. */
  private ReplicateAck tryApplyNow(ReplicateRequest req) {
    if (!copyOnly(req)) {
      return null;
    }
    ReplicateAck.Builder ack = ReplicateAck.newBuilder().setBatchId(req.getBatchId());
    try {
      List<BlockCopy> blocks = new ArrayList<>(req.getBlocksCount());
      addBlocks(blocks, req.getBlocksList());
      if (!sink.tryApply(req.getVolume(), blocks, epochCheck(req))) {
        return null;
      }
    } catch (ReplicaException e) {
      return failed(ack, e);
    } catch (RuntimeException e) {
      return ack.setCode(Status.Code.INTERNAL.value()).setMessage(e.toString()).build();
    }
    return ack.build();
  }

  /** Applies one request, waiting where needed (not on a transport thread). */
  private ReplicateAck applyOne(ReplicateRequest req) {
    ReplicateAck.Builder ack = ReplicateAck.newBuilder().setBatchId(req.getBatchId());
    try {
      // Wait here (not inside the sink's decision) while this node's map is behind the sender's.
      guard.checkReplicate(req.getVolume(), req.getEpoch(), req.getOwnerId());
      ReplicaSink.EpochCheck check = epochCheck(req);
      if (req.getResetBelowSeq() > 0) {
        sink.reset(req.getVolume(), req.getResetBelowSeq(), check);
      }
      if (req.getBlocksCount() > 0) {
        List<BlockCopy> blocks = new ArrayList<>(req.getBlocksCount());
        addBlocks(blocks, req.getBlocksList());
        sink.apply(req.getVolume(), blocks, check);
      }
      if (req.getReleasedBlocksCount() != req.getReleasedSeqsCount()) {
        throw new ReplicaException(
            ReplicaException.Code.INVALID_ARGUMENT,
            "released_blocks and released_seqs differ in length");
      }
      if (req.getReleasedBlocksCount() > 0) {
        sink.release(
            req.getVolume(),
            req.getReleasedBlocksList().stream().mapToLong(Long::longValue).toArray(),
            req.getReleasedSeqsList().stream().mapToLong(Long::longValue).toArray(),
            check);
      }
    } catch (ReplicaException e) {
      return failed(ack, e);
    } catch (RuntimeException e) {
      return ack.setCode(Status.Code.INTERNAL.value()).setMessage(e.toString()).build();
    }
    return ack.build();
  }

  /**
   * The request's epoch check, which the sink decides together with the change it guards (see
   * {@link ReplicaSink}): checked here and applied there, a map change could fall between them.
   */
  private ReplicaSink.EpochCheck epochCheck(ReplicateRequest req) {
    return () -> guard.tryCheckReplicate(req.getVolume(), req.getEpoch(), req.getOwnerId());
  }

  private static ReplicateAck failed(ReplicateAck.Builder ack, ReplicaException e) {
    return ack.setCode(ReplicaStatuses.toStatus(e).getCode().value())
        .setMessage(e.description())
        .build();
  }

  private static void addBlocks(List<BlockCopy> into, List<BlockImage> images) {
    for (BlockImage img : images) {
      into.add(
          new BlockCopy(
              img.getBlock(),
              img.getSeq(),
              img.getZero() ? null : img.getData().asReadOnlyByteBuffer()));
    }
  }
}
