package io.peerflash.bench;

import java.util.Locale;

/** What a benchmark run does per operation. */
public enum Workload {
  /** A 4 KiB gRPC echo: the floor of any request/response over this network and runtime. */
  ECHO("echo", 4096, "4 KiB gRPC echo"),
  /** 4 KiB writes at random 4 KiB-aligned offsets. */
  WRITE("write", 4096, "4 KiB random writes"),
  /** 4 KiB reads at random offsets of a working set written (and so cached) first. */
  READ_HIT("read-hit", 4096, "4 KiB random reads, cached"),
  /** 4 KiB reads of blocks never read or written before: each one misses the cache. */
  READ_MISS("read-miss", 4096, "4 KiB random reads, not cached"),
  /** 70% {@link #READ_HIT} reads and 30% writes over the same working set. */
  MIX("mix", 4096, "70/30 4 KiB random read/write, cached"),
  /** 1 MiB writes, one after the other through the volume. */
  SEQ_WRITE("seq-write", 1 << 20, "1 MiB sequential writes");

  private final String cliName;
  private final int blockBytes;
  private final String description;

  Workload(String cliName, int blockBytes, String description) {
    this.cliName = cliName;
    this.blockBytes = blockBytes;
    this.description = description;
  }

  public String cliName() {
    return cliName;
  }

  public int blockBytes() {
    return blockBytes;
  }

  public String description() {
    return description;
  }

  /** Whether the workload writes to the volume. */
  public boolean writes() {
    return this == WRITE || this == MIX || this == SEQ_WRITE;
  }

  /** Whether it reads a working set that must be written first. */
  public boolean needsWorkingSet() {
    return this == READ_HIT || this == MIX;
  }

  /**
   * Parses a name as the command line spells it ({@code read-hit}; case and underscores ignored).
   *
   * @throws IllegalArgumentException listing the valid names
   */
  public static Workload parse(String name) {
    String n = name.trim().toLowerCase(Locale.ROOT).replace('_', '-');
    for (Workload w : values()) {
      if (w.cliName.equals(n)) {
        return w;
      }
    }
    throw new IllegalArgumentException("unknown workload '" + name + "' (use " + names() + ")");
  }

  public static String names() {
    StringBuilder b = new StringBuilder();
    for (Workload w : values()) {
      if (b.length() > 0) {
        b.append(", ");
      }
      b.append(w.cliName);
    }
    return b.toString();
  }
}
