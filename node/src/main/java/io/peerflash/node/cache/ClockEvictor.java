package io.peerflash.node.cache;

/**
 * Chooses clean blocks to evict with the CLOCK algorithm (a second chance for recently read
 * blocks). Dirty blocks are never candidates. Knows which (volume, block) each slot holds, and
 * leaves the eviction itself (index update, slot free) to the {@link EvictionTarget}, which may
 * refuse, e.g. when the block is locked by a writer.
 */
public final class ClockEvictor {
  /** Performs an eviction chosen by the clock. */
  public interface EvictionTarget {
    /** Returns true if the slot's block was dropped from the cache and the slot freed. */
    boolean tryEvict(int slot, long volumeId, long block);
  }

  private static final byte FREE = 0;
  private static final byte CLEAN = 1;
  private static final byte DIRTY = 2;

  private final long[] volumeOf;
  private final long[] blockOf;
  private final byte[] state;
  // Written without a lock on every read hit: a lost update only costs a second chance.
  private final byte[] referenced;
  private int hand;

  public ClockEvictor(int slots) {
    volumeOf = new long[slots];
    blockOf = new long[slots];
    state = new byte[slots];
    referenced = new byte[slots];
  }

  public synchronized void occupy(int slot, long volumeId, long block, boolean dirty) {
    volumeOf[slot] = volumeId;
    blockOf[slot] = block;
    state[slot] = dirty ? DIRTY : CLEAN;
    referenced[slot] = 1;
  }

  public synchronized void markClean(int slot) {
    if (state[slot] == DIRTY) {
      state[slot] = CLEAN;
    }
  }

  public synchronized void release(int slot) {
    state[slot] = FREE;
  }

  public void touch(int slot) {
    referenced[slot] = 1;
  }

  /**
   * Evicts up to {@code wanted} clean blocks, looking at each slot at most twice.
   *
   * @return how many were evicted
   */
  public int evict(int wanted, EvictionTarget target) {
    int evicted = 0;
    int budget = state.length * 2;
    int batch = Math.max(wanted, 16);
    int[] candidates = new int[batch];
    long[] vols = new long[batch];
    long[] blocks = new long[batch];
    while (evicted < wanted && budget > 0) {
      int n = 0;
      synchronized (this) {
        while (n < batch && budget > 0) {
          int s = hand;
          hand = (hand + 1) % state.length;
          budget--;
          if (state[s] != CLEAN) {
            continue;
          }
          if (referenced[s] != 0) {
            referenced[s] = 0;
            continue;
          }
          candidates[n] = s;
          vols[n] = volumeOf[s];
          blocks[n] = blockOf[s];
          n++;
        }
      }
      // The target takes block locks: never call it while holding this monitor.
      for (int i = 0; i < n && evicted < wanted; i++) {
        if (target.tryEvict(candidates[i], vols[i], blocks[i])) {
          evicted++;
        }
      }
    }
    return evicted;
  }

  public synchronized int countDirty() {
    int n = 0;
    for (byte b : state) {
      if (b == DIRTY) {
        n++;
      }
    }
    return n;
  }
}
