package io.peerflash.it;

import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.client.PeerFlashClient;
import io.peerflash.proto.v1.CacheMode;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Real node processes killed with SIGKILL in the middle of a write stream (and of destaging): after
 * a restart every acknowledged write reads back, a write in flight at the kill is wholly there or
 * wholly absent, and after Flush the shared-storage file equals what the node serves. Nodes and
 * clients use mutual TLS.
 */
class ProcessCrashIT {
  private static final int BLOCK = 4096;
  private static final int WRITERS = 4;
  private static final int REGION_BYTES = 2 << 20; // per writer
  private static final long VOLUME_BYTES = (long) WRITERS * REGION_BYTES;

  @TempDir Path dir;

  /** One writer's region of the volume: the model and the write that was in flight. */
  static final class Region {
    final int index;
    final byte[] model = new byte[REGION_BYTES];
    volatile long inFlightOffset = -1; // relative to the region
    volatile byte[] inFlightData;
    long acknowledged;

    Region(int index) {
      this.index = index;
    }

    long base() {
      return (long) index * REGION_BYTES;
    }
  }

  @Test
  void killDuringWritesAndDestageLosesNothingAcknowledged() throws Exception {
    // Low watermarks keep the destager busy, so kills also land in the middle of destaging.
    run(
        List.of(
            "--cache-size",
            "32MiB",
            "--set",
            "destage-high-watermark=0.02",
            "--set",
            "destage-low-watermark=0.01"),
        3,
        42);
  }

  @Test
  void killWithSyncWritesLosesNothingAcknowledged() throws Exception {
    run(List.of("--cache-size", "32MiB", "--sync"), 2, 7);
  }

  @Test
  void sigtermFinishesInFlightWritesAndKeepsDirtyData() throws Exception {
    try (NodeProcess node = new NodeProcess(dir, List.of("--cache-size", "32MiB"))) {
      node.start();
      Region[] regions = regions();
      try (PeerFlashClient c = node.connect()) {
        c.createVolume("vol", VOLUME_BYTES, CacheMode.WRITE_BACK, 0);
      }
      writeUntil(
          node,
          regions,
          1500,
          new Random(3),
          n -> {
            try {
              // 143 = 128 + SIGTERM: the JVM ran its shutdown hooks and exited.
              assertThat(n.terminate(Duration.ofSeconds(30))).isIn(0, 143);
            } catch (InterruptedException e) {
              throw new RuntimeException(e);
            }
          });
      assertThat(node.logText()).contains("dirty data kept for the next start");
      node.start();
      verify(node, regions);
    }
  }

  private void run(List<String> args, int kills, long seed) throws Exception {
    Random random = new Random(seed);
    try (NodeProcess node = new NodeProcess(dir, args)) {
      node.start();
      try (PeerFlashClient c = node.connect()) {
        c.createVolume("vol", VOLUME_BYTES, CacheMode.WRITE_BACK, 0);
      }
      Region[] regions = regions();
      for (int k = 0; k < kills; k++) {
        writeUntil(
            node,
            regions,
            1000 + random.nextInt(1500),
            random,
            n -> {
              try {
                n.kill();
              } catch (InterruptedException e) {
                throw new RuntimeException(e);
              }
            });
        node.start();
        verify(node, regions);
      }
      try (PeerFlashClient c = node.connect()) {
        c.flush("vol");
        byte[] served = readAll(c);
        byte[] expected = new byte[(int) VOLUME_BYTES];
        for (Region r : regions) {
          System.arraycopy(r.model, 0, expected, (int) r.base(), REGION_BYTES);
        }
        assertThat(Arrays.equals(served, expected)).as("served data equals the model").isTrue();
        byte[] onStorage = new byte[(int) VOLUME_BYTES];
        try (FileChannel ch =
            FileChannel.open(node.sharedDir().resolve("vol"), StandardOpenOption.READ)) {
          ByteBuffer buf = ByteBuffer.wrap(onStorage);
          while (buf.hasRemaining() && ch.read(buf) >= 0) {}
        }
        assertThat(Arrays.equals(onStorage, expected))
            .as("shared storage equals the model after Flush")
            .isTrue();
        long acked = Arrays.stream(regions).mapToLong(r -> r.acknowledged).sum();
        System.out.printf("crash test: %d acknowledged writes, %d kills, 0 lost%n", acked, kills);
        assertThat(acked).isGreaterThan(100);
      }
    }
  }

  private static Region[] regions() {
    Region[] regions = new Region[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
      regions[i] = new Region(i);
    }
    return regions;
  }

  interface Fault {
    void inject(NodeProcess node);
  }

  /** Runs one writer per region for {@code ms}, then injects the fault while they write. */
  private static void writeUntil(
      NodeProcess node, Region[] regions, long ms, Random random, Fault fault) throws Exception {
    AtomicBoolean stop = new AtomicBoolean();
    List<Thread> threads = new ArrayList<>();
    try (PeerFlashClient c =
        PeerFlashClient.builder()
            .target(node.target())
            .security(NodeProcess.adminSecurity())
            .deadline(Duration.ofSeconds(20))
            .retryBudget(Duration.ZERO)
            .build()) {
      for (Region r : regions) {
        long seed = random.nextLong();
        Thread t = new Thread(() -> writeLoop(c, r, seed, stop), "crash-writer-" + r.index);
        t.start();
        threads.add(t);
      }
      Thread.sleep(ms);
      fault.inject(node);
      stop.set(true);
      for (Thread t : threads) {
        t.join(30_000);
      }
    }
  }

  private static void writeLoop(PeerFlashClient c, Region r, long seed, AtomicBoolean stop) {
    Random rnd = new Random(seed);
    while (!stop.get()) {
      int kind = rnd.nextInt(10);
      int length;
      long offset;
      if (kind < 6) { // one aligned block
        length = BLOCK;
        offset = (long) rnd.nextInt(REGION_BYTES / BLOCK) * BLOCK;
      } else if (kind < 9) { // unaligned: read-modify-write
        length = 512 * (1 + rnd.nextInt(16));
        offset = (long) rnd.nextInt((REGION_BYTES - length) / 512) * 512;
      } else { // multi-block, committed atomically
        length = BLOCK * (2 + rnd.nextInt(62));
        offset = (long) rnd.nextInt((REGION_BYTES - length) / BLOCK) * BLOCK;
      }
      byte[] data = new byte[length];
      rnd.nextBytes(data);
      r.inFlightData = data;
      r.inFlightOffset = offset;
      try {
        c.write("vol", r.base() + offset, data);
      } catch (RuntimeException e) {
        return; // the node died: this write may or may not have happened
      }
      System.arraycopy(data, 0, r.model, (int) offset, length);
      r.acknowledged++;
      r.inFlightOffset = -1;
    }
  }

  /** Every acknowledged write is there; the one in flight is all there or not at all. */
  private static void verify(NodeProcess node, Region[] regions) {
    try (PeerFlashClient c = node.connect()) {
      byte[] all = readAll(c);
      for (Region r : regions) {
        byte[] actual = Arrays.copyOfRange(all, (int) r.base(), (int) r.base() + REGION_BYTES);
        if (Arrays.equals(actual, r.model)) {
          r.inFlightOffset = -1;
          continue;
        }
        assertThat(r.inFlightOffset)
            .as(
                "region %d differs from its acknowledged writes and had no write in flight",
                r.index)
            .isNotEqualTo(-1);
        byte[] withInFlight = r.model.clone();
        System.arraycopy(
            r.inFlightData, 0, withInFlight, (int) r.inFlightOffset, r.inFlightData.length);
        assertThat(Arrays.equals(actual, withInFlight))
            .as("region %d equals its acknowledged writes plus the whole in-flight write", r.index)
            .isTrue();
        System.arraycopy(withInFlight, 0, r.model, 0, REGION_BYTES);
        r.inFlightOffset = -1;
      }
    }
  }

  private static byte[] readAll(PeerFlashClient c) {
    byte[] all = new byte[(int) VOLUME_BYTES];
    for (int off = 0; off < VOLUME_BYTES; off += 1 << 20) {
      byte[] chunk = c.read("vol", off, 1 << 20);
      System.arraycopy(chunk, 0, all, off, chunk.length);
    }
    return all;
  }
}
