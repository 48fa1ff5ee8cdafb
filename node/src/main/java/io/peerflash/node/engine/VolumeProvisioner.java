package io.peerflash.node.engine;

import io.peerflash.node.engine.CacheException.Reason;
import io.peerflash.node.index.VolumeInfo;
import io.peerflash.node.storage.BackingStore;
import io.peerflash.util.Sizes;
import io.peerflash.util.Texts;
import java.io.IOException;
import java.nio.file.FileAlreadyExistsException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The rules a new volume must meet (name, size, count) and its backing file: created new, or an
 * existing one adopted on request. Never empties a file that is already there: on shared storage it
 * may be another volume's, or a disk image a user is migrating.
 */
final class VolumeProvisioner {
  private static final Logger log = LoggerFactory.getLogger(VolumeProvisioner.class);
  private static final int BLOCK = CacheEngine.BLOCK;

  /** PeerFlash's own limit on a volume's size; shared storage may allow less. */
  static final long MAX_VOLUME_BYTES = 64 * Sizes.TIB;

  private final BackingStore backing;
  private final int maxVolumes;

  VolumeProvisioner(BackingStore backing, int maxVolumes) {
    this.backing = backing;
    this.maxVolumes = maxVolumes;
  }

  /** A backing file ready for a new volume. */
  record BackingFile(String volume, long sizeBytes, boolean created) {}

  static void checkName(String name) throws CacheException {
    if (!VolumeInfo.isValidName(name)) {
      throw CacheException.invalid(
          "volume name " + Texts.quote(name) + " is invalid: use " + VolumeInfo.NAME_RULE);
    }
  }

  /** Refuses one more volume when {@code existing} volumes are there already. */
  void checkCount(int existing) throws CacheException {
    if (existing >= maxVolumes) {
      throw new CacheException(
          Reason.RESOURCE_EXHAUSTED,
          "cannot create another volume: "
              + existing
              + " exist and the limit is "
              + maxVolumes
              + " (max-volumes)");
    }
  }

  /** The largest volume this node can create: PeerFlash's limit or shared storage's, if lower. */
  long maxVolumeBytes() throws CacheException {
    try {
      return Math.min(MAX_VOLUME_BYTES, backing.maxObjectBytes() / BLOCK * BLOCK);
    } catch (IOException e) {
      throw CacheException.unavailable("cannot find the largest file shared storage holds", e);
    }
  }

  private void checkSize(String name, long sizeBytes) throws CacheException {
    if (sizeBytes <= 0 || sizeBytes % BLOCK != 0) {
      throw CacheException.invalid(
          "volume size "
              + Long.toUnsignedString(sizeBytes)
              + " bytes must be a positive multiple of 4096 bytes");
    }
    long max = maxVolumeBytes();
    if (sizeBytes > max) {
      throw CacheException.invalid(
          "volume size "
              + sizeBytes
              + " bytes exceeds the largest volume of "
              + max
              + " bytes ("
              + (max == MAX_VOLUME_BYTES
                  ? "64 TiB"
                  : "the largest file shared storage at " + backing.describe(name) + " can hold")
              + ")");
    }
  }

  /**
   * Makes the backing file of a new volume. Without {@code adoptExisting}, a file of that name must
   * not exist yet (ALREADY_EXISTS names it). With it, the file must exist and becomes the volume's
   * content: {@code sizeBytes} 0 takes the file's own size (a multiple of 4096), a larger one grows
   * the file, a smaller one is refused (it would cut the image off).
   */
  BackingFile prepare(String name, long sizeBytes, boolean adoptExisting) throws CacheException {
    checkName(name);
    long existing;
    try {
      existing = backing.size(name);
    } catch (IOException e) {
      throw CacheException.unavailable("cannot look at shared storage", e);
    }
    if (!adoptExisting) {
      if (existing >= 0) {
        throw alreadyThere(name, existing);
      }
      checkSize(name, sizeBytes);
      try {
        backing.create(name, sizeBytes);
      } catch (FileAlreadyExistsException e) {
        throw alreadyThere(name, -1);
      } catch (IOException e) {
        throw CacheException.unavailable(
            "cannot create the backing file of volume " + Texts.quote(name), e);
      }
      return new BackingFile(name, sizeBytes, true);
    }
    if (existing < 0) {
      throw new CacheException(
          Reason.NOT_FOUND,
          "no file to adopt for volume " + Texts.quote(name) + " at " + backing.describe(name));
    }
    long size = sizeBytes == 0 ? existing : sizeBytes;
    // A size given is checked as given (its message names it); only size 0 takes the file's own.
    if (sizeBytes == 0 && (existing % BLOCK != 0 || existing == 0)) {
      throw CacheException.invalid(
          "the file to adopt at "
              + backing.describe(name)
              + " holds "
              + existing
              + " bytes, not a positive multiple of 4096; give a --size of at least that (it grows"
              + " the file) or extend the file first");
    }
    checkSize(name, size);
    if (size < existing) {
      throw CacheException.invalid(
          "volume size "
              + Long.toUnsignedString(size)
              + " bytes is smaller than the file to adopt at "
              + backing.describe(name)
              + " ("
              + existing
              + " bytes): the rest of the image would be cut off");
    }
    if (size > existing) {
      try {
        backing.extend(name, size);
      } catch (IOException e) {
        throw CacheException.unavailable("cannot grow the file to adopt", e);
      }
    }
    log.info("volume {} adopts {} ({} bytes)", name, backing.describe(name), existing);
    return new BackingFile(name, size, false);
  }

  /** Undoes {@link #prepare} when the volume could not be recorded: removes a file it created. */
  void undo(BackingFile file) {
    if (!file.created()) {
      return;
    }
    try {
      backing.delete(file.volume());
    } catch (IOException e) {
      log.warn(
          "could not remove the new backing file {} of a volume whose creation failed: {}",
          backing.describe(file.volume()),
          e.getMessage());
    }
  }

  private CacheException alreadyThere(String name, long bytes) {
    return new CacheException(
        Reason.ALREADY_EXISTS,
        "shared storage already holds a file for volume "
            + Texts.quote(name)
            + " ("
            + backing.describe(name)
            + (bytes >= 0 ? ", " + bytes + " bytes" : "")
            + "); to use its content as the volume, create it with adopt-existing (--adopt);"
            + " otherwise move the file away");
  }
}
