package io.peerflash.node.engine;

import static io.peerflash.node.engine.BlockStoreFixture.BLOCK;
import static io.peerflash.node.engine.BlockStoreFixture.content;
import static io.peerflash.node.engine.EngineTestSupport.awaitTrue;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.index.FaultyKeyValueStorage;
import io.peerflash.node.index.VolumeInfo;
import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.index.VolumeInfo.Role;
import io.peerflash.util.ManualTime;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.FutureTask;
import java.util.concurrent.TimeUnit;
import org.assertj.core.api.ThrowableAssert.ThrowingCallable;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The volumes of one node on a block store of their own (real cache file, RocksDB index that can be
 * made to refuse writes, shared storage in files) and a real destager: creates and their refusals,
 * a create whose definition cannot be stored, deletes in three durable steps (and one cut short,
 * then finished), policy changes behind the volume's gate (leaving write-back destages first, or
 * stays write-back), roles, adopting from the map and dropping local copies.
 */
class VolumeAdminTest {
  private static final long SIZE = 64L * BLOCK;

  @TempDir Path dir;
  private FaultyKeyValueStorage index;
  private BlockStoreFixture f;
  private Destager destager;
  private VolumeAdmin admin;

  @BeforeEach
  void open() throws IOException {
    EngineConfig config = EngineConfig.defaults(dir.resolve("data"), 8 << 20);
    f =
        new BlockStoreFixture(
            dir, config, new ManualTime(), kv -> index = new FaultyKeyValueStorage(kv));
    destager = new Destager(f.store, f.store.backing, config, f.store.time);
    admin = new VolumeAdmin(f.store, destager);
  }

  @AfterEach
  void close() throws IOException {
    destager.close();
    f.close();
  }

  private static void refusal(ThrowingCallable call, Reason reason, String... messageParts) {
    Throwable t = catchThrowable(call);
    assertThat(t).isInstanceOf(CacheException.class);
    for (String part : messageParts) {
      assertThat(t).hasMessageContaining(part);
    }
    assertThat(((CacheException) t).reason()).as(t.getMessage()).isEqualTo(reason);
  }

  private void invalid(String name, long size, CacheMode mode, int replicas, String... parts) {
    refusal(() -> admin.createVolume(name, size, mode, replicas), Reason.INVALID_ARGUMENT, parts);
  }

  private VolumeInfo create(String name) throws CacheException {
    return admin.createVolume(name, SIZE, CacheMode.WRITE_BACK, 0);
  }

  private static VolumeInfo held(long id, String name, Role role) {
    return new VolumeInfo(id, name, SIZE, CacheMode.WRITE_BACK, 1, role);
  }

  private List<VolumeInfo> stored() throws IOException {
    return f.store.catalog.loadAll();
  }

  /** Dirty blocks 0 to n-1 of {@code name}, block b holding content(b). */
  private CachedVolume withDirtyBlocks(String name, int n) throws CacheException {
    CachedVolume v = f.store.volume(name);
    for (int b = 0; b < n; b++) {
      f.install(v, b, f.written(v, b, true));
    }
    return v;
  }

  private byte[] sharedBlock(String name, long block) throws IOException {
    ByteBuffer b = ByteBuffer.allocate(BLOCK);
    f.backing.read(name, block * BLOCK, b);
    return b.array();
  }

  private boolean wakes() {
    destager.wake();
    return true;
  }

  @Test
  void aCreatedVolumeIsStoredWithItsOwnFileAndASecondOfItsNameIsRefused() throws Exception {
    VolumeInfo b = admin.createVolume("b", SIZE, CacheMode.WRITE_BACK, 1);
    VolumeInfo a = admin.createVolume("a", 2 * SIZE, CacheMode.WRITE_THROUGH, 0);
    assertThat(b.role()).isEqualTo(Role.OWNER);
    assertThat(a.id()).as("ids are never shared").isNotEqualTo(b.id());
    assertThat(admin.listVolumes()).as("sorted by name").containsExactly(a, b);
    // In the catalog (synced), so a restart finds them; each with a file of its size.
    assertThat(stored()).containsExactlyInAnyOrder(a, b);
    assertThat(f.backing.size("a")).isEqualTo(2 * SIZE);
    f.backing.write("a", 0, content(7));

    refusal(() -> create("a"), Reason.ALREADY_EXISTS, "already exists");
    // Asking to adopt does not get past the name either.
    refusal(() -> admin.createVolume("a", 0, CacheMode.WRITE_BACK, 0, true), Reason.ALREADY_EXISTS);
    assertThat(admin.getVolume("a")).isEqualTo(a);
    assertThat(f.backing.size("a")).isEqualTo(2 * SIZE);
    assertThat(sharedBlock("a", 0)).as("the first one's data").isEqualTo(content(7).array());
  }

  @Test
  void badNamesSizesAndPoliciesAreRefusedLeavingNoVolumeAndNoFile() throws Exception {
    for (String name : Arrays.asList("", "../up", ".hidden", "a/b", "x".repeat(129), null)) {
      invalid(name, SIZE, CacheMode.WRITE_BACK, 0);
    }
    // Sizes: none, not a block multiple, negative (huge unsigned), past 64 TiB.
    for (long size : new long[] {0, BLOCK - 1, BLOCK + 512, -BLOCK, (64L << 40) + BLOCK}) {
      invalid("v", size, CacheMode.WRITE_BACK, 0);
    }
    invalid("v", SIZE, null, 0);
    invalid("v", SIZE, CacheMode.WRITE_BACK, 3, "must be 0 to 2");
    invalid("v", SIZE, CacheMode.WRITE_BACK, -1);
    refusal(() -> admin.setPolicy("gone", CacheMode.WRITE_BACK, 0), Reason.NOT_FOUND);

    assertThat(admin.listVolumes()).isEmpty();
    assertThat(stored()).isEmpty();
    assertThat(f.backing.size("v")).as("no file left behind").isEqualTo(-1);
  }

  @Test
  void aCreatePolicyOrRoleTheIndexCannotStoreLeavesNothingChanged() throws Exception {
    index.setFull(true);
    refusal(() -> create("v"), Reason.UNAVAILABLE);
    assertThat(f.backing.size("v")).as("its new file removed").isEqualTo(-1);
    assertThat(admin.listVolumes()).isEmpty();

    // With space again the same create goes through: nothing blocks the name.
    index.setFull(false);
    VolumeInfo before = create("v");
    // Neither does a policy or role that cannot be stored change anything.
    index.setFull(true);
    refusal(() -> admin.setPolicy("v", CacheMode.WRITE_THROUGH, 0), Reason.UNAVAILABLE);
    refusal(() -> admin.setRole("v", Role.REPLICA), Reason.UNAVAILABLE);
    index.setFull(false);
    assertThat(admin.getVolume("v")).isEqualTo(before);
    assertThat(stored()).containsExactly(before);
  }

  @Test
  void aDeleteDropsDirtyBlocksEntriesDefinitionAndFileAndFreesTheName() throws Exception {
    int freeBefore = f.freeSlots();
    VolumeInfo info = create("v");
    withDirtyBlocks("v", 5);

    admin.deleteVolume("v");

    assertThat(admin.listVolumes()).isEmpty();
    assertThat(stored()).isEmpty();
    assertThat(f.store.byId(info.id())).isNull();
    assertThat(f.store.index.get(info.id(), 0)).as("block entries gone from the index").isNull();
    assertThat(f.freeSlots()).as("dirty slots freed").isEqualTo(freeBefore);
    assertThat(f.store.dirtySlots.get()).isZero();
    assertThat(f.backing.size("v")).isEqualTo(-1);
    assertThat(f.backing.retired()).as("no moved-aside file left").isEmpty();
    refusal(() -> admin.deleteVolume("v"), Reason.NOT_FOUND);

    // The name is free again; the new volume has a new id and none of the old blocks.
    assertThat(create("v").id()).isNotEqualTo(info.id());
    assertThat(f.store.volume("v").blocks).isEmpty();
  }

  @Test
  void aDeleteCutShortAfterItsFileWasMovedAsideIsFinishedLater() throws Exception {
    int freeBefore = f.freeSlots();
    VolumeInfo info = create("v");
    withDirtyBlocks("v", 3);

    // Step 1 (the file moved aside) succeeds, step 2 (forgetting the volume) cannot be stored.
    index.setFull(true);
    refusal(() -> admin.deleteVolume("v"), Reason.UNAVAILABLE, "the next start finishes it");
    assertThat(f.backing.size("v")).as("the name's file is gone already").isEqualTo(-1);
    assertThat(f.backing.retired()).containsExactly(info.id());
    assertThat(admin.listVolumes()).as("never half there").isEmpty();

    index.setFull(false);
    admin.finishDeletes();
    assertThat(stored()).isEmpty();
    assertThat(f.store.byId(info.id())).isNull();
    assertThat(f.freeSlots()).isEqualTo(freeBefore);
    assertThat(f.backing.retired()).isEmpty();
  }

  @Test
  void leavingWriteBackReturnsOnlyOnceEveryDirtyBlockIsOnSharedStorage() throws Exception {
    admin.createVolume("v", SIZE, CacheMode.WRITE_BACK, 1);
    CachedVolume v = withDirtyBlocks("v", 10);
    destager.start();

    VolumeInfo after = admin.setPolicy("v", CacheMode.WRITE_THROUGH, 0);

    assertThat(after).isEqualTo(held(1, "v", Role.OWNER).withPolicy(CacheMode.WRITE_THROUGH, 0));
    assertThat(v.dirty.size()).as("nothing left dirty").isZero();
    for (int b = 0; b < 10; b++) {
      assertThat(sharedBlock("v", b)).as("block %d", b).isEqualTo(content(b).array());
    }
    assertThat(stored()).containsExactly(after);
  }

  @Test
  void aPolicyChangeWhoseDirtyDataCannotBeDestagedLeavesTheVolumeWriteBack() throws Exception {
    VolumeInfo before = create("v");
    CachedVolume v = withDirtyBlocks("v", 2);
    // Block 1's slot rots: acknowledged data that can never be destaged.
    f.store.writeSlot(v.blocks.get(1L).slot(), content(99));
    destager.start();

    refusal(
        () -> admin.setPolicy("v", CacheMode.WRITE_THROUGH, 2),
        Reason.DATA_LOSS,
        "stays WRITE_BACK");

    // What status shows is true: still write-back, with its old replica count, in memory and on
    // disk; the good block went to shared storage meanwhile.
    assertThat(admin.getVolume("v")).isEqualTo(before);
    assertThat(stored()).containsExactly(before);
    assertThat(sharedBlock("v", 0)).isEqualTo(content(0).array());
  }

  @Test
  void aPolicyChangeWaitsForInFlightIoAndLaterIoSeesTheNewMode() throws Exception {
    create("v");
    CachedVolume v = f.store.volume("v");
    // An I/O in flight holds the gate shared.
    v.gate.readLock().lock();
    FutureTask<VolumeInfo> change =
        new FutureTask<>(() -> admin.setPolicy("v", CacheMode.WRITE_AROUND, 0));
    try {
      new Thread(change, "policy-change").start();
      awaitTrue(10_000, "the policy change queued on the gate", v.gate::hasQueuedThreads);
      // The I/O still runs under the old mode, in memory and in the catalog.
      assertThat(change).isNotDone();
      assertThat(v.info.mode()).isEqualTo(CacheMode.WRITE_BACK);
      assertThat(stored()).extracting(VolumeInfo::mode).containsExactly(CacheMode.WRITE_BACK);
    } finally {
      v.gate.readLock().unlock();
    }
    assertThat(change.get(10, TimeUnit.SECONDS).mode()).isEqualTo(CacheMode.WRITE_AROUND);
    assertThat(v.info.mode()).isEqualTo(CacheMode.WRITE_AROUND);
  }

  @Test
  void aReplicaLeavingWriteBackKeepsItsCopiesWithoutAskingForADestage() throws Exception {
    admin.adoptVolume(held(40, "v", Role.REPLICA), false, 0);
    CachedVolume v = withDirtyBlocks("v", 3);
    // A stopped destager fails any flush at once: the change must not ask for one (a replica
    // never destages; its owner does).
    destager.close();

    VolumeInfo after = admin.setPolicy("v", CacheMode.WRITE_THROUGH, 1);

    assertThat(after).isEqualTo(held(40, "v", Role.REPLICA).withPolicy(CacheMode.WRITE_THROUGH, 1));
    assertThat(v.dirty.size()).as("the copies are still held").isEqualTo(3);
    // The same change on an owner does ask, and fails with that destager: it stays write-back.
    create("o");
    withDirtyBlocks("o", 1);
    refusal(() -> admin.setPolicy("o", CacheMode.WRITE_THROUGH, 0), Reason.UNAVAILABLE);
    assertThat(admin.getVolume("o").mode()).isEqualTo(CacheMode.WRITE_BACK);
  }

  @Test
  void aReplicasCopiesAreNotDestagedUntilItBecomesOwnerWhichIsStored() throws Exception {
    admin.adoptVolume(held(40, "v", Role.REPLICA), false, 0);
    f.backing.create("v", SIZE); // the owner's file on shared storage
    CachedVolume v = withDirtyBlocks("v", 3);
    destager.start();

    // A whole destager step that began after the copies arrived left them alone.
    long rounds = destager.rounds();
    awaitTrue(10_000, "two destager steps", () -> wakes() && destager.rounds() >= rounds + 2);
    assertThat(v.dirty.size()).isEqualTo(3);
    assertThat(sharedBlock("v", 0)).isEqualTo(new byte[BLOCK]);

    admin.setRole("v", Role.OWNER);
    assertThat(stored()).extracting(VolumeInfo::role).containsExactly(Role.OWNER);
    destager.flush(v, v.nextSeq.get() - 1);
    // The copies it held are its own dirty data now.
    assertThat(sharedBlock("v", 2)).isEqualTo(content(2).array());
    admin.setRole("v", Role.REPLICA);
    assertThat(stored()).extracting(VolumeInfo::role).containsExactly(Role.REPLICA);
  }

  @Test
  void adoptingCreatesTheFileOnlyForAnOwnerAndNeverOverAnExistingOne() throws Exception {
    admin.adoptVolume(held(7, "r", Role.REPLICA), false, 0);
    assertThat(f.backing.size("r")).as("a replica makes no file").isEqualTo(-1);

    admin.adoptVolume(held(8, "o", Role.OWNER), true, 0);
    assertThat(f.backing.size("o")).isEqualTo(SIZE);

    // The file of a volume already there (made by the node that took the create) keeps its data.
    f.backing.create("x", SIZE);
    f.backing.write("x", 0, content(3));
    VolumeInfo x = held(9, "x", Role.OWNER);
    assertThat(admin.adoptVolume(x, true, 0)).isEqualTo(x);
    assertThat(sharedBlock("x", 0)).isEqualTo(content(3).array());

    assertThat(stored()).extracting(VolumeInfo::id).containsExactlyInAnyOrder(7L, 8L, 9L);
    // The same name with another id is another volume: refused, the one held stays.
    refusal(
        () -> admin.adoptVolume(held(10, "x", Role.OWNER), true, 0), Reason.FAILED_PRECONDITION);
    assertThat(admin.getVolume("x").id()).isEqualTo(9);
  }

  @Test
  void adoptingAgainAppliesPolicyAndRoleAndRaisesOnlyAnOwnersSequenceFloor() throws Exception {
    long floor = 3L << 40;
    admin.adoptVolume(held(5, "v", Role.REPLICA), false, floor);
    CachedVolume v = f.store.volume("v");
    // A replica's next sequence says how far its copies go: the floor is not for it.
    assertThat(v.nextSeq.get()).isEqualTo(1);

    VolumeInfo asOwner = new VolumeInfo(5, "v", SIZE, CacheMode.WRITE_BACK, 2, Role.OWNER);
    assertThat(admin.adoptVolume(asOwner, true, floor)).isEqualTo(asOwner);
    // The new owner's writes sort after every sequence of an earlier epoch.
    assertThat(v.nextSeq.get()).isEqualTo(floor);
    assertThat(stored()).containsExactly(asOwner);

    // A lower floor (an older map) never lowers it.
    admin.adoptVolume(asOwner, true, floor >> 1);
    assertThat(v.nextSeq.get()).isEqualTo(floor);
    // A fresh owner starts at its floor too.
    admin.adoptVolume(held(6, "w", Role.OWNER), true, floor);
    assertThat(f.store.volume("w").nextSeq.get()).isEqualTo(floor);
  }

  @Test
  void droppingLocalCopiesForgetsTheVolumeButKeepsItsFile() throws Exception {
    int freeBefore = f.freeSlots();
    VolumeInfo info = held(11, "v", Role.REPLICA);
    admin.adoptVolume(info, false, 0);
    f.backing.create("v", SIZE);
    f.backing.write("v", 0, content(4));
    withDirtyBlocks("v", 4);

    admin.dropLocalVolume("v");

    assertThat(admin.listVolumes()).isEmpty();
    assertThat(stored()).isEmpty();
    assertThat(f.store.index.get(info.id(), 0)).isNull();
    assertThat(f.freeSlots()).isEqualTo(freeBefore);
    assertThat(f.store.dirtySlots.get()).isZero();
    // The file is the volume's, still served by its owner elsewhere.
    assertThat(sharedBlock("v", 0)).isEqualTo(content(4).array());
    refusal(() -> admin.dropLocalVolume("v"), Reason.NOT_FOUND);
    // Adopted again later (a newer epoch), it starts empty.
    admin.adoptVolume(info, false, 0);
    assertThat(f.store.volume("v").blocks).isEmpty();
  }
}
