package io.peerflash.node.engine;

import static io.peerflash.node.engine.BlockStore.BLOCK;

import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.index.BlockEntry;
import io.peerflash.node.index.KeyValueStorage.Batch;
import io.peerflash.node.index.VolumeInfo.Role;
import io.peerflash.replication.data.BlockCopy;
import io.peerflash.replication.data.ReplicaException;
import io.peerflash.replication.data.ReplicaSink;
import io.peerflash.replication.fault.FaultPoints;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The copies of other nodes' dirty blocks this node holds as their replica: the {@link ReplicaSink}
 * the replication service stores into. Copies live in the same cache file and index as this node's
 * own blocks, as dirty entries of a volume held in the REPLICA role.
 */
final class ReplicaStore implements ReplicaSink {
  private static final Logger log = LoggerFactory.getLogger(ReplicaStore.class);

  private final BlockStore store;

  ReplicaStore(BlockStore store) {
    this.store = store;
  }

  @Override
  public void apply(String volume, List<BlockCopy> blocks, EpochCheck check)
      throws ReplicaException {
    try {
      applyReplicaBlocks(volume, blocks, check, true);
    } catch (CacheException e) {
      throw refused(e);
    }
  }

  @Override
  public boolean tryApply(String volume, List<BlockCopy> blocks, EpochCheck check)
      throws ReplicaException {
    try {
      return tryApplyReplicaBlocks(volume, blocks, check);
    } catch (CacheException e) {
      throw refused(e);
    }
  }

  @Override
  public void release(String volume, long[] blocks, long[] seqs, EpochCheck check)
      throws ReplicaException {
    try {
      releaseReplicaBlocks(volume, blocks, seqs, check);
    } catch (CacheException e) {
      throw refused(e);
    }
  }

  @Override
  public void reset(String volume, long belowSeq, EpochCheck check) throws ReplicaException {
    try {
      resetReplica(volume, belowSeq, check);
    } catch (CacheException e) {
      throw refused(e);
    }
  }

  /**
   * The owner's FLUSH reaching this replica: every copy of the volume applied before this call is
   * made durable by a sync of the whole cache file and index ({@link BlockStore#syncLocal}), shared
   * with concurrent syncs and group commits of any volume.
   */
  @Override
  public void sync(String volume) throws ReplicaException {
    try {
      CachedVolume v = store.volume(volume);
      if (v.info.role() != Role.REPLICA) {
        throw new CacheException(
            Reason.FAILED_PRECONDITION,
            "volume '" + volume + "' is owned by this node; it holds no replica copies of it");
      }
      store.syncLocal();
    } catch (CacheException e) {
      throw refused(e);
    }
  }

  @Override
  public CopyState describe(String volume) throws ReplicaException {
    try {
      CachedVolume v = store.volume(volume);
      return new CopyState(Math.max(0, v.nextSeq.get() - 1), v.dirty.size());
    } catch (CacheException e) {
      throw refused(e);
    }
  }

  /** For the engine's own callers, which are their own check (a single engine in tests). */
  static final EpochCheck NO_EPOCH_CHECK = () -> true;

  /**
   * Runs a request's epoch check inside the decision it guards (the caller holds the volume's
   * gate). False (change nothing) when it needs a wait and the caller must not wait; a caller that
   * may wait has waited for this node's map already, so a check that still needs one is answered
   * UNAVAILABLE (retryable): the node is re-reading its map or dropped the volume meanwhile. A
   * refusal travels through the engine as the cause of a {@link CacheException} and comes out of
   * the sink unchanged ({@link #refused}).
   */
  private static boolean passes(EpochCheck check, String name, boolean mayWait)
      throws CacheException {
    try {
      if (check.passes()) {
        return true;
      }
    } catch (ReplicaException e) {
      throw new CacheException(Reason.FAILED_PRECONDITION, e.description(), e);
    }
    if (!mayWait) {
      return false;
    }
    throw new CacheException(
        Reason.UNAVAILABLE,
        "this node is not in step with the cluster map for volume '" + name + "'; retry");
  }

  private static ReplicaException refused(CacheException e) {
    if (e.getCause() instanceof ReplicaException refusal) {
      return refusal;
    }
    return new ReplicaException(
        ReplicaException.Code.valueOf(e.reason().name()), e.getMessage(), e);
  }

  /**
   * Stores copies of an owner's dirty blocks, durable like this node's own write-back writes (group
   * commit with sync), if the request's epoch check passes: checked under the volume's gate, which
   * role changes, drops and resets take exclusively, so the check and the store are one decision
   * (see {@link ReplicaSink}). A copy not newer than the one held for its block is ignored, so
   * retransmits and reordering are harmless. All blocks of one call commit atomically.
   *
   * @param mayWait false: return false, having changed nothing, when storing the copies would mean
   *     waiting for cache space, a lock or this node's map
   */
  /**
   * {@link #applyReplicaBlocks} for a caller that must not wait (a transport thread): false, having
   * changed nothing, when storing would mean a wait (with sync, every apply waits for an fsync).
   */
  boolean tryApplyReplicaBlocks(String name, List<BlockCopy> blocks, EpochCheck check)
      throws CacheException {
    return !store.config.syncWrites() && applyReplicaBlocks(name, blocks, check, false);
  }

  boolean applyReplicaBlocks(String name, List<BlockCopy> blocks, EpochCheck check, boolean mayWait)
      throws CacheException {
    store.faults.hit(FaultPoints.REPLICA_APPLY, name);
    store.durability.check();
    CachedVolume v = store.volume(name);
    int n = blocks.size();
    int needed = 0;
    long[] blockNos = new long[n];
    for (int i = 0; i < n; i++) {
      BlockCopy b = blocks.get(i);
      IoRange.checkBlock("replica copy of", name, v.info.sizeBytes(), b.block());
      if (b.data() != null && b.data().remaining() != BLOCK) {
        throw CacheException.invalid(
            "replica block image of " + b.data().remaining() + " bytes; must be 4096");
      }
      needed += b.data() == null ? 0 : 1;
      blockNos[i] = b.block();
    }
    if (mayWait) {
      v.gate.readLock().lock();
    } else if (!v.gate.readLock().tryLock()) {
      return false;
    }
    try {
      if (v.deleted) {
        throw CacheException.notFound(name);
      }
      if (v.info.role() != Role.REPLICA) {
        throw new CacheException(
            Reason.FAILED_PRECONDITION,
            "volume '" + name + "' is owned by this node; it takes no replica copies");
      }
      if (!passes(check, name, mayWait)) {
        return false;
      }
      if (!store.dirtyShare.admits(v, needed)) {
        if (!mayWait) {
          return false;
        }
        store.dirtyShare.await(v, needed);
      }
      int[] newSlots =
          mayWait ? store.space.reserve(v, needed) : store.space.reserve(needed, false);
      if (newSlots == null) {
        return false;
      }
      int used = 0;
      BlockLocks.Held held =
          mayWait ? v.locks.lockBlocks(blockNos, n, true) : v.locks.tryLockBlocks(blockNos, n);
      if (held == null) {
        store.slots.freeAll(newSlots, 0, needed);
        return false;
      }
      try (held) {
        Batch batch = new Batch();
        BlockEntry[] fresh = new BlockEntry[n];
        long now = store.time.nowMs();
        long maxSeq = -1;
        for (int i = 0; i < n; i++) {
          BlockCopy b = blocks.get(i);
          BlockEntry held0 = v.blocks.get(b.block());
          if (held0 != null && held0.seq() >= b.seq()) {
            continue;
          }
          for (int j = 0; j < i; j++) {
            // Two images of one block in one call: keep the newer.
            if (fresh[j] != null && blockNos[j] == b.block() && fresh[j].seq() >= b.seq()) {
              b = null;
              break;
            }
          }
          if (b == null) {
            continue;
          }
          if (b.data() == null) {
            fresh[i] = new BlockEntry(BlockEntry.NO_SLOT, b.seq(), 0, true, now);
          } else {
            int slot = newSlots[used++];
            store.writeSlot(slot, b.data());
            fresh[i] =
                new BlockEntry(slot, b.seq(), BlockStore.crc(b.data().duplicate()), true, now);
          }
          store.index.put(batch, v.id(), b.block(), fresh[i]);
          maxSeq = Math.max(maxSeq, b.seq());
        }
        store.commit(batch);
        for (int i = 0; i < n; i++) {
          if (fresh[i] != null) {
            BlockEntry current = v.blocks.get(blockNos[i]);
            if (current == null || current.seq() < fresh[i].seq()) {
              store.install(v, blockNos[i], fresh[i]);
            }
          }
        }
        long next = maxSeq + 1;
        v.nextSeq.accumulateAndGet(next, Math::max);
      } finally {
        if (used < needed) {
          store.slots.freeAll(newSlots, used, needed);
        }
      }
    } finally {
      v.gate.readLock().unlock();
    }
    return true;
  }

  /**
   * Re-protection begins on this replica: drops every copy of the volume below {@code belowSeq}
   * (left from an earlier time this node held it), so only the owner's current blocks remain.
   */
  void resetReplica(String name, long belowSeq, EpochCheck check) throws CacheException {
    CachedVolume v = store.volume(name);
    v.gate.writeLock().lock();
    try {
      if (v.deleted || v.info.role() != Role.REPLICA) {
        throw new CacheException(
            Reason.FAILED_PRECONDITION, "volume '" + name + "' is not held here as a replica");
      }
      passes(check, name, true);
      Batch batch = new Batch();
      List<Long> stale = new ArrayList<>();
      for (Map.Entry<Long, BlockEntry> e : v.blocks.entrySet()) {
        if (e.getValue().seq() < belowSeq) {
          store.index.delete(batch, v.id(), e.getKey());
          stale.add(e.getKey());
        }
      }
      store.commitMaybeSynced(batch);
      for (long block : stale) {
        store.drop(v, block);
      }
      if (!stale.isEmpty()) {
        log.info(
            "volume {}: dropped {} stale replica copies before re-protection", name, stale.size());
      }
    } finally {
      v.gate.writeLock().unlock();
    }
  }

  /** Dirty blocks of a volume now (for re-protection progress). */
  int dirtyBlocks(String name) throws CacheException {
    return store.volume(name).dirty.size();
  }

  /** The highest sequence this node holds for a volume and how many dirty blocks. */
  long[] describeCopies(String name) throws CacheException {
    CachedVolume v = store.volume(name);
    return new long[] {v.nextSeq.get() - 1, v.dirty.size()};
  }

  /**
   * Drops held copies the owner has destaged: a copy goes only if its sequence is at most the
   * released one (a newer copy is still needed). Not synced: a lost release only keeps a copy
   * longer.
   */
  void releaseReplicaBlocks(String name, long[] blocks, long[] seqs, EpochCheck check)
      throws CacheException {
    CachedVolume v = store.volume(name);
    v.gate.readLock().lock();
    try {
      if (v.deleted || v.info.role() != Role.REPLICA) {
        return; // an owner keeps its dirty data until its own destager cleans it
      }
      passes(check, name, true);
      try (BlockLocks.Held held = v.locks.lockBlocks(blocks, blocks.length, true)) {
        Batch batch = new Batch();
        boolean[] drop = new boolean[blocks.length];
        for (int i = 0; i < blocks.length; i++) {
          BlockEntry e = v.blocks.get(blocks[i]);
          if (e != null && e.dirty() && e.seq() <= seqs[i]) {
            store.index.delete(batch, v.id(), blocks[i]);
            drop[i] = true;
          }
        }
        // Synced with --sync, for the same reason as marking blocks clean.
        store.commitMaybeSynced(batch);
        for (int i = 0; i < blocks.length; i++) {
          if (drop[i]) {
            store.drop(v, blocks[i]);
          }
        }
      }
    } finally {
      v.gate.readLock().unlock();
    }
  }
}
