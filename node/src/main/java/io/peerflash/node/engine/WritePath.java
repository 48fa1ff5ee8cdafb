package io.peerflash.node.engine;

import static io.peerflash.node.engine.BlockStore.BLOCK;

import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.index.BlockEntry;
import io.peerflash.node.index.KeyValueStorage.Batch;
import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.replication.data.BlockCopy;
import io.peerflash.util.Time;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Writes and trims. The write-back path is {@link #writeBack}: read it top to bottom; its step
 * numbers are those of docs/design.md ("Write path"). Every write reaches its acknowledgement
 * through one path, {@link #ackWhenReady}, whether its caller blocks ({@link #write}) or not
 * ({@link #submitWrite}).
 */
final class WritePath {
  private static final Logger log = LoggerFactory.getLogger(WritePath.class);

  /** Backs up the replication port's own bound on a replica's ack. */
  static final long REPLICATION_WAIT_BACKSTOP_MS = 30_000;

  /**
   * Largest write stored on the calling (network) thread. A larger one would hold that thread for
   * milliseconds (a 1 MiB write is 256 slot writes and index entries), delaying every call and
   * replica ack it serves; an ack read late can even look like a lost replica.
   */
  static final int MAX_WRITE_NOW_BYTES = 16 * BLOCK;

  private final BlockStore store;
  private final CacheSpace space;
  private final Destager destager;
  private final EngineConfig config;
  private final TurnCommits turns;
  private volatile ReplicationPort replication = ReplicationPort.NONE;

  WritePath(BlockStore store, Destager destager) {
    this.store = store;
    this.space = store.space;
    this.destager = destager;
    this.config = store.config;
    this.turns = new TurnCommits(store);
  }

  void setReplicationPort(ReplicationPort port) {
    this.replication = port;
  }

  /**
   * Writes {@code data} (its remaining bytes) at {@code offset}, acknowledged per the volume's mode
   * when this returns.
   */
  WriteAck write(String name, long offset, ByteBuffer data) throws CacheException {
    CachedVolume v = store.volume(name);
    return awaitAck(v, store(v, BlockStore.range(v, "write", offset, data.remaining()), data));
  }

  /** Discards a range: it reads as zeros afterwards, and shared storage gets zeros. */
  WriteAck trim(String name, long offset, long length) throws CacheException {
    CachedVolume v = store.volume(name);
    return awaitAck(v, store(v, BlockStore.range(v, "trim", offset, length), null));
  }

  /**
   * Starts a write and returns at once (see {@link CacheEngine#submitWrite}).
   *
   * @param loop null, or the event loop the calling thread runs: the index entries of the writes it
   *     stores in one turn are committed together ({@link TurnCommits})
   * @param storeAfterSend whether this node's own store runs as a task on {@code loop} after the
   *     copies went out, instead of right after they are sent
   */
  CompletableFuture<WriteAck> submitWrite(
      String name,
      long offset,
      ByteBuffer data,
      Executor waits,
      Executor loop,
      boolean storeAfterSend) {
    CompletableFuture<WriteAck> acked = new CompletableFuture<>();
    try {
      CachedVolume v = store.volume(name);
      IoRange range = BlockStore.range(v, "write", offset, data.remaining());
      Stored now = storeNow(v, range, data, loop, storeAfterSend);
      if (now != null) {
        ackWhenReady(v, now, waits, acked);
        return acked;
      }
    } catch (CacheException | RuntimeException e) {
      acked.completeExceptionally(e);
      return acked;
    }
    runOn(waits, acked, () -> acked.complete(write(name, offset, data)));
    return acked;
  }

  /**
   * A write that is stored locally and visible (or will be, when {@code local} completes), and what
   * it needs before its ack.
   *
   * @param copies its copies on their way to the replicas, or null
   * @param lastSeq the highest sequence a destage before the ack must reach
   * @param destageFirst destage up to {@code lastSeq} before the ack even if the copies arrive
   * @param local null, or this node's own store still to come: it completes (on the thread that
   *     stored) when the write is durable locally and visible, or fails the write
   */
  private record Stored(
      CompletableFuture<Void> copies,
      long lastSeq,
      boolean destageFirst,
      CompletableFuture<Void> local) {
    static final Stored ACK_NOW = new Stored(null, -1, false, null);

    Stored(CompletableFuture<Void> copies, long lastSeq, boolean destageFirst) {
      this(copies, lastSeq, destageFirst, null);
    }
  }

  /**
   * Stores a write (or a trim, {@code data == null}) per the volume's mode, waiting for admission,
   * space, its blocks and shared storage as needed; returns with its copies on their way.
   */
  private Stored store(CachedVolume v, IoRange range, ByteBuffer data) throws CacheException {
    if (v.info.mode() == CacheMode.WRITE_BACK) {
      replication.admit(v.info);
    }
    v.gate.readLock().lock();
    try {
      Placement placement = replication.place(v.info);
      store.checkServable(v, placement);
      return v.info.mode() == CacheMode.WRITE_BACK
          ? writeBack(v, range, data, placement, true, null, false)
          : writeToStorage(v, range, data, placement);
    } finally {
      v.gate.readLock().unlock();
    }
  }

  /**
   * {@link #store} for a small write-back write that needs no wait at all; null when it would need
   * one (nothing is changed then).
   */
  private Stored storeNow(
      CachedVolume v, IoRange range, ByteBuffer data, Executor loop, boolean storeAfterSend)
      throws CacheException {
    if (v.info.mode() != CacheMode.WRITE_BACK
        || config.syncWrites()
        || range.length() > MAX_WRITE_NOW_BYTES
        || range.partialBlocks() > 0
        || !v.gate.readLock().tryLock()) {
      return null;
    }
    Stored stored = null;
    try {
      Placement placement = replication.place(v.info);
      if (!placement.admitsNow()) {
        return null; // the blocking path waits for admission
      }
      store.checkServable(v, placement);
      stored = writeBack(v, range, data, placement, false, loop, storeAfterSend);
      return stored;
    } finally {
      if (stored != null && stored.local() != null) {
        // The store still to come holds the gate; it completes on this thread (see submitWrite).
        stored.local().whenComplete((ok, failure) -> v.gate.readLock().unlock());
      } else {
        v.gate.readLock().unlock();
      }
    }
  }

  /**
   * The write-back path, steps 2-9 (step 1, the range check and the placement, is done by the
   * caller). {@code data == null} writes zeros (trim): whole blocks become zero entries that need
   * no slot. The new versions are durable locally and visible when this returns (or, with {@code
   * storeAfterSend}, when the returned {@link Stored#local} completes); their copies may still be
   * on their way to the replicas.
   *
   * @param placement where the write goes, resolved once under the gate (step 1)
   * @param mayWait false: return null instead of waiting for space or a block lock (only for whole
   *     blocks: a partial block may need a read of shared storage)
   * @param loop null, or the calling thread's event loop: step 8 joins the commit of its turn
   * @param storeAfterSend whether steps 7-9 run as a task on {@code loop} after the copies went out
   */
  private Stored writeBack(
      CachedVolume v,
      IoRange range,
      ByteBuffer data,
      Placement placement,
      boolean mayWait,
      Executor loop,
      boolean storeAfterSend)
      throws CacheException {
    long first = range.firstBlock();
    int count = range.blockCount();
    // 2. Reserve slots before locking blocks: a writer waiting for space must not hold locks the
    //    destager needs to make space. Within the volume's share first, outside the queue for
    //    free slots: a volume held at its share must not hold back the other volumes' writers.
    int needed = data != null ? count : range.partialBlocks();
    if (!store.dirtyShare.admits(v, needed)) {
      if (!mayWait) {
        return null;
      }
      store.dirtyShare.await(v, needed);
    }
    int[] newSlots = mayWait ? space.reserve(v, needed) : space.reserveNow(needed);
    if (newSlots == null) {
      return null;
    }
    LocalStore local = new LocalStore(v, first, count, newSlots, needed);
    boolean storeLater = false;
    try {
      // 3. Lock the blocks.
      local.held =
          mayWait
              ? v.locks.lockRange(first, count, true)
              : v.locks.tryLockRange(first, count, true);
      if (local.held == null) {
        return null;
      }
      // 4. Sequence numbers: the destager takes the oldest first and checks them before marking
      // clean.
      local.seq0 = v.nextSeq.getAndAdd(count);
      local.nowMs = store.time.nowMs();
      // 5. The new content of each block, and the same images for the replicas.
      List<BlockCopy> images = new ArrayList<>(count);
      for (int i = 0; i < count; i++) {
        long block = first + i;
        int from = range.fromInBlock(block);
        int to = range.toInBlock(block);
        boolean whole = range.coversWhole(block);
        if (data == null && whole) {
          images.add(new BlockCopy(block, local.seq0 + i, null)); // a zero block: no slot
          continue;
        }
        ByteBuffer content;
        if (whole) {
          content = wholeBlock(data, range.dataPosition(block));
        } else {
          ByteBuffer merged = store.currentContent(v, block);
          if (data == null) {
            merged.put(from, new byte[to - from]);
          } else {
            merged.put(from, data, data.position() + range.dataPosition(block), to - from);
          }
          // The merge happens in a scratch buffer reused by the next block: keep a copy.
          content = ByteBuffer.allocate(BLOCK).put(merged.duplicate()).flip();
        }
        local.contents[i] = content;
        images.add(new BlockCopy(block, local.seq0 + i, content));
      }
      // 6. Copies to the replicas first: they travel while this node stores its own. Until they
      //    are acked the destager leaves these blocks alone (CachedVolume.copiesInFlight).
      CompletableFuture<Void> copies = placement.replicate(v.info, images);
      long lastSeq = local.seq0 + count - 1;
      if (copies != null) {
        long seq0 = local.seq0;
        v.copiesSent(first, count);
        copies = copies.whenComplete((ok, failure) -> copiesDone(v, first, count, seq0));
      }
      // 7-9. This node's own copy.
      if (loop != null) {
        storeLater = true;
        return new Stored(
            copies,
            lastSeq,
            false,
            storeAfterSend && copies != null ? local.storeLater(loop) : local.storeInTurn(loop));
      }
      local.store();
      return copies == null ? Stored.ACK_NOW : new Stored(copies, lastSeq, false);
    } finally {
      if (!storeLater) {
        local.close();
      }
    }
  }

  /**
   * Steps 7-9 of a write-back write (its own store), and what the write holds until they are done:
   * its reserved slots and its block locks.
   */
  private final class LocalStore {
    private final CachedVolume v;
    private final long first;
    private final int[] newSlots;
    private final int needed;
    private final ByteBuffer[] contents;
    BlockLocks.Held held;
    long seq0;
    long nowMs;
    private int usedSlots;
    private boolean commitTried;

    LocalStore(CachedVolume v, long first, int count, int[] newSlots, int needed) {
      this.v = v;
      this.first = first;
      this.newSlots = newSlots;
      this.needed = needed;
      this.contents = new ByteBuffer[count]; // null: a zero block
    }

    private long started;
    private BlockEntry[] fresh;

    /** Steps 7-9 here and now. */
    void store() throws CacheException {
      Batch batch = writeSlots();
      // 8. Durable locally: data before index (group fsync with --sync).
      commitTried = true;
      try {
        store.commit(batch);
      } catch (CacheException e) {
        commitTried = BlockStore.mayBeApplied(e);
        throw e;
      }
      install();
    }

    /** 7. Data into fresh slots (never over the current version), and their index entries. */
    private Batch writeSlots() throws CacheException {
      started = System.nanoTime();
      int count = contents.length;
      fresh = new BlockEntry[count];
      Batch batch = new Batch();
      for (int i = 0; i < count; i++) {
        if (contents[i] == null) {
          fresh[i] = new BlockEntry(BlockEntry.NO_SLOT, seq0 + i, 0, true, nowMs);
        } else {
          int slot = newSlots[usedSlots++];
          store.writeSlot(slot, contents[i]);
          fresh[i] =
              new BlockEntry(slot, seq0 + i, BlockStore.crc(contents[i].duplicate()), true, nowMs);
        }
        store.index.put(batch, v.id(), first + i, fresh[i]);
      }
      return batch;
    }

    /**
     * 9. Visible: swap the in-memory entries, free the superseded slots (then {@link #close} lets
     * the next writer of these blocks in). The ack still waits for the copies; a reader may see the
     * new data before that, as with any write in flight.
     */
    private void install() {
      for (int i = 0; i < fresh.length; i++) {
        store.install(v, first + i, fresh[i]);
      }
      store.observer.localStored(System.nanoTime() - started);
    }

    /**
     * Steps 7-9 with step 8 in the commit of this turn of {@code loop} (the calling thread's), and
     * {@link #close}; the future completes after both, on {@code loop}.
     */
    CompletableFuture<Void> storeInTurn(Executor loop) {
      CompletableFuture<Void> stored = new CompletableFuture<>();
      Batch batch;
      try {
        batch = writeSlots();
      } catch (CacheException | RuntimeException | Error e) {
        close();
        stored.completeExceptionally(e);
        if (e instanceof Error error) {
          throw error;
        }
        return stored;
      }
      commitTried = true;
      turns.add(
          loop,
          batch,
          failure -> {
            Throwable outcome = failure;
            try {
              if (failure == null) {
                install();
              } else {
                commitTried = BlockStore.mayBeApplied(failure);
              }
            } catch (RuntimeException | Error e) {
              outcome = e;
            } finally {
              try {
                close();
              } catch (RuntimeException | Error e) {
                outcome = outcome == null ? e : outcome;
              }
            }
            // Whatever happened, the write hears of it: an open future would hang its client.
            if (outcome == null) {
              stored.complete(null);
            } else {
              stored.completeExceptionally(outcome);
            }
          });
      return stored;
    }

    /**
     * {@link #storeInTurn} as a task on {@code loop} (here and now if it refuses the task): after
     * the copies went out, and in the turn that runs the task.
     */
    CompletableFuture<Void> storeLater(Executor loop) {
      CompletableFuture<Void> stored = new CompletableFuture<>();
      Runnable task =
          () ->
              storeInTurn(loop)
                  .whenComplete(
                      (ok, failure) -> {
                        if (failure == null) {
                          stored.complete(null);
                        } else {
                          stored.completeExceptionally(failure);
                        }
                      });
      try {
        loop.execute(task);
      } catch (RejectedExecutionException e) { // the event loop is shutting down
        task.run();
      }
      return stored;
    }

    /** Lets the next writer of these blocks in and frees the slots no entry points to. */
    void close() {
      if (held != null) {
        held.close();
      }
      // Slots written but never committed hold nothing anyone points to: free them. After a
      // failed commit the index may still point to them (a sync that failed after the write):
      // keep them until the next start rebuilds the free list from the index. A commit the index
      // refused for lack of space applied nothing (commitTried is false again).
      store.releaseReserved(newSlots, commitTried ? usedSlots : 0, needed);
      destager.noteDirty();
    }
  }

  /** A write's copies were acked or failed: the destager may take its blocks again. */
  private void copiesDone(CachedVolume v, long first, int count, long firstSeq) {
    v.copiesDone(first, count);
    if (v.flushTargetSeq.get() >= firstSeq) {
      destager.wake(); // a Flush (or a destage before an ack) waits on them
    }
  }

  /** The 4 KiB of {@code data} at {@code at} (relative to its position) for one block. */
  private static ByteBuffer wholeBlock(ByteBuffer data, int at) {
    ByteBuffer content = data.duplicate();
    content.position(data.position() + at).limit(content.position() + BLOCK);
    return content.slice();
  }

  // ---------------------------------------------------------------------------------------------
  // Steps 10-11: the acknowledgement

  /** What the write needs before its ack. */
  private enum Decision {
    ACK,
    /** Destage first because the write said so (write-through over a dirty block). */
    DESTAGE_FIRST,
    /** Destage first because a replica could not take the copies. */
    COPIES_MISSING
  }

  private static Decision noCopyFailure(Stored stored) {
    return stored.destageFirst() ? Decision.DESTAGE_FIRST : Decision.ACK;
  }

  /**
   * Steps 10-11 for every write, whether its caller blocks ({@link #write}, which waits on this
   * through {@link CallerRuns}) or not ({@link #submitWrite}): completes {@code acked} once the
   * write's own store is done and its copies are acked or failed, after a destage when a replica
   * could not take the copies or the write asked for one; fails it with the error to answer with
   * when the write must not be acknowledged at all ({@link #refusal}).
   *
   * @param waits runs the destage before an ack (it blocks): never the network thread that
   *     completes the copies
   */
  private void ackWhenReady(
      CachedVolume v, Stored stored, Executor waits, CompletableFuture<WriteAck> acked) {
    ackCondition(v, stored)
        .whenComplete(
            (decision, failure) -> {
              if (failure != null) {
                acked.completeExceptionally(unwrap(failure));
              } else if (decision == Decision.ACK) {
                acked.complete(WriteAck.COPIES);
              } else {
                runOn(
                    waits,
                    acked,
                    () -> {
                      // Outside the gate: a policy change or delete queued on it must not stall
                      // the destager.
                      destager.flush(v, stored.lastSeq());
                      acked.complete(
                          decision == Decision.COPIES_MISSING
                              ? WriteAck.WENT_THROUGH
                              : WriteAck.COPIES);
                    });
              }
            });
  }

  private CompletableFuture<Decision> ackCondition(CachedVolume v, Stored stored) {
    CompletableFuture<Void> local =
        stored.local() == null ? CompletableFuture.completedFuture(null) : stored.local();
    // Own store first: a destage before the ack must find the write in place.
    return local.thenCompose(
        ok -> {
          if (stored.copies() == null) {
            return CompletableFuture.completedFuture(noCopyFailure(stored));
          }
          CompletableFuture<Decision> decided =
              stored
                  .copies()
                  .handle(
                      (acked, failure) -> {
                        if (failure == null) {
                          return noCopyFailure(stored);
                        }
                        CacheException refused = refusal(v, failure);
                        if (refused != null) {
                          throw new CompletionException(refused);
                        }
                        return Decision.COPIES_MISSING;
                      });
          return withBackstop(v, decided);
        });
  }

  /**
   * The replication port bounds a replica's ack itself; should it ever give no outcome, the write
   * fails as retryable after {@link #REPLICATION_WAIT_BACKSTOP_MS} (by the engine's clock) instead
   * of hanging its caller. Not a destage and an ack: the destager leaves blocks whose copies are
   * still on their way alone (a release must not overtake its copy), so that would hang too.
   */
  private CompletableFuture<Decision> withBackstop(
      CachedVolume v, CompletableFuture<Decision> decided) {
    if (decided.isDone()) {
      return decided;
    }
    CompletableFuture<Decision> bounded = new CompletableFuture<>();
    Time.Timer backstop =
        store.time.schedule(
            REPLICATION_WAIT_BACKSTOP_MS,
            () -> {
              CacheException noOutcome =
                  new CacheException(
                      Reason.UNAVAILABLE,
                      "volume '"
                          + v.name()
                          + "': no outcome from its replicas within "
                          + REPLICATION_WAIT_BACKSTOP_MS
                          + " ms; the write is not acknowledged, retry it");
              if (bounded.completeExceptionally(noOutcome)) {
                log.warn("{}", noOutcome.getMessage());
              }
            });
    decided.whenComplete(
        (d, failure) -> {
          backstop.cancel();
          if (failure != null) {
            bounded.completeExceptionally(failure);
          } else {
            bounded.complete(d);
          }
        });
    return bounded;
  }

  /** A blocking write's wait: {@link #ackWhenReady}, its destage run on the calling thread. */
  private WriteAck awaitAck(CachedVolume v, Stored stored) throws CacheException {
    CompletableFuture<WriteAck> acked = new CompletableFuture<>();
    CallerRuns caller = new CallerRuns(acked);
    ackWhenReady(v, stored, caller, acked);
    caller.runUntilDone();
    try {
      return acked.join();
    } catch (CompletionException | java.util.concurrent.CancellationException e) {
      throw asCacheException(e);
    }
  }

  private static Throwable unwrap(Throwable failure) {
    return failure instanceof CompletionException && failure.getCause() != null
        ? failure.getCause()
        : failure;
  }

  private static CacheException asCacheException(Throwable failure) {
    Throwable cause = unwrap(failure);
    if (cause instanceof CacheException c) {
      return c;
    }
    if (cause instanceof RuntimeException r) {
      throw r;
    }
    if (cause instanceof Error e) {
      throw e;
    }
    return new CacheException(Reason.UNAVAILABLE, String.valueOf(cause), cause);
  }

  /**
   * What a replica's failure to take a write's copies means for that write: null when it may still
   * be acknowledged once destaged; otherwise the error to answer with. FAILED_PRECONDITION when a
   * replica refused this node's epoch: it is no longer the owner and must not acknowledge (nor
   * write through to shared storage). UNAVAILABLE when a replica could neither be reached nor be
   * removed from the map.
   */
  private static CacheException refusal(CachedVolume v, Throwable failure) {
    Throwable cause =
        failure instanceof CompletionException || failure instanceof ExecutionException
            ? failure.getCause()
            : failure;
    if (cause instanceof ReplicationPort.StuckException s) {
      return new CacheException(
          Reason.UNAVAILABLE, "volume '" + v.name() + "': " + s.getMessage() + "; retry");
    }
    if (cause instanceof ReplicationPort.FencedException f) {
      return new CacheException(
          Reason.FAILED_PRECONDITION,
          "volume '" + v.name() + "': this node is no longer its owner: " + f.getMessage());
    }
    log.warn(
        "volume {}: copies did not reach every replica ({}); destaging the write before its ack",
        v.name(),
        cause == null ? String.valueOf(failure) : cause.getMessage());
    return null;
  }

  interface Step {
    void run() throws CacheException;
  }

  /** Runs {@code step} on {@code executor}; its failure (or a refused hand-off) fails {@code f}. */
  static void runOn(Executor executor, CompletableFuture<?> f, Step step) {
    try {
      executor.execute(
          () -> {
            try {
              step.run();
            } catch (CacheException | RuntimeException e) {
              f.completeExceptionally(e);
            }
          });
    } catch (RejectedExecutionException e) {
      f.completeExceptionally(
          new CacheException(Reason.UNAVAILABLE, "node is shutting down; write not acknowledged"));
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Write-through and write-around

  /**
   * Write-through and write-around: shared storage first (synced), then the cache. A block that is
   * still dirty (left from write-back mode) takes the write-back path and is destaged before the
   * acknowledgement, so storage never sees writes out of order.
   */
  private Stored writeToStorage(CachedVolume v, IoRange range, ByteBuffer data, Placement placement)
      throws CacheException {
    long first = range.firstBlock();
    int count = range.blockCount();
    boolean fillCache = v.info.mode() == CacheMode.WRITE_THROUGH && data != null;
    int[] newSlots = fillCache ? space.reserve(count, false) : null;
    int usedSlots = 0;
    boolean commitTried = false;
    boolean hasDirty = false;
    try (BlockLocks.Held held = v.locks.lockRange(first, count, true)) {
      for (int i = 0; i < count && !hasDirty; i++) {
        BlockEntry e = v.blocks.get(first + i);
        hasDirty = e != null && e.dirty();
      }
      if (!hasDirty) {
        // Cached copies of the range go first, durably (synced with --sync): storage is about to
        // change under them, and if the commit of the new copies below then failed, or a power
        // cut lost it, an old copy would be served as if it were current.
        boolean[] hadCopy = new boolean[count];
        for (int i = 0; i < count; i++) {
          hadCopy[i] = v.blocks.get(first + i) != null;
        }
        store.dropClean(v, first, count);
        try {
          storageWrite(v, range, data);
        } finally {
          // Shared storage changed under these blocks: a promotion that read them before must
          // not install what it read.
          for (int i = 0; i < count; i++) {
            v.locks.bump(first + i);
          }
        }
        if (newSlots == null) {
          return Stored.ACK_NOW;
        }
        Batch batch = new Batch();
        BlockEntry[] fresh = new BlockEntry[count];
        long now = store.time.nowMs();
        for (int i = 0; i < count; i++) {
          long block = first + i;
          boolean whole = range.coversWhole(block);
          if (whole || hadCopy[i]) {
            // A partial block reads the rest from storage, which holds the new bytes now.
            ByteBuffer content =
                whole
                    ? wholeBlock(data, range.dataPosition(block))
                    : store.currentContent(v, block);
            int slot = newSlots[usedSlots++];
            int crc = BlockStore.crc(content.duplicate());
            store.writeSlot(slot, content);
            fresh[i] = new BlockEntry(slot, v.nextSeq.getAndIncrement(), crc, false, now);
            store.index.put(batch, v.id(), block, fresh[i]);
          }
        }
        // Not synced: a lost entry only leaves the block uncached, and a clean copy whose data
        // a power cut lost fails its checksum and is read from storage instead.
        commitTried = true;
        try {
          store.commitUnsynced(batch);
        } catch (CacheException e) {
          // Its slots stay reserved until the next start when the index may point to them.
          commitTried = BlockStore.mayBeApplied(e);
          log.warn("volume {}: caching a write-through write failed: {}", v.name(), e.getMessage());
          return Stored.ACK_NOW;
        }
        for (int i = 0; i < count; i++) {
          if (fresh[i] != null) {
            store.install(v, first + i, fresh[i]);
          }
        }
        return Stored.ACK_NOW;
      }
    } finally {
      if (newSlots != null) {
        store.releaseReserved(newSlots, commitTried ? usedSlots : 0, newSlots.length);
      }
    }
    Stored stored = writeBack(v, range, data, placement, true, null, false);
    return new Stored(stored.copies(), v.nextSeq.get() - 1, true);
  }

  private void storageWrite(CachedVolume v, IoRange range, ByteBuffer data) throws CacheException {
    try {
      if (data == null) {
        store.backing.writeZeros(v.name(), range.offset(), range.length());
      } else {
        store.backing.write(v.name(), range.offset(), data.duplicate());
      }
      store.backing.sync(v.name());
    } catch (IOException e) {
      throw CacheException.unavailable(
          "shared storage write of volume '" + v.name() + "' failed", e);
    }
  }
}
