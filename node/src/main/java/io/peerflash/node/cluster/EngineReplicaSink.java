package io.peerflash.node.cluster;

import io.peerflash.node.engine.CacheEngine;
import io.peerflash.node.engine.CacheEngine.ReplicaBlock;
import io.peerflash.node.engine.CacheException;
import io.peerflash.node.wire.Protos;
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
    try {
      engine.applyReplicaBlocks(volume, copies(blocks));
    } catch (CacheException e) {
      throw translate(e);
    }
  }

  @Override
  public boolean tryApply(String volume, List<Block> blocks) throws ReplicaException {
    try {
      return engine.tryApplyReplicaBlocks(volume, copies(blocks));
    } catch (CacheException e) {
      throw translate(e);
    }
  }

  private static List<ReplicaBlock> copies(List<Block> blocks) {
    List<ReplicaBlock> copies = new ArrayList<>(blocks.size());
    for (Block b : blocks) {
      copies.add(new ReplicaBlock(b.block(), b.seq(), b.data()));
    }
    return copies;
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
  public void reset(String volume, long belowSeq) throws ReplicaException {
    try {
      engine.resetReplica(volume, belowSeq);
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
    return new ReplicaException(Protos.toStatus(e));
  }
}
