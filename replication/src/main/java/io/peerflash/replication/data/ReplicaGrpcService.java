package io.peerflash.replication.data;

import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import io.peerflash.proto.v1.BlockImage;
import io.peerflash.proto.v1.DescribeCopiesRequest;
import io.peerflash.proto.v1.DescribeCopiesResponse;
import io.peerflash.proto.v1.ReplicaServiceGrpc;
import io.peerflash.proto.v1.ReplicateAck;
import io.peerflash.proto.v1.ReplicateRequest;
import java.util.ArrayList;
import java.util.List;

/**
 * The replica side of peerflash.v1.ReplicaService: checks the epoch, hands copies to the {@link
 * ReplicaSink}, acks. Requests of one stream are applied in arrival order.
 */
public final class ReplicaGrpcService extends ReplicaServiceGrpc.ReplicaServiceImplBase {
  private final ReplicaSink sink;
  private final EpochGuard guard;

  public ReplicaGrpcService(ReplicaSink sink, EpochGuard guard) {
    this.sink = sink;
    this.guard = guard;
  }

  @Override
  public StreamObserver<ReplicateRequest> replicate(StreamObserver<ReplicateAck> acks) {
    return new StreamObserver<>() {
      @Override
      public void onNext(ReplicateRequest req) {
        ReplicateAck.Builder ack = ReplicateAck.newBuilder().setBatchId(req.getBatchId());
        try {
          guard.checkReplicate(req.getVolume(), req.getEpoch(), req.getOwnerId());
          if (req.getResetBelowSeq() > 0) {
            sink.reset(req.getVolume(), req.getResetBelowSeq());
          }
          if (req.getBlocksCount() > 0) {
            sink.apply(req.getVolume(), blocks(req.getBlocksList()));
          }
          if (req.getReleasedBlocksCount() != req.getReleasedSeqsCount()) {
            throw new ReplicaException(
                Status.INVALID_ARGUMENT.withDescription(
                    "released_blocks and released_seqs differ in length"));
          }
          if (req.getReleasedBlocksCount() > 0) {
            sink.release(
                req.getVolume(),
                req.getReleasedBlocksList().stream().mapToLong(Long::longValue).toArray(),
                req.getReleasedSeqsList().stream().mapToLong(Long::longValue).toArray());
          }
        } catch (ReplicaException e) {
          ack.setCode(e.status().getCode().value()).setMessage(e.status().getDescription());
        } catch (RuntimeException e) {
          ack.setCode(Status.Code.INTERNAL.value()).setMessage(e.toString());
        }
        acks.onNext(ack.build());
      }

      @Override
      public void onError(Throwable t) {
        // The owner went away; copies already applied stay until released or superseded.
      }

      @Override
      public void onCompleted() {
        acks.onCompleted();
      }
    };
  }

  private static List<ReplicaSink.Block> blocks(List<BlockImage> images) {
    List<ReplicaSink.Block> blocks = new ArrayList<>(images.size());
    for (BlockImage img : images) {
      blocks.add(
          new ReplicaSink.Block(
              img.getBlock(),
              img.getSeq(),
              img.getZero() ? null : img.getData().asReadOnlyByteBuffer()));
    }
    return blocks;
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
      out.onError(e.status().asRuntimeException());
    }
  }
}
