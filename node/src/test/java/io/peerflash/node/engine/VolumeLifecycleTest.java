package io.peerflash.node.engine;

import static io.peerflash.node.engine.EngineTestSupport.BLOCK;
import static io.peerflash.node.engine.EngineTestSupport.pattern;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowable;

import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.index.VolumeInfo;
import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.storage.FileBackingStore;
import io.peerflash.util.Time;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.assertj.core.api.SoftAssertions;
import org.assertj.core.api.ThrowableAssert.ThrowingCallable;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Creating, adopting and deleting volumes: the backing file is never emptied or orphaned. */
class VolumeLifecycleTest {
  private static final long MIB = 1 << 20;

  @TempDir Path tmp;
  private Path shared;
  private EngineConfig config;
  private FileBackingStore store;
  private CacheEngine engine;

  @BeforeEach
  void setUp() throws Exception {
    shared = tmp.resolve("shared");
    config = EngineConfig.defaults(tmp.resolve("data"), 8 * MIB);
    open();
  }

  @AfterEach
  void tearDown() {
    if (engine != null) {
      engine.close();
    }
  }

  private void open() throws Exception {
    store = new FileBackingStore(shared);
    engine = CacheEngine.open(config, store, Time.SYSTEM);
    engine.start();
  }

  private void restart() throws Exception {
    engine.close();
    engine = null;
    open();
  }

  private static void assertRefused(ThrowingCallable call, Reason reason, String... messageParts) {
    SoftAssertions soft = new SoftAssertions();
    assertRefused(soft, "the request", call, reason, messageParts);
    soft.assertAll();
  }

  private static void assertRefused(
      SoftAssertions soft,
      String what,
      ThrowingCallable call,
      Reason reason,
      String... messageParts) {
    soft.assertThat(catchThrowable(call))
        .as(what)
        .isInstanceOfSatisfying(
            CacheException.class,
            e -> {
              assertThat(e.reason()).as(what + ": " + e.getMessage()).isEqualTo(reason);
              if (messageParts.length > 0) {
                assertThat(e.getMessage()).as(what).contains(messageParts);
              }
            });
  }

  /** Names in the shared directory (volume files, and anything left behind). */
  private List<String> sharedFiles() throws Exception {
    try (Stream<Path> s = Files.list(shared)) {
      return s.map(p -> p.getFileName().toString()).sorted().toList();
    }
  }

  private List<String> volumeNames() {
    return engine.listVolumes().stream().map(VolumeInfo::name).toList();
  }

  // (a) An existing file is never emptied.

  @Test
  void createOverAnExistingFileIsRefusedAndLeavesItsBytes() throws Exception {
    byte[] image = pattern(1, 2 * BLOCK + 15); // 8207 bytes
    Path file = store.fileOf("img");
    Files.write(file, image);

    SoftAssertions soft = new SoftAssertions();
    assertRefused(
        soft,
        "create over an existing file",
        () -> engine.createVolume("img", BLOCK, CacheMode.WRITE_BACK, 0),
        Reason.ALREADY_EXISTS,
        file.toString(),
        "8207 bytes",
        "adopt");
    soft.assertThat(Files.size(file)).as("the file's size").isEqualTo(image.length);
    soft.assertThat(Files.readAllBytes(file)).as("the file's bytes").isEqualTo(image);
    soft.assertThat(volumeNames()).as("volumes").isEmpty();
    soft.assertAll();

    // Nor after a restart, nor with another size.
    restart();
    assertRefused(
        () -> engine.createVolume("img", MIB, CacheMode.WRITE_THROUGH, 0),
        Reason.ALREADY_EXISTS,
        file.toString());
    assertThat(Files.readAllBytes(file)).isEqualTo(image);
    assertThat(volumeNames()).isEmpty();
  }

  // (b) Adopting an existing file (the old code had no such request).

  @Test
  void anAdoptedFileBecomesTheVolumesContent() throws Exception {
    byte[] image = pattern(2, 2 * BLOCK);
    Files.write(store.fileOf("img"), image);

    VolumeInfo info = engine.createVolume("img", 0, CacheMode.WRITE_BACK, 0, true);
    assertThat(info.sizeBytes()).isEqualTo(2 * BLOCK);
    assertThat(engine.read("img", 0, 2 * BLOCK)).isEqualTo(image);
    assertThat(engine.read("img", BLOCK + 512, 1024))
        .isEqualTo(Arrays.copyOfRange(image, BLOCK + 512, BLOCK + 1536));

    // It is an ordinary volume from then on: writes reach the same file.
    byte[] second = pattern(3, BLOCK);
    engine.write("img", BLOCK, ByteBuffer.wrap(second));
    engine.flush("img", Time.SYSTEM.nowMs() + 10_000);
    byte[] expected = image.clone();
    System.arraycopy(second, 0, expected, BLOCK, BLOCK);
    assertThat(Files.readAllBytes(store.fileOf("img"))).isEqualTo(expected);
    restart();
    assertThat(engine.getVolume("img").sizeBytes()).isEqualTo(2 * BLOCK);
    assertThat(engine.read("img", 0, 2 * BLOCK)).isEqualTo(expected);
  }

  @Test
  void adoptingWithALargerSizeGrowsTheFileWithZeros() throws Exception {
    byte[] image = pattern(4, 2 * BLOCK);
    Files.write(store.fileOf("img"), image);

    VolumeInfo info = engine.createVolume("img", MIB, CacheMode.WRITE_THROUGH, 0, true);
    assertThat(info.sizeBytes()).isEqualTo(MIB);
    assertThat(Files.size(store.fileOf("img"))).isEqualTo(MIB);
    byte[] expected = new byte[(int) MIB];
    System.arraycopy(image, 0, expected, 0, image.length);
    assertThat(engine.read("img", 0, MIB)).isEqualTo(expected);
  }

  @Test
  void adoptionsThatWouldCutOffOrInventAnImageAreRefused() throws Exception {
    byte[] image = pattern(5, 2 * BLOCK);
    Path file = store.fileOf("img");
    Files.write(file, image);
    assertRefused(
        () -> engine.createVolume("img", BLOCK, CacheMode.WRITE_BACK, 0, true),
        Reason.INVALID_ARGUMENT,
        "smaller than the file to adopt",
        file.toString());
    assertThat(Files.readAllBytes(file)).isEqualTo(image);
    // A given size that is no block multiple is named as the fault, not the (fine) file.
    for (long size : new long[] {BLOCK - 1, 3 * BLOCK + 512}) {
      assertThatThrownBy(() -> engine.createVolume("img", size, CacheMode.WRITE_BACK, 0, true))
          .isInstanceOfSatisfying(
              CacheException.class,
              e -> {
                assertThat(e.reason()).isEqualTo(Reason.INVALID_ARGUMENT);
                assertThat(e.getMessage())
                    .contains("volume size " + size + " bytes must be a positive multiple of 4096")
                    .doesNotContain("holds 8192 bytes");
              });
    }
    assertThat(Files.readAllBytes(file)).isEqualTo(image);

    assertRefused(
        () -> engine.createVolume("missing", 0, CacheMode.WRITE_BACK, 0, true),
        Reason.NOT_FOUND,
        store.fileOf("missing").toString());
    assertThat(Files.exists(store.fileOf("missing"))).isFalse();

    byte[] odd = pattern(6, 2 * BLOCK + 15);
    Files.write(store.fileOf("odd"), odd);
    assertRefused(
        () -> engine.createVolume("odd", 0, CacheMode.WRITE_BACK, 0, true),
        Reason.INVALID_ARGUMENT,
        "8207 bytes",
        "not a positive multiple of 4096");
    assertThat(Files.readAllBytes(store.fileOf("odd"))).isEqualTo(odd);

    // Growing it past PeerFlash's limit is refused before the file is touched.
    assertRefused(
        () -> engine.createVolume("img", -BLOCK, CacheMode.WRITE_BACK, 0, true),
        Reason.INVALID_ARGUMENT);
    assertThat(Files.readAllBytes(file)).isEqualTo(image);
    assertThat(volumeNames()).isEmpty();
  }

  // (c) Sizes.

  @Test
  void sizesThatAreNotAPositiveBlockMultipleBelowTheLimitAreRefusedLeavingNoFile()
      throws Exception {
    long[] sizes = {0, BLOCK - 1, -1L, Long.MIN_VALUE, -BLOCK, BLOCK + 512};
    SoftAssertions soft = new SoftAssertions();
    for (long size : sizes) {
      String name = "s" + Long.toUnsignedString(size);
      assertRefused(
          soft,
          "create of size " + Long.toUnsignedString(size),
          () -> engine.createVolume(name, size, CacheMode.WRITE_BACK, 0),
          Reason.INVALID_ARGUMENT,
          "volume size " + Long.toUnsignedString(size) + " bytes");
    }
    soft.assertThat(sharedFiles()).as("files left in shared storage").isEmpty();
    soft.assertThat(volumeNames()).as("volumes").isEmpty();
    soft.assertAll();
  }

  @Test
  void aSizeSharedStorageCannotHoldIsRefusedNamingItsLimit() throws Exception {
    long fileSystemMax = store.maxObjectBytes();
    if (fileSystemMax >= VolumeProvisioner.MAX_VOLUME_BYTES) {
      // A file system without the limit (not ext4): PeerFlash's own 64 TiB is the limit.
      assertThat(engine.maxVolumeBytes()).isEqualTo(VolumeProvisioner.MAX_VOLUME_BYTES);
      assertThatThrownBy(
              () ->
                  engine.createVolume(
                      "huge", VolumeProvisioner.MAX_VOLUME_BYTES + BLOCK, CacheMode.WRITE_BACK, 0))
          .isInstanceOfSatisfying(
              CacheException.class,
              e -> {
                assertThat(e.reason()).isEqualTo(Reason.INVALID_ARGUMENT);
                assertThat(e.getMessage()).contains("64 TiB");
              });
      assertThat(sharedFiles()).isEmpty();
      return;
    }
    assertThat(engine.maxVolumeBytes()).isEqualTo(fileSystemMax / BLOCK * BLOCK);
    SoftAssertions soft = new SoftAssertions();
    for (long size :
        new long[] {VolumeProvisioner.MAX_VOLUME_BYTES, engine.maxVolumeBytes() + BLOCK}) {
      assertRefused(
          soft,
          "create of size " + size,
          () -> engine.createVolume("huge", size, CacheMode.WRITE_BACK, 0),
          Reason.INVALID_ARGUMENT,
          "volume size " + size + " bytes exceeds the largest volume of " + engine.maxVolumeBytes(),
          "the largest file shared storage at " + store.fileOf("huge") + " can hold");
    }
    soft.assertThat(sharedFiles()).as("files left in shared storage").isEmpty();
    soft.assertThat(volumeNames()).as("volumes").isEmpty();
    soft.assertAll();
    // One that fits is created (sparse: it takes no space).
    engine.createVolume("huge", engine.maxVolumeBytes(), CacheMode.WRITE_BACK, 0);
    assertThat(Files.size(store.fileOf("huge"))).isEqualTo(engine.maxVolumeBytes());
  }

  // (d) A delete cut short.

  @Test
  void aDeleteCutShortAfterTheFileWasMovedAsideIsFinishedAtStart() throws Exception {
    engine.createVolume("v", MIB, CacheMode.WRITE_BACK, 0);
    engine.write("v", 0, ByteBuffer.wrap(pattern(7, BLOCK)));
    engine.flush("v", Time.SYSTEM.nowMs() + 10_000);
    engine.write("v", BLOCK, ByteBuffer.wrap(pattern(8, BLOCK))); // still dirty
    long id = engine.getVolume("v").id();
    // The first step of a delete, then a crash before the volume was forgotten.
    store.retire("v", id);
    assertThat(sharedFiles()).containsExactly(".retired-" + id + "-v");
    engine.close();
    engine = null;

    open();
    assertThat(volumeNames()).isEmpty();
    assertThat(sharedFiles()).isEmpty();
    assertThat(store.retired()).isEmpty();
    assertThat(engine.status().dirtyBytes()).isZero();
    assertThat(engine.status().cacheUsedBytes()).isZero();

    engine.createVolume("v", MIB, CacheMode.WRITE_BACK, 0);
    assertThat(engine.read("v", 0, MIB)).isEqualTo(new byte[(int) MIB]);
    restart();
    assertThat(volumeNames()).containsExactly("v");
    assertThat(engine.read("v", 0, 2 * BLOCK)).isEqualTo(new byte[2 * BLOCK]);
    assertThat(sharedFiles()).containsExactly("v");
  }

  @Test
  void aCompleteDeleteLeavesNoFileAndTheNameCanBeUsedAgain() throws Exception {
    engine.createVolume("v", MIB, CacheMode.WRITE_BACK, 0);
    engine.write("v", 0, ByteBuffer.wrap(pattern(9, BLOCK)));
    engine.deleteVolume("v");
    assertThat(sharedFiles()).isEmpty();
    engine.createVolume("v", MIB, CacheMode.WRITE_BACK, 0);
    assertThat(engine.read("v", 0, BLOCK)).isEqualTo(new byte[BLOCK]);
  }

  // (e) max-volumes.

  @Test
  void maxVolumesBoundsCreatesAndADeleteMakesRoom() throws Exception {
    engine.close();
    engine = null;
    config = config.withMaxVolumes(3);
    open();
    for (String name : List.of("a", "b", "c")) {
      engine.createVolume(name, MIB, CacheMode.WRITE_BACK, 0);
    }
    assertRefused(
        () -> engine.createVolume("d", MIB, CacheMode.WRITE_BACK, 0),
        Reason.RESOURCE_EXHAUSTED,
        "3 exist and the limit is 3 (max-volumes)");
    assertThat(Files.exists(store.fileOf("d"))).isFalse();
    // An adoption counts too.
    Files.write(store.fileOf("img"), new byte[BLOCK]);
    assertRefused(
        () -> engine.createVolume("img", 0, CacheMode.WRITE_BACK, 0, true),
        Reason.RESOURCE_EXHAUSTED,
        "max-volumes");

    engine.deleteVolume("b");
    engine.createVolume("d", MIB, CacheMode.WRITE_BACK, 0);
    assertRefused(
        () -> engine.createVolume("e", MIB, CacheMode.WRITE_BACK, 0),
        Reason.RESOURCE_EXHAUSTED,
        "max-volumes");
    restart();
    assertThat(volumeNames()).containsExactlyInAnyOrder("a", "c", "d");
    assertRefused(
        () -> engine.createVolume("e", MIB, CacheMode.WRITE_BACK, 0),
        Reason.RESOURCE_EXHAUSTED,
        "max-volumes");
    assertThat(Files.exists(store.fileOf("e"))).isFalse();
  }
}
