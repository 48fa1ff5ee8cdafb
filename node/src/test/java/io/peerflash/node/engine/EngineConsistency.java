package io.peerflash.node.engine;

import io.peerflash.node.cache.SlotAllocator;
import io.peerflash.node.index.BlockEntry;
import java.lang.reflect.Field;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Debug-only consistency check of a quiescent engine (call it after stress runs, with no I/O in
 * flight). It takes every volume's gate exclusively, so the destager (which only tryLocks the gate)
 * cannot change anything while it runs.
 *
 * <p>Checks: every slot referenced by an in-memory entry is unique and not in the allocator's free
 * list; the free list holds no duplicates; (strict) referenced + free = total, i.e. no leak; every
 * in-memory entry equals the durable index entry and the durable index holds no entry memory lacks;
 * dirtySlots equals the number of dirty non-zero entries; every dirty entry is in the volume's
 * DirtyBlockIndex under its sequence, and the DirtyBlockIndex holds nothing else.
 */
final class EngineConsistency {
  private EngineConsistency() {}

  /** Throws an AssertionError listing every problem found. */
  static void assertConsistent(CacheEngine engine) throws Exception {
    List<String> problems = check(engine, true);
    if (!problems.isEmpty()) {
      throw new AssertionError(
          "engine inconsistent ("
              + problems.size()
              + " problems):\n  "
              + String.join("\n  ", problems.subList(0, Math.min(40, problems.size()))));
    }
  }

  static List<String> check(CacheEngine engine, boolean strictNoLeak) throws Exception {
    List<String> problems = new ArrayList<>();
    List<CachedVolume> vols = engine.store.volumes();
    vols.sort((a, b) -> Long.compare(a.id(), b.id()));
    for (CachedVolume v : vols) {
      v.gate.writeLock().lock();
    }
    try {
      // Allocator free list.
      int[] free = freeList(engine.store.slots);
      Set<Integer> freeSet = new HashSet<>();
      for (int s : free) {
        if (!freeSet.add(s)) {
          problems.add("slot " + s + " is in the free list twice (double free)");
        }
      }
      Map<Integer, String> owner = new HashMap<>();
      long dirtyNonZero = 0;
      Set<Long> liveIds = new HashSet<>();
      for (CachedVolume v : vols) {
        if (v.deleted) {
          continue;
        }
        liveIds.add(v.id());
        Map<Long, Long> dirtyBySeq = dirtyIndex(v);
        int dirtyEntries = 0;
        for (Map.Entry<Long, BlockEntry> me : v.blocks.entrySet()) {
          long block = me.getKey();
          BlockEntry e = me.getValue();
          String who = v.name() + "/" + block;
          if (!e.isZero()) {
            String prev = owner.put(e.slot(), who);
            if (prev != null) {
              problems.add("slot " + e.slot() + " referenced by " + prev + " and " + who);
            }
            if (freeSet.contains(e.slot())) {
              problems.add("slot " + e.slot() + " of " + who + " is also in the free list");
            }
          }
          if (e.dirty()) {
            dirtyEntries++;
            if (!e.isZero()) {
              dirtyNonZero++;
            }
            Long b = dirtyBySeq.get(e.seq());
            if (b == null || b != block) {
              problems.add("dirty " + who + " seq " + e.seq() + " missing from DirtyBlockIndex");
            }
          }
          BlockEntry durable = engine.store.index.get(v.id(), block);
          if (!e.equals(durable)) {
            problems.add("memory " + who + " = " + e + " but index = " + durable);
          }
        }
        for (Map.Entry<Long, Long> d : dirtyBySeq.entrySet()) {
          BlockEntry e = v.blocks.get(d.getValue());
          if (e == null || !e.dirty() || e.seq() != d.getKey()) {
            problems.add(
                "DirtyBlockIndex of "
                    + v.name()
                    + " has seq "
                    + d.getKey()
                    + " block "
                    + d.getValue()
                    + " but memory has "
                    + e);
          }
        }
        if (v.dirty.size() != dirtyBySeq.size() || dirtyBySeq.size() != dirtyEntries) {
          problems.add(
              v.name()
                  + ": DirtyBlockIndex.size()="
                  + v.dirty.size()
                  + ", its map holds "
                  + dirtyBySeq.size()
                  + ", dirty entries="
                  + dirtyEntries);
        }
      }
      // Durable index: nothing memory does not have (for live volumes).
      engine.store.index.forEach(
          (vid, block, e) -> {
            CachedVolume v = null;
            for (CachedVolume x : vols) {
              if (x.id() == vid && !x.deleted) {
                v = x;
              }
            }
            if (v == null) {
              problems.add("index holds " + vid + "/" + block + " of no live volume: " + e);
            } else if (!e.equals(v.blocks.get(block))) {
              problems.add(
                  "index "
                      + v.name()
                      + "/"
                      + block
                      + " = "
                      + e
                      + " but memory = "
                      + v.blocks.get(block));
            }
          });
      if (engine.store.dirtySlots.get() != dirtyNonZero) {
        problems.add(
            "dirtySlots="
                + engine.store.dirtySlots.get()
                + " but dirty non-zero entries="
                + dirtyNonZero);
      }
      if (strictNoLeak && owner.size() + freeSet.size() != engine.store.slots.totalSlots()) {
        problems.add(
            "slot leak: "
                + owner.size()
                + " referenced + "
                + freeSet.size()
                + " free != "
                + engine.store.slots.totalSlots()
                + " total");
      }
    } finally {
      for (int i = vols.size() - 1; i >= 0; i--) {
        vols.get(i).gate.writeLock().unlock();
      }
    }
    return problems;
  }

  static int[] freeList(SlotAllocator a) throws Exception {
    synchronized (a) {
      Field stack = SlotAllocator.class.getDeclaredField("freeStack");
      Field count = SlotAllocator.class.getDeclaredField("freeCount");
      stack.setAccessible(true);
      count.setAccessible(true);
      int[] s = (int[]) stack.get(a);
      int n = count.getInt(a);
      int[] out = new int[n];
      System.arraycopy(s, 0, out, 0, n);
      return out;
    }
  }

  @SuppressWarnings("unchecked")
  static Map<Long, Long> dirtyIndex(CachedVolume v) throws Exception {
    Field f = DirtyBlockIndex.class.getDeclaredField("blockBySeq");
    f.setAccessible(true);
    return new HashMap<>((Map<Long, Long>) f.get(v.dirty));
  }
}
