package io.peerflash.node.index;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * The durable key-value store under the node's metadata. Keys live in a few tables; a {@link Batch}
 * is applied atomically (all or nothing, also across a crash). With {@code sync=false} a committed
 * batch survives a crash of the process but not of the machine; with {@code sync=true} it survives
 * power loss.
 */
public interface KeyValueStorage extends AutoCloseable {

  enum Table {
    /** Node-wide counters such as the next volume id. */
    META,
    /** Volume definitions, keyed by name. */
    VOLUMES,
    /** The block index: (volume id, block number) to slot, sequence, checksum and state. */
    BLOCKS,
    /**
     * Block entries recovery refused to use (outside their volume), with their data: kept for an
     * operator, never served or destaged.
     */
    QUARANTINE
  }

  /** Visits keys in ascending byte order. Return false to stop. */
  interface Visitor {
    boolean visit(byte[] key, byte[] value);
  }

  byte[] get(Table table, byte[] key) throws IOException;

  /**
   * Applies the batch atomically.
   *
   * @throws SpaceException when the storage is out of space: the batch was not applied and writes
   *     come back by themselves once space is freed
   * @throws IOException on any other failure; the batch may or may not be applied
   */
  void write(Batch batch, boolean sync) throws IOException;

  /** Visits every key of the table that starts with {@code prefix} (empty prefix: all). */
  void scan(Table table, byte[] prefix, Visitor visitor) throws IOException;

  /**
   * Whether a failed {@link #write} is known to have written nothing (the store refused it before
   * touching its log: {@link SpaceException}), so that the failure says nothing about data written
   * before it. Any other failure of a synced write may have lost earlier unsynced data: the engine
   * treats it as fatal.
   */
  static boolean wroteNothing(IOException e) {
    return e instanceof SpaceException;
  }

  /** Forces everything written so far (also with sync=false) to stable storage. */
  void sync() throws IOException;

  /**
   * Whether writes work now. A failed write says why as well; this is for status reports, which
   * must show a stopped index even while nothing writes.
   */
  Health health();

  @Override
  void close();

  /** The storage's ability to write, with what an operator needs to know when it cannot. */
  record Health(State state, String detail) {
    public static final Health OK = new Health(State.OK, "ok");

    /** In order of severity. */
    public enum State {
      OK,
      /**
       * The file system under the storage is full. Writes fail with {@link SpaceException} and
       * resume by themselves once space is freed; nothing committed is lost.
       */
      NO_SPACE,
      /**
       * Stopped after another error: writes fail until the node restarts (or the storage recovers
       * by itself, where it can).
       */
      FAILED
    }
  }

  /**
   * A write refused because the file system under the storage is full: the batch was not applied,
   * everything committed before it is intact, and writes resume by themselves once space is freed,
   * so the caller may retry. Unlike a failed sync (which may have lost what the operating system
   * held for the file), it leaves no doubt about what is durable.
   */
  final class SpaceException extends IOException {
    public SpaceException(String message, Throwable cause) {
      super(message, cause);
    }
  }

  /** Operations applied together. Not thread-safe. */
  final class Batch {
    record Op(Table table, byte[] key, byte[] value) {}

    final List<Op> ops = new ArrayList<>();

    public Batch put(Table table, byte[] key, byte[] value) {
      ops.add(new Op(table, key, value));
      return this;
    }

    public Batch delete(Table table, byte[] key) {
      ops.add(new Op(table, key, null));
      return this;
    }

    public Batch append(Batch other) {
      ops.addAll(other.ops);
      return this;
    }

    public boolean isEmpty() {
      return ops.isEmpty();
    }

    public int size() {
      return ops.size();
    }
  }
}
