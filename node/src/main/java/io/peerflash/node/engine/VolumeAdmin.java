package io.peerflash.node.engine;

import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.index.BlockEntry;
import io.peerflash.node.index.KeyValueStorage.Batch;
import io.peerflash.node.index.VolumeInfo;
import io.peerflash.node.index.VolumeInfo.CacheMode;
import io.peerflash.node.index.VolumeInfo.Role;
import io.peerflash.replication.data.Replicas;
import io.peerflash.util.Texts;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The volumes this node holds: create, adopt from the cluster map, change policy or role, delete
 * (durably, in steps a crash cannot tear), and finishing deletes a crash cut short.
 */
final class VolumeAdmin {
  private static final Logger log = LoggerFactory.getLogger(VolumeAdmin.class);

  private final BlockStore store;
  private final Destager destager;
  private final VolumeProvisioner provisioner;
  private final Object createLock = new Object();

  VolumeAdmin(BlockStore store, Destager destager) {
    this.store = store;
    this.destager = destager;
    this.provisioner = new VolumeProvisioner(store.backing, store.config.maxVolumes());
  }

  /** Creates a volume of a single node with a new backing file. */
  VolumeInfo createVolume(String name, long sizeBytes, CacheMode mode, int replicas)
      throws CacheException {
    return createVolume(name, sizeBytes, mode, replicas, false);
  }

  /**
   * Creates a volume of a single node (in a cluster the map places volumes: {@link
   * #prepareBackingFile}, then {@link #adoptVolume}).
   *
   * @param adoptExisting use the file already on shared storage under this name as the volume's
   *     content (see {@link #prepareBackingFile}); false: such a file is refused with
   *     ALREADY_EXISTS
   */
  VolumeInfo createVolume(
      String name, long sizeBytes, CacheMode mode, int replicas, boolean adoptExisting)
      throws CacheException {
    VolumeProvisioner.checkName(name);
    checkPolicy(mode, replicas);
    synchronized (createLock) {
      if (store.find(name) != null) {
        throw new CacheException(
            Reason.ALREADY_EXISTS, "volume " + Texts.quote(name) + " already exists");
      }
      provisioner.checkCount(store.volumeCount());
      VolumeProvisioner.BackingFile file = provisioner.prepare(name, sizeBytes, adoptExisting);
      try {
        VolumeInfo info = store.catalog.create(name, file.sizeBytes(), mode, replicas);
        CachedVolume v = new CachedVolume(info, 1);
        store.register(v);
        log.info(
            "created volume {} of {} bytes, {}{}",
            name,
            file.sizeBytes(),
            mode,
            file.created() ? "" : " (adopted its existing file)");
        return info;
      } catch (IOException e) {
        provisioner.undo(file);
        throw CacheException.unavailable(
            "cannot store the definition of volume " + Texts.quote(name), e);
      }
    }
  }

  /**
   * Readies shared storage for a new cluster volume before the map records it: checks the name and
   * the size (against PeerFlash's limit and the largest file shared storage holds), then creates
   * the backing file, or with {@code adoptExisting} adopts the file already there.
   *
   * @param sizeBytes the wire value (unsigned); with {@code adoptExisting}, 0 takes the file's size
   * @return the volume's size
   * @throws CacheException ALREADY_EXISTS when a file is there and not to be adopted
   */
  long prepareBackingFile(String name, long sizeBytes, boolean adoptExisting)
      throws CacheException {
    return provisioner.prepare(name, sizeBytes, adoptExisting).sizeBytes();
  }

  /**
   * Removes a backing file {@link #prepareBackingFile} created for a volume the map then refused.
   */
  void discardNewBackingFile(String name) {
    provisioner.undo(new VolumeProvisioner.BackingFile(name, 0, true));
  }

  /** Refuses one more volume when {@code existing} are there already (max-volumes). */
  void checkVolumeCount(int existing) throws CacheException {
    provisioner.checkCount(existing);
  }

  /** The largest volume this node can create. */
  long maxVolumeBytes() throws CacheException {
    return provisioner.maxVolumeBytes();
  }

  /**
   * Creates or updates a volume whose definition comes from the cluster map (id, policy and this
   * node's role). Only the owner creating a new volume creates its backing file.
   *
   * @param ownerSeqFloor held as OWNER, the volume's writes take sequences of at least this from
   *     now on (raised before the role changes, so no write of the new owner takes a lower one);
   *     ignored for a REPLICA, whose next sequence says how far its copies go
   */
  VolumeInfo adoptVolume(VolumeInfo wanted, boolean createBackingFile, long ownerSeqFloor)
      throws CacheException {
    long floor = wanted.role() == Role.OWNER ? ownerSeqFloor : 0;
    synchronized (createLock) {
      CachedVolume v = store.find(wanted.name());
      if (v != null && v.id() != wanted.id()) {
        throw new CacheException(
            Reason.FAILED_PRECONDITION,
            "volume '"
                + wanted.name()
                + "' is held locally with id "
                + v.id()
                + ", not "
                + wanted.id());
      }
      if (v == null) {
        try {
          // Never re-create an existing file: that would empty a volume's destaged data.
          if (createBackingFile && !store.backing.exists(wanted.name())) {
            try {
              store.backing.create(wanted.name(), wanted.sizeBytes());
            } catch (java.nio.file.FileAlreadyExistsException raced) {
              // made meanwhile by the node that took the create request: the volume's file
            }
          }
          store.catalog.put(wanted);
        } catch (IOException e) {
          throw CacheException.unavailable("cannot adopt volume '" + wanted.name() + "'", e);
        }
        CachedVolume fresh = new CachedVolume(wanted, Math.max(1, floor));
        store.register(fresh);
        log.info("adopted volume {} as {}", wanted.name(), wanted.role());
        return wanted;
      }
    }
    CachedVolume v = store.volume(wanted.name());
    v.nextSeq.accumulateAndGet(floor, Math::max);
    if (v.info.mode() != wanted.mode() || v.info.replicas() != wanted.replicas()) {
      setPolicy(wanted.name(), wanted.mode(), wanted.replicas());
    }
    if (v.info.role() != wanted.role()) {
      setRole(wanted.name(), wanted.role());
    }
    return v.info;
  }

  /**
   * Forgets a volume on this node, dirty copies included, without touching its backing file: for
   * copies a newer epoch superseded (the data is safe with the current owner and replicas).
   */
  void dropLocalVolume(String name) throws CacheException {
    CachedVolume v = store.volume(name);
    v.gate.writeLock().lock();
    try {
      synchronized (createLock) {
        if (v.deleted) {
          return;
        }
        forget(v);
        log.info("dropped local copies of volume {}", name);
      }
    } catch (IOException e) {
      throw CacheException.unavailable("dropping volume '" + name + "' failed", e);
    } finally {
      v.gate.writeLock().unlock();
    }
    store.space.spaceFreed();
  }

  VolumeInfo getVolume(String name) throws CacheException {
    return store.volume(name).info;
  }

  List<VolumeInfo> listVolumes() {
    List<VolumeInfo> all = new ArrayList<>();
    for (CachedVolume v : store.volumes()) {
      if (!v.deleted) {
        all.add(v.info);
      }
    }
    all.sort(Comparator.comparing(VolumeInfo::name));
    return all;
  }

  /** Drops the volume, its cached blocks (dirty ones too) and its backing file. */
  void deleteVolume(String name) throws CacheException {
    CachedVolume v = store.volume(name);
    v.gate.writeLock().lock();
    // Held to the end: a volume created under the same name meanwhile would lose its backing file.
    try {
      synchronized (createLock) {
        deleteLocked(v, name);
      }
    } finally {
      v.gate.writeLock().unlock();
    }
    store.space.spaceFreed();
  }

  /**
   * Deletes in three durable steps, so that a crash at any point leaves either the volume or
   * nothing (never an orphaned backing file that blocks re-creating the name): the backing file is
   * moved aside under a name that carries the volume id, the volume is forgotten, the file is
   * removed. Recovery finishes a delete that found a moved file.
   */
  private void deleteLocked(CachedVolume v, String name) throws CacheException {
    if (v.deleted) {
      throw CacheException.notFound(name);
    }
    try {
      store.backing.retire(name, v.id());
    } catch (IOException e) {
      throw CacheException.unavailable("deleting volume " + Texts.quote(name) + " failed", e);
    }
    try {
      forget(v);
    } catch (IOException e) {
      // The file is aside; the next start finishes the delete.
      throw CacheException.unavailable(
          "deleting volume " + Texts.quote(name) + " failed (the next start finishes it)", e);
    }
    try {
      store.backing.purgeRetired(v.id());
    } catch (IOException e) {
      log.warn("volume {} deleted; its old file is removed at the next start: {}", name, e);
    }
    log.info("deleted volume {}", name);
  }

  /**
   * Removes a volume from this node: its definition and block entries (one synced batch), then its
   * slots. Call with the gate held exclusively and under the create lock.
   */
  private void forget(CachedVolume v) throws IOException {
    v.deleted = true;
    store.unregisterName(v);
    Batch batch = new Batch();
    store.index.deleteVolume(batch, v.id());
    store.catalog.delete(v.info, batch);
    for (Map.Entry<Long, BlockEntry> me : v.blocks.entrySet()) {
      try (BlockLocks.Held h = v.locks.lockRange(me.getKey(), 1, true)) {
        BlockEntry e = v.blocks.remove(me.getKey());
        if (e != null && !e.isZero()) {
          if (e.dirty()) {
            store.dirtyDropped(v);
          }
          store.evictor.release(e.slot());
          store.slots.free(e.slot());
        }
      }
    }
    store.unregisterId(v);
  }

  /**
   * Changes the cache mode and replica count. Leaving write-back destages every dirty block before
   * returning.
   */
  VolumeInfo setPolicy(String name, CacheMode mode, int replicas) throws CacheException {
    checkPolicy(mode, replicas);
    CachedVolume v = store.volume(name);
    VolumeInfo before;
    VolumeInfo after;
    long destageTarget;
    // Exclusive: in-flight writes finish under the old mode, later ones see the new mode.
    v.gate.writeLock().lock();
    try {
      if (v.deleted) {
        throw CacheException.notFound(name);
      }
      before = v.info;
      after = before.withPolicy(mode, replicas);
      store.catalog.update(after);
      v.info = after;
      // Every write-back write has finished (we hold the gate): this is the last one to destage.
      destageTarget = v.nextSeq.get() - 1;
    } catch (IOException e) {
      throw CacheException.unavailable("cannot store the policy of volume '" + name + "'", e);
    } finally {
      v.gate.writeLock().unlock();
    }
    if (before.mode() == CacheMode.WRITE_BACK
        && mode != CacheMode.WRITE_BACK
        && after.role() == Role.OWNER) {
      try {
        destager.flush(v, destageTarget);
      } catch (CacheException e) {
        // The dirty data could not be destaged: the volume stays write-back (what status then
        // says is true), and the change can be asked for again.
        revertPolicy(v, after, before);
        throw new CacheException(
            e.reason(),
            "volume "
                + Texts.quote(name)
                + " stays "
                + before.mode()
                + ": its dirty data could not be destaged first: "
                + e.getMessage(),
            e);
      }
    }
    log.info("volume {} policy {} -> {}", name, before.mode(), mode);
    return after;
  }

  /** Puts a policy back unless something else changed it meanwhile. */
  private void revertPolicy(CachedVolume v, VolumeInfo changed, VolumeInfo back) {
    v.gate.writeLock().lock();
    try {
      if (v.deleted || v.info != changed) {
        return;
      }
      VolumeInfo restored = changed.withPolicy(back.mode(), back.replicas());
      store.catalog.update(restored);
      v.info = restored;
    } catch (IOException e) {
      log.warn("volume {}: cannot put its policy back: {}", v.name(), e.getMessage());
    } finally {
      v.gate.writeLock().unlock();
    }
  }

  private static void checkPolicy(CacheMode mode, int replicas) throws CacheException {
    if (mode == null) {
      throw CacheException.invalid("cache mode must be given");
    }
    if (replicas < 0 || replicas > Replicas.MAX_REPLICAS) {
      throw CacheException.invalid(
          "replicas " + replicas + " out of range: must be 0 to " + Replicas.MAX_REPLICAS);
    }
  }

  /**
   * Changes how this node holds a volume. Becoming OWNER turns every held copy into this node's own
   * dirty data (served and destaged from now on); becoming REPLICA stops serving and destaging. The
   * caller (the cluster layer) decides, under the volume's epoch.
   */
  void setRole(String name, Role role) throws CacheException {
    CachedVolume v = store.volume(name);
    v.gate.writeLock().lock();
    try {
      if (v.deleted) {
        throw CacheException.notFound(name);
      }
      if (v.info.role() == role) {
        return;
      }
      VolumeInfo after = v.info.withRole(role);
      store.catalog.update(after);
      v.info = after;
      log.info("volume {} is now held as {}", name, role);
    } catch (IOException e) {
      throw CacheException.unavailable("cannot store the role of volume '" + name + "'", e);
    } finally {
      v.gate.writeLock().unlock();
    }
    destager.wake();
  }

  /**
   * Finishes deletes cut short by a crash: a volume whose backing file was moved aside is
   * forgotten, and moved-aside files are removed. Shared storage that cannot be listed now only
   * delays this to the next start.
   */
  void finishDeletes() {
    List<Long> retired;
    try {
      retired = store.backing.retired();
    } catch (IOException e) {
      log.warn("cannot look for deletes cut short on shared storage: {}", e.getMessage());
      return;
    }
    for (long id : retired) {
      CachedVolume v = store.byId(id);
      try {
        if (v != null) {
          synchronized (createLock) {
            forget(v);
          }
          log.info("finished deleting volume {}", v.name());
        }
        store.backing.purgeRetired(id);
      } catch (IOException e) {
        log.warn("cannot finish deleting volume id {}: {}", id, e.getMessage());
      }
    }
  }
}
