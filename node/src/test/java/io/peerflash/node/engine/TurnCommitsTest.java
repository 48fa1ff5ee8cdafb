package io.peerflash.node.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.peerflash.node.index.BlockEntry;
import io.peerflash.node.index.FaultyKeyValueStorage;
import io.peerflash.node.index.KeyValueStorage.Batch;
import io.peerflash.util.ManualTime;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link TurnCommits} on a real block store and RocksDB index: the entries added in one turn of a
 * loop are one index write, made by a task queued behind them; every write of the turn hears how it
 * went, whatever the commit or another write's completion throws.
 */
class TurnCommitsTest {
  @TempDir Path dir;
  private BlockStoreFixture f;
  private FaultyKeyValueStorage faulty;
  private TurnCommits turns;
  private CachedVolume v;
  private final Deque<Runnable> loop = new ArrayDeque<>();

  @BeforeEach
  void open() throws IOException {
    EngineConfig config = EngineConfig.defaults(dir.resolve("data"), 8 << 20);
    f =
        new BlockStoreFixture(
            dir, config, new ManualTime(), kv -> faulty = new FaultyKeyValueStorage(kv));
    turns = new TurnCommits(f.store);
    v = f.volume(1, "v", 1 << 20);
  }

  @AfterEach
  void close() throws IOException {
    f.close();
  }

  /** One write's index entry for {@code block} (its data written to a slot of its own). */
  private Batch entryFor(long block) throws CacheException {
    BlockEntry e = f.written(v, (int) block + 1, true);
    Batch b = new Batch();
    f.store.index.put(b, v.id(), block, e);
    return b;
  }

  private static void runAll(Deque<Runnable> loop) {
    for (Runnable task = loop.poll(); task != null; task = loop.poll()) {
      task.run();
    }
  }

  @Test
  void theEntriesOfOneTurnAreOneIndexWriteMadeBehindThem() throws Exception {
    List<CacheException> heard = new ArrayList<>();
    for (long block = 0; block < 3; block++) {
      turns.add(loop::add, entryFor(block), heard::add);
    }
    assertThat(loop).as("one commit task for the turn").hasSize(1);
    assertThat(heard).as("nothing committed before the task").isEmpty();
    assertThat(f.store.index.get(v.id(), 0)).isNull();
    int writes = faulty.writes();
    runAll(loop);
    assertThat(faulty.writes() - writes).as("index writes").isEqualTo(1);
    assertThat(heard).hasSize(3).containsOnlyNulls();
    for (long block = 0; block < 3; block++) {
      assertThat(f.store.index.get(v.id(), block)).isNotNull();
    }

    // The next entry, added after the commit, opens a turn of its own.
    turns.add(loop::add, entryFor(3), heard::add);
    assertThat(loop).hasSize(1);
    runAll(loop);
    assertThat(heard).hasSize(4);
  }

  @Test
  void eachThreadHasATurnOfItsOwn() throws Exception {
    Deque<Runnable> otherLoop = new ArrayDeque<>();
    List<CacheException> heard = new ArrayList<>();
    turns.add(loop::add, entryFor(0), heard::add);
    Batch other = entryFor(1);
    Thread t = new Thread(() -> turns.add(otherLoop::add, other, heard::add));
    t.start();
    t.join();
    assertThat(loop).hasSize(1);
    assertThat(otherLoop).as("the other thread's own turn").hasSize(1);
    runAll(loop);
    runAll(otherLoop);
    assertThat(heard).hasSize(2).containsOnlyNulls();
  }

  @Test
  void aFailedCommitIsToldToEveryWriteOfTheTurn() throws Exception {
    List<CacheException> heard = new ArrayList<>();
    for (long block = 0; block < 3; block++) {
      turns.add(loop::add, entryFor(block), heard::add);
    }
    faulty.failNextBlockPut();
    runAll(loop);
    assertThat(heard).hasSize(3).allSatisfy(e -> assertThat(e).hasMessageContaining("index"));
    assertThat(f.store.index.get(v.id(), 0)).isNull();
  }

  @Test
  void anErrorInTheCommitIsToldToEveryWriteAndThenRethrown() throws Exception {
    List<CacheException> heard = new ArrayList<>();
    for (long block = 0; block < 3; block++) {
      turns.add(loop::add, entryFor(block), heard::add);
    }
    OutOfMemoryError injected = new OutOfMemoryError("injected");
    faulty.throwOnNextWrite(injected);
    Runnable commit = loop.poll();
    assertThatThrownBy(commit::run).isSameAs(injected);
    assertThat(heard)
        .hasSize(3)
        .allSatisfy(
            e ->
                assertThat(e)
                    .hasMessageContaining("local index commit failed")
                    .hasMessageContaining("injected"));
  }

  @Test
  void aCompletionThatThrowsDoesNotKeepTheOthersWaiting() throws Exception {
    List<String> heard = new ArrayList<>();
    AssertionError fatal = new AssertionError("a completion's bug");
    turns.add(
        loop::add,
        entryFor(0),
        failure -> {
          heard.add("first");
          throw new IllegalStateException("a completion's bug");
        });
    turns.add(
        loop::add,
        entryFor(1),
        failure -> {
          heard.add("second");
          throw fatal;
        });
    turns.add(loop::add, entryFor(2), failure -> heard.add("third " + failure));
    Runnable commit = loop.poll();
    assertThatThrownBy(commit::run).as("the Error, after every write heard").isSameAs(fatal);
    assertThat(heard).containsExactly("first", "second", "third null");
  }

  @Test
  void aLoopThatRefusesTheTaskCommitsAtOnce() throws Exception {
    List<CacheException> heard = new ArrayList<>();
    Executor shuttingDown =
        task -> {
          throw new RejectedExecutionException("shutting down");
        };
    turns.add(shuttingDown, entryFor(0), heard::add);
    assertThat(heard).containsExactly((CacheException) null);
    assertThat(f.store.index.get(v.id(), 0)).isNotNull();
  }
}
