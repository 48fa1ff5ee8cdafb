package io.peerflash.node.bench;

import io.peerflash.node.index.KeyValueStorage;
import io.peerflash.node.index.RocksKeyValueStorage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

/**
 * What the block index costs per entry when entries are written one per batch, as a write made them
 * before the index commits of an event loop's turn were grouped, and in batches of 8 and 32
 * (RocksDB with its write-ahead log, unsynced, as without --sync). Usage: node/bench/index-batch.sh
 * [entries] [rounds].
 */
public final class IndexBatchBenchmark {
  private IndexBatchBenchmark() {}

  public static void main(String[] args) throws Exception {
    int entries = args.length > 0 ? Integer.parseInt(args[0]) : 300_000;
    int rounds = args.length > 1 ? Integer.parseInt(args[1]) : 3;
    Path dir = Files.createTempDirectory("peerflash-index-batch");
    Random random = new Random(1);
    byte[] value = new byte[40]; // about a block entry's size
    try (RocksKeyValueStorage index = new RocksKeyValueStorage(dir)) {
      for (int round = 1; round <= rounds; round++) {
        StringBuilder line = new StringBuilder("round " + round + ":");
        for (int batchSize : new int[] {1, 8, 32}) {
          long started = System.nanoTime();
          for (int i = 0; i < entries; i += batchSize) {
            KeyValueStorage.Batch batch = new KeyValueStorage.Batch();
            for (int j = 0; j < batchSize; j++) {
              byte[] key = new byte[12];
              long block = random.nextInt(1 << 16);
              for (int b = 0; b < 8; b++) {
                key[4 + b] = (byte) (block >>> (56 - 8 * b));
              }
              batch.put(KeyValueStorage.Table.BLOCKS, key, value);
            }
            index.write(batch, false);
          }
          double usPerEntry = (System.nanoTime() - started) / 1000.0 / entries;
          line.append(String.format("  batches of %2d: %.2f us per entry", batchSize, usPerEntry));
        }
        System.out.println(line);
      }
    } finally {
      try (var files = Files.walk(dir)) {
        files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
      }
    }
  }
}
