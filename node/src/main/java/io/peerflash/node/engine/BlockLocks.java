package io.peerflash.node.engine;

import java.util.Arrays;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * Striped read/write locks over a volume's blocks, plus a version per stripe that grows with every
 * change to a block of the stripe (so a reader can tell that nothing changed between two locked
 * sections). Ranges are always locked in ascending stripe order, so lockers never deadlock.
 */
final class BlockLocks {
  private static final int STRIPES = 256;
  private static final int MASK = STRIPES - 1;

  private final ReentrantReadWriteLock[] locks = new ReentrantReadWriteLock[STRIPES];
  // Guarded by the stripe's lock: written under the write lock, read under either.
  private final long[] versions = new long[STRIPES];

  BlockLocks() {
    for (int i = 0; i < STRIPES; i++) {
      locks[i] = new ReentrantReadWriteLock();
    }
  }

  /** Held stripes; closing releases them. */
  final class Held implements AutoCloseable {
    private final int[] stripes;
    private final boolean write;

    private Held(int[] stripes, boolean write) {
      this.stripes = stripes;
      this.write = write;
    }

    @Override
    public void close() {
      for (int i = stripes.length - 1; i >= 0; i--) {
        if (write) {
          locks[stripes[i]].writeLock().unlock();
        } else {
          locks[stripes[i]].readLock().unlock();
        }
      }
    }
  }

  Held lockRange(long firstBlock, int count, boolean write) {
    return lock(rangeStripes(firstBlock, count), write);
  }

  /** Locks a range's stripes only if none is busy; null (nothing held) otherwise. */
  Held tryLockRange(long firstBlock, int count, boolean write) {
    return tryLock(rangeStripes(firstBlock, count), write);
  }

  private static int[] rangeStripes(long firstBlock, int count) {
    int[] stripes;
    if (count >= STRIPES) {
      stripes = new int[STRIPES];
      for (int i = 0; i < STRIPES; i++) {
        stripes[i] = i;
      }
    } else {
      stripes = new int[count];
      for (int i = 0; i < count; i++) {
        stripes[i] = (int) ((firstBlock + i) & MASK);
      }
      Arrays.sort(stripes);
    }
    return stripes;
  }

  Held lockBlocks(long[] blocks, int count, boolean write) {
    return lock(uniqueStripes(blocks, count), write);
  }

  private static int[] uniqueStripes(long[] blocks, int count) {
    int[] stripes = new int[count];
    for (int i = 0; i < count; i++) {
      stripes[i] = (int) (blocks[i] & MASK);
    }
    Arrays.sort(stripes);
    int unique = 0;
    for (int i = 0; i < count; i++) {
      if (unique == 0 || stripes[unique - 1] != stripes[i]) {
        stripes[unique++] = stripes[i];
      }
    }
    return Arrays.copyOf(stripes, unique);
  }

  /** Write-locks the blocks' stripes only if none is busy; null (nothing held) otherwise. */
  Held tryLockBlocks(long[] blocks, int count) {
    return tryLock(uniqueStripes(blocks, count), true);
  }

  /**
   * A stripe this thread already holds for writing counts as busy: a network thread may hold a
   * write's range from one of its tasks to a later one (CacheEngine.LocalStore), and reentry would
   * let a second write (or a read) of the stripe run in between.
   */
  private boolean tryLockStripe(int stripe, boolean write) {
    ReentrantReadWriteLock lock = locks[stripe];
    if (lock.isWriteLockedByCurrentThread()) {
      return false;
    }
    return (write ? lock.writeLock() : lock.readLock()).tryLock();
  }

  private Held tryLock(int[] stripes, boolean write) {
    for (int i = 0; i < stripes.length; i++) {
      if (!tryLockStripe(stripes[i], write)) {
        for (int j = i - 1; j >= 0; j--) {
          if (write) {
            locks[stripes[j]].writeLock().unlock();
          } else {
            locks[stripes[j]].readLock().unlock();
          }
        }
        return null;
      }
    }
    return new Held(stripes, write);
  }

  private Held lock(int[] stripes, boolean write) {
    for (int s : stripes) {
      if (write) {
        locks[s].writeLock().lock();
      } else {
        locks[s].readLock().lock();
      }
    }
    return new Held(stripes, write);
  }

  /** Tries the write lock of one block's stripe without waiting; null if busy. */
  Held tryLockBlock(long block) {
    int s = (int) (block & MASK);
    return tryLockStripe(s, true) ? new Held(new int[] {s}, true) : null;
  }

  /** Call with the block's stripe write-locked. */
  void bump(long block) {
    versions[(int) (block & MASK)]++;
  }

  /** Call with the block's stripe locked (read or write). */
  long version(long block) {
    return versions[(int) (block & MASK)];
  }
}
