package io.peerflash.node.cache;

import java.util.BitSet;

/**
 * Hands out free cache slots. In memory only: at start the free set is rebuilt from the block index
 * (a slot is in use exactly when an index entry points to it), so a crash can never leak or
 * double-allocate a slot.
 */
public final class SlotAllocator {
  private final int totalSlots;
  private final int[] freeStack;
  private int freeCount;

  /** All slots not set in {@code used} start free. */
  public SlotAllocator(int totalSlots, BitSet used) {
    this.totalSlots = totalSlots;
    this.freeStack = new int[totalSlots];
    // Push high slots first so low slots are handed out first: keeps early data compact.
    for (int s = totalSlots - 1; s >= 0; s--) {
      if (!used.get(s)) {
        freeStack[freeCount++] = s;
      }
    }
  }

  /** Takes {@code n} slots into {@code out}, or none at all when fewer are free. */
  public synchronized boolean tryAllocate(int n, int[] out) {
    if (freeCount < n) {
      return false;
    }
    for (int i = 0; i < n; i++) {
      out[i] = freeStack[--freeCount];
    }
    return true;
  }

  public synchronized void free(int slot) {
    if (freeCount >= totalSlots) {
      throw new IllegalStateException("slot " + slot + " freed twice");
    }
    freeStack[freeCount++] = slot;
  }

  public synchronized void freeAll(int[] slots, int from, int to) {
    for (int i = from; i < to; i++) {
      free(slots[i]);
    }
  }

  public synchronized int freeSlots() {
    return freeCount;
  }

  public int totalSlots() {
    return totalSlots;
  }
}
