package io.peerflash.node.cluster;

import io.grpc.Status;
import io.peerflash.node.engine.CacheEngine;
import io.peerflash.node.engine.CacheEngine.ReplicaBlock;
import io.peerflash.node.engine.CacheException;
import io.peerflash.replication.data.ReplicaException;
import io.peerflash.replication.data.ReplicaSink;
import java.util.ArrayList;
import java.util.List;

/** Replica copies kept in this node's flash cache, through the {@link CacheEngine}. */
public final class EngineReplicaSink implements ReplicaSink {
  private final CacheEngine engine;

  public EngineReplicaSink(CacheEngine engine) {
    this.engine = engine;
  }

  @Override
  public void apply(String volume, List<Block> blocks) throws ReplicaException {
    List<ReplicaBlock> copies = new ArrayList<>(blocks.size());
    for (Block b : blocks) {
      copies.add(new ReplicaBlock(b.block(), b.seq(), b.data()));
    }
    try {
      engine.applyReplicaBlocks(volume, copies);
    } catch (CacheException e) {
      throw translate(e);
    }
  }

  @Override
  public void release(String volume, long[] blocks, long[] seqs) throws ReplicaException {
    try {
      engine.releaseReplicaBlocks(volume, blocks, seqs);
    } catch (CacheException e) {
      throw translate(e);
    }
  }

  @Override
  public CopyState describe(String volume) throws ReplicaException {
    try {
      long[] d = engine.describeCopies(volume);
      return new CopyState(Math.max(0, d[0]), d[1]);
    } catch (CacheException e) {
      throw translate(e);
    }
  }

  private static ReplicaException translate(CacheException e) {
    Status.Code code =
        switch (e.reason()) {
          case NOT_FOUND -> Status.Code.NOT_FOUND;
          case INVALID_ARGUMENT -> Status.Code.INVALID_ARGUMENT;
          case RESOURCE_EXHAUSTED -> Status.Code.RESOURCE_EXHAUSTED;
          case FAILED_PRECONDITION -> Status.Code.FAILED_PRECONDITION;
          case DATA_LOSS -> Status.Code.DATA_LOSS;
          default -> Status.Code.UNAVAILABLE;
        };
    return new ReplicaException(Status.fromCode(code).withDescription(e.getMessage()));
  }
}
