package io.peerflash.util;

/** The unit of caching, replication and destage: a volume is an array of 4 KiB blocks. */
public final class Blocks {
  /** One block (and one slot of the cache file). */
  public static final int BLOCK_BYTES = 4096;

  private Blocks() {}
}
