package io.peerflash.node.engine;

import static io.peerflash.node.engine.EngineTestSupport.awaitWaitingIn;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.peerflash.node.cache.CacheFile;
import io.peerflash.node.index.BlockEntry;
import io.peerflash.node.index.BlockIndex;
import io.peerflash.node.index.KeyValueStorage;
import io.peerflash.node.index.KeyValueStorage.Batch;
import io.peerflash.node.index.RocksKeyValueStorage;
import io.peerflash.util.NamedThreadFactory;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link GroupCommitter} over a real cache file (its fsyncs counted and held by {@link
 * SimulatedDisk}) and a real RocksDB index whose writes are recorded with the fsync count at their
 * time.
 */
class GroupCommitterTest {
  private static final int SLOTS = 64;

  @TempDir Path dir;
  private final SimulatedDisk disk = new SimulatedDisk();
  private final LocalDurability durability = new LocalDurability();
  private final List<IndexWrite> indexWrites = new CopyOnWriteArrayList<>();
  // For each sync of the index log: how many cache-file fsyncs had completed before it.
  private final List<Long> indexSyncs = new CopyOnWriteArrayList<>();
  private final ExecutorService pool =
      Executors.newCachedThreadPool(new NamedThreadFactory("committer-test", true));
  private KeyValueStorage rocks;
  private KeyValueStorage kv;
  private CacheFile cacheFile;
  private BlockIndex index;

  /** One write of the index: synced or not, and how many cache-file fsyncs had completed. */
  private record IndexWrite(boolean sync, int ops, long forcesBefore) {}

  @BeforeEach
  void open() throws IOException {
    rocks = new RocksKeyValueStorage(dir.resolve("index"));
    kv = new DurabilityCheckedStorage(new RecordingStorage(rocks), durability);
    cacheFile = new CacheFile(dir.resolve("cache.slots"), SLOTS * 4096L, disk::openCacheFile);
    index = new BlockIndex(kv);
  }

  @AfterEach
  void close() throws IOException {
    pool.shutdownNow();
    cacheFile.close();
    rocks.close();
  }

  private Batch entryAt(int slot) throws IOException {
    ByteBuffer data = ByteBuffer.allocate(4096);
    data.putInt(0, slot);
    cacheFile.write(slot, data);
    Batch batch = new Batch();
    index.put(batch, 1, slot, new BlockEntry(slot, slot, BlockStore.crc(data.clear()), true, 0));
    return batch;
  }

  @Test
  void withSyncTheDataIsForcedBeforeTheIndexWriteWhichIsSynced() throws Exception {
    GroupCommitter committer = new GroupCommitter(kv, cacheFile, true, durability);
    long forces0 = disk.forces.get();
    committer.commit(entryAt(3));

    assertThat(disk.forces.get() - forces0).as("one fsync of the cache file").isEqualTo(1);
    assertThat(indexWrites)
        .as("one synced index write, after the fsync")
        .containsExactly(new IndexWrite(true, 1, forces0 + 1));
    assertThat(index.get(1, 3)).isNotNull();
    assertThat(committer.groups.sum()).isEqualTo(1);
    assertThat(committer.batches.sum()).isEqualTo(1);
  }

  @Test
  void withoutSyncTheBatchGoesStraightToTheIndexWithoutAnFsync() throws Exception {
    GroupCommitter committer = new GroupCommitter(kv, cacheFile, false, durability);
    long forces0 = disk.forces.get();
    committer.commit(entryAt(4));
    committer.commit(entryAt(5));

    assertThat(disk.forces.get()).isEqualTo(forces0);
    assertThat(indexWrites)
        .containsExactly(new IndexWrite(false, 1, forces0), new IndexWrite(false, 1, forces0));
    assertThat(index.get(1, 5)).isNotNull();
  }

  @Test
  void commitsQueuedBehindARunningFsyncShareTheNextOne() throws Exception {
    GroupCommitter committer = new GroupCommitter(kv, cacheFile, true, durability);
    long forces0 = disk.forces.get();
    CountDownLatch releaseFsync = new CountDownLatch(1);
    disk.holdNextForce(releaseFsync);

    Future<?> leader = commitOnPool(committer, 0, new AtomicReference<>());
    assertThat(disk.forceHeld.await(10, TimeUnit.SECONDS)).as("the leader's fsync").isTrue();
    List<Future<?>> followers = new ArrayList<>();
    for (int slot = 1; slot <= 5; slot++) {
      AtomicReference<Thread> thread = new AtomicReference<>();
      Future<?> f = commitOnPool(committer, slot, thread);
      // Parked on the committed condition: in the queue (not still on its way to the lock).
      awaitWaitingIn(awaitThread(thread), "ConditionObject.awaitUninterruptibly", f);
      assertThat(f).as("a commit queued behind the fsync").isNotDone();
      followers.add(f);
    }

    releaseFsync.countDown();
    leader.get(10, TimeUnit.SECONDS);
    for (Future<?> f : followers) {
      f.get(10, TimeUnit.SECONDS);
    }
    assertThat(disk.forces.get() - forces0)
        .as("the leader's fsync, then one for the five queued")
        .isEqualTo(2);
    assertThat(committer.groups.sum()).isEqualTo(2);
    assertThat(committer.batches.sum()).isEqualTo(6);
    assertThat(indexWrites)
        .containsExactly(
            new IndexWrite(true, 1, forces0 + 1), new IndexWrite(true, 5, forces0 + 2));
    for (int slot = 0; slot <= 5; slot++) {
      assertThat(index.get(1, slot)).as("slot %d", slot).isNotNull();
    }
  }

  @Test
  void aFailedFsyncFailsTheGroupWritesNoIndexAndRefusesEveryLaterCommit() throws Exception {
    GroupCommitter committer = new GroupCommitter(kv, cacheFile, true, durability);
    disk.failNextForces(1);

    assertThatThrownBy(() -> committer.commit(entryAt(7)))
        .isInstanceOf(IOException.class)
        .hasMessageContaining("fsync");
    assertThat(durability.ok()).isFalse();
    assertThat(durability.failure()).contains("an fsync of the cache file");
    assertThat(indexWrites).as("no index write for a group whose data may be lost").isEmpty();
    assertThat(index.get(1, 7)).isNull();

    // The next fsync would succeed, but the pages the failed one dropped are gone: nothing is
    // committed any more, synced or not.
    long forces = disk.forces.get();
    assertThatThrownBy(() -> committer.commit(entryAt(8)))
        .isInstanceOf(IOException.class)
        .hasMessageContaining("local flash failed");
    GroupCommitter unsynced = new GroupCommitter(kv, cacheFile, false, durability);
    assertThatThrownBy(() -> unsynced.commit(entryAt(9)))
        .hasMessageContaining("local flash failed");
    assertThat(disk.forces.get()).as("no fsync tried").isEqualTo(forces);
    assertThat(indexWrites).isEmpty();
    assertThatThrownBy(durability::check)
        .isInstanceOfSatisfying(
            CacheException.class,
            e -> assertThat(e.reason()).isEqualTo(CacheException.Reason.UNAVAILABLE));
  }

  @Test
  void aSyncWithoutSyncWritesForcesTheCacheFileThenSyncsTheIndexLog() throws Exception {
    GroupCommitter committer = new GroupCommitter(kv, cacheFile, false, durability);
    committer.commit(entryAt(4));
    long forces0 = disk.forces.get();

    committer.sync();

    assertThat(disk.forces.get() - forces0).as("one fsync of the cache file").isEqualTo(1);
    assertThat(indexSyncs).as("then one sync of the index log").containsExactly(forces0 + 1);
    assertThat(committer.fsyncs.sum()).isEqualTo(1);
    assertThat(committer.syncRequests.sum()).isEqualTo(1);
    assertThat(committer.groups.sum()).as("the commit only: a sync writes no batch").isEqualTo(1);
  }

  @Test
  void syncsAndCommitsQueuedBehindARunningFsyncShareTheNextOne() throws Exception {
    GroupCommitter committer = new GroupCommitter(kv, cacheFile, true, durability);
    long forces0 = disk.forces.get();
    CountDownLatch releaseFsync = new CountDownLatch(1);
    disk.holdNextForce(releaseFsync);

    Future<?> leader = syncOnPool(committer, new AtomicReference<>());
    assertThat(disk.forceHeld.await(10, TimeUnit.SECONDS)).as("the leader's fsync").isTrue();
    List<Future<?>> queued = new ArrayList<>();
    for (int i = 0; i < 4; i++) {
      AtomicReference<Thread> thread = new AtomicReference<>();
      Future<?> f = i % 2 == 0 ? syncOnPool(committer, thread) : commitOnPool(committer, i, thread);
      awaitWaitingIn(awaitThread(thread), "ConditionObject.awaitUninterruptibly", f);
      assertThat(f).as("queued behind the fsync").isNotDone();
      queued.add(f);
    }

    releaseFsync.countDown();
    leader.get(10, TimeUnit.SECONDS);
    for (Future<?> f : queued) {
      f.get(10, TimeUnit.SECONDS);
    }
    assertThat(disk.forces.get() - forces0)
        .as("the leader's fsync, then one for the two syncs and two commits queued")
        .isEqualTo(2);
    assertThat(committer.fsyncs.sum()).isEqualTo(2);
    assertThat(committer.syncRequests.sum()).isEqualTo(3);
    assertThat(indexSyncs).as("the leader's group had no batch").containsExactly(forces0 + 1);
    assertThat(indexWrites)
        .as("the second group's batches, written synced after its fsync")
        .containsExactly(new IndexWrite(true, 2, forces0 + 2));
  }

  @Test
  void aFailedSyncFailsItsCallersAndIsFatal() throws Exception {
    GroupCommitter committer = new GroupCommitter(kv, cacheFile, false, durability);
    disk.failNextForces(1);

    assertThatThrownBy(committer::sync)
        .isInstanceOf(IOException.class)
        .hasMessageContaining("fsync");
    assertThat(durability.ok()).isFalse();
    assertThat(indexSyncs).isEmpty();
    assertThatThrownBy(committer::sync).hasMessageContaining("local flash failed");
  }

  private Future<?> syncOnPool(GroupCommitter committer, AtomicReference<Thread> thread) {
    return pool.submit(
        () -> {
          thread.set(Thread.currentThread());
          committer.sync();
          return null;
        });
  }

  private Future<?> commitOnPool(GroupCommitter committer, int slot, AtomicReference<Thread> thread)
      throws IOException {
    Batch batch = entryAt(slot);
    return pool.submit(
        () -> {
          thread.set(Thread.currentThread());
          committer.commit(batch);
          return null;
        });
  }

  private static Thread awaitThread(AtomicReference<Thread> thread) throws InterruptedException {
    EngineTestSupport.awaitTrue(10_000, "the commit's thread", () -> thread.get() != null);
    return thread.get();
  }

  /** The real index, recording each write with the cache-file fsyncs done before it. */
  private final class RecordingStorage implements KeyValueStorage {
    private final KeyValueStorage delegate;

    RecordingStorage(KeyValueStorage delegate) {
      this.delegate = delegate;
    }

    @Override
    public byte[] get(Table table, byte[] key) throws IOException {
      return delegate.get(table, key);
    }

    @Override
    public void write(Batch batch, boolean sync) throws IOException {
      indexWrites.add(new IndexWrite(sync, batch.size(), disk.forces.get()));
      delegate.write(batch, sync);
    }

    @Override
    public void scan(Table table, byte[] prefix, Visitor visitor) throws IOException {
      delegate.scan(table, prefix, visitor);
    }

    @Override
    public void sync() throws IOException {
      indexSyncs.add(disk.forces.get());
      delegate.sync();
    }

    @Override
    public Health health() {
      return delegate.health();
    }

    @Override
    public void close() {
      delegate.close();
    }
  }
}
