package io.peerflash.node.index;

import io.peerflash.util.Blocks;
import java.nio.charset.StandardCharsets;
import java.util.regex.Pattern;

/**
 * A volume's definition: immutable; a policy change yields a new value.
 *
 * @param id node-local id used in index keys (names can be long; ids are 8 bytes)
 */
public record VolumeInfo(
    long id, String name, long sizeBytes, CacheMode mode, int replicas, Role role) {
  /**
   * How this node holds the volume: as its OWNER (serves I/O, destages) or as a REPLICA (stores the
   * owner's dirty blocks; never serves, never destages). Persisted so that a restarted replica can
   * never start destaging copies on its own.
   */
  public enum Role {
    OWNER,
    REPLICA
  }

  /** How writes are acknowledged and whether the cache is filled. */
  public enum CacheMode {
    WRITE_BACK,
    WRITE_THROUGH,
    WRITE_AROUND
  }

  private static final int NAME_OFFSET = 19;
  private static final Pattern NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,127}");

  /** What {@link #isValidName} accepts, for messages. */
  public static final String NAME_RULE =
      "1-128 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit";

  /** Names become file names on shared storage, so only a safe alphabet is allowed. */
  public static boolean isValidName(String name) {
    return name != null && NAME.matcher(name).matches();
  }

  public VolumeInfo withPolicy(CacheMode newMode, int newReplicas) {
    return new VolumeInfo(id, name, sizeBytes, newMode, newReplicas, role);
  }

  public VolumeInfo withRole(Role newRole) {
    return new VolumeInfo(id, name, sizeBytes, mode, replicas, newRole);
  }

  public long blocks() {
    return sizeBytes / Blocks.BLOCK_BYTES;
  }

  byte[] encode() {
    byte[] n = name.getBytes(StandardCharsets.UTF_8);
    byte[] b = new byte[NAME_OFFSET + n.length];
    Bytes.putLong(b, 0, id);
    Bytes.putLong(b, 8, sizeBytes);
    b[16] = (byte) mode.ordinal();
    b[17] = (byte) replicas;
    b[18] = (byte) role.ordinal();
    System.arraycopy(n, 0, b, NAME_OFFSET, n.length);
    return b;
  }

  static VolumeInfo decode(byte[] b) {
    return new VolumeInfo(
        Bytes.getLong(b, 0),
        new String(b, NAME_OFFSET, b.length - NAME_OFFSET, StandardCharsets.UTF_8),
        Bytes.getLong(b, 8),
        CacheMode.values()[b[16]],
        b[17],
        Role.values()[b[18]]);
  }
}
