package io.peerflash.replication.data;

import io.grpc.Status;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import io.peerflash.proto.v1.BlockImage;
import io.peerflash.proto.v1.DescribeCopiesRequest;
import io.peerflash.proto.v1.DescribeCopiesResponse;
import io.peerflash.proto.v1.ReplicaServiceGrpc;
import io.peerflash.proto.v1.ReplicateAck;
import io.peerflash.proto.v1.ReplicateRequest;
import io.peerflash.proto.v1.SyncCopiesRequest;
import io.peerflash.proto.v1.SyncCopiesResponse;
import io.peerflash.security.Audit;
import io.peerflash.security.Identities;
import io.peerflash.security.Identity;
import io.peerflash.util.Texts;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.LongAdder;

/**
 * The replica side of peerflash.v1.ReplicaService: checks the sender's certificate, hands copies to
 * the {@link ReplicaSink} with their epoch check (which the sink decides together with the store),
 * acks. Requests of one stream are applied and acked in arrival order.
 *
 * <p>At flash speed a replicated write's latency is mostly thread hand-offs, so a copy is stored on
 * the thread that delivers it (the transport's, with {@link TransportThreadCalls}) whenever that
 * needs no wait: without sync, a page-cache write and an index put of a few microseconds, acked
 * from the same thread. A request that would wait (cache full, this node's map behind the sender's
 * epoch, an fsync with sync, a busy lock) and every request behind it on the stream go to the apply
 * executor instead, which drains them in order and stores consecutive copy requests as one batch:
 * one index commit (one fsync with sync) for all of them, one ack each, like a group commit.
 */
public final class ReplicaGrpcService extends ReplicaServiceGrpc.ReplicaServiceImplBase {
  /** Requests of one stream received but not yet acked; more wait in gRPC flow control. */
  static final int STREAM_WINDOW = 128;

  /** Copy requests stored as one batch at most. */
  static final int MAX_BATCH_REQUESTS = 64;

  private final ReplicaSink sink;
  private final EpochGuard guard;
  private final Executor applyExecutor;
  private final LongAdder requestsReceived = new LongAdder();

  /**
   * @param applyExecutor where requests that may wait are applied (a named pool)
   */
  public ReplicaGrpcService(ReplicaSink sink, EpochGuard guard, Executor applyExecutor) {
    this.sink = sink;
    this.guard = guard;
    this.applyExecutor = applyExecutor;
  }

  /** Copy, release and reset requests received on every stream so far (tests wait on it). */
  long requestsReceived() {
    return requestsReceived.sum();
  }

  /**
   * The full name of the Replicate method, to serve on the transport thread ({@link
   * TransportThreadCalls}): the service moves any request that would wait off it.
   */
  public static String replicateMethod() {
    return ReplicaServiceGrpc.getReplicateMethod().getFullMethodName();
  }

  @Override
  public StreamObserver<ReplicateRequest> replicate(StreamObserver<ReplicateAck> acks) {
    ServerCallStreamObserver<ReplicateAck> out = (ServerCallStreamObserver<ReplicateAck>) acks;
    Stream stream = new Stream(out, Identities.current());
    out.setOnCancelHandler(stream::cancelled);
    out.disableAutoRequest();
    out.request(STREAM_WINDOW);
    return stream;
  }

  /** One owner's stream. gRPC never calls its observer methods concurrently. */
  private final class Stream implements StreamObserver<ReplicateRequest> {
    private final ServerCallStreamObserver<ReplicateAck> acks;
    // Guarded by this. While draining, a drain task on the apply executor owns the queue and the
    // acks; otherwise the delivering thread may apply and ack itself.
    private final ArrayDeque<ReplicateRequest> queued = new ArrayDeque<>();
    private boolean draining;
    private boolean ended;
    private boolean cancelled;
    // Who sent the stream, from its TLS certificate; null on a plaintext node.
    private final Identity sender;

    Stream(ServerCallStreamObserver<ReplicateAck> acks, Identity sender) {
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

    @Override
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

    @Override
    public void onError(Throwable t) {
      // The owner went away; copies already applied stay until released or superseded. Queued
      // ones will get no ack, so the owner counts them as failed: storing them is pointless.
      cancelled();
    }

    @Override
    public void onCompleted() {
      synchronized (this) {
        if (draining) {
          ended = true; // the drain completes the stream after its last ack
          return;
        }
      }
      complete();
    }

    synchronized void cancelled() {
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
        acks.onNext(ack);
        acks.request(1);
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
        acks.onCompleted();
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
  private static String senderRefusal(
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

  /**
   * Makes the copies this node acknowledged durable, for the volume's owner only (its certificate,
   * then the map at the request's epoch). Runs on the server's executor: a sync waits for an fsync,
   * shared with concurrent ones ({@link ReplicaSink#sync}).
   */
  @Override
  public void syncCopies(SyncCopiesRequest req, StreamObserver<SyncCopiesResponse> out) {
    String why =
        senderRefusal(
            Identities.current(),
            "SyncCopies",
            "asked for a sync of",
            req.getVolume(),
            req.getOwnerId());
    if (why != null) {
      out.onError(Status.PERMISSION_DENIED.withDescription(why).asRuntimeException());
      return;
    }
    try {
      guard.checkReplicate(req.getVolume(), req.getEpoch(), req.getOwnerId());
      sink.sync(req.getVolume());
    } catch (ReplicaException e) {
      out.onError(ReplicaStatuses.toStatus(e).asRuntimeException());
      return;
    }
    out.onNext(SyncCopiesResponse.getDefaultInstance());
    out.onCompleted();
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

  @Override
  public void describeCopies(
      DescribeCopiesRequest req, StreamObserver<DescribeCopiesResponse> out) {
    try {
      ReplicaSink.CopyState s = sink.describe(req.getVolume());
      out.onNext(
          DescribeCopiesResponse.newBuilder()
              .setMaxSeq(s.maxSeq())
              .setDirtyBlocks(s.dirtyBlocks())
              .build());
      out.onCompleted();
    } catch (ReplicaException e) {
      out.onError(ReplicaStatuses.toStatus(e).asRuntimeException());
    }
  }
}
