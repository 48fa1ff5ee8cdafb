package io.peerflash.node.index;

import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.node.index.KeyValueStorage.Batch;
import io.peerflash.node.index.KeyValueStorage.Table;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Closing the index while calls are still running (a request a shutdown did not wait for) must not
 * crash the process: RocksDB's native code does when its handle is closed under a call. Calls
 * finish first; later ones fail with an IOException.
 */
class RocksKeyValueStorageCloseTest {
  @TempDir Path dir;

  @Test
  void closeUnderRunningCallsWaitsForThemAndLaterCallsFailCleanly() throws Exception {
    for (int round = 0; round < 5; round++) {
      RocksKeyValueStorage kv = new RocksKeyValueStorage(dir.resolve("index-" + round));
      AtomicLong calls = new AtomicLong();
      AtomicReference<Throwable> unexpected = new AtomicReference<>();
      CountDownLatch started = new CountDownLatch(4);
      List<Thread> threads = new ArrayList<>();
      for (int t = 0; t < 4; t++) {
        int kind = t;
        Thread thread =
            new Thread(
                () -> {
                  started.countDown();
                  byte[] value = new byte[4096];
                  try {
                    for (long i = 0; ; i++) {
                      byte[] key = Long.toString(i % 5000).getBytes();
                      switch (kind) {
                        case 0 -> kv.write(new Batch().put(Table.BLOCKS, key, value), false);
                        case 1 -> kv.get(Table.BLOCKS, key);
                        case 2 -> kv.scan(Table.BLOCKS, new byte[0], (k, v) -> true);
                        default -> kv.write(new Batch().put(Table.META, key, value), i % 64 == 0);
                      }
                      calls.incrementAndGet();
                    }
                  } catch (IOException e) {
                    if (!String.valueOf(e.getMessage()).contains("is closed")) {
                      unexpected.set(e);
                    }
                  } catch (RuntimeException e) {
                    unexpected.set(e);
                  }
                });
        thread.start();
        threads.add(thread);
      }
      started.await();
      long before = calls.get();
      while (calls.get() < before + 2000) {
        Thread.onSpinWait(); // every kind of call is under way
      }
      kv.close();
      for (Thread thread : threads) {
        thread.join(30_000);
        assertThat(thread.isAlive()).as("a call after close returned").isFalse();
      }
      assertThat(unexpected.get()).as("failure other than 'closed'").isNull();
      kv.close(); // twice is harmless
    }
  }
}
