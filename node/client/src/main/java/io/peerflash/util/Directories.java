package io.peerflash.util;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Durable names. On POSIX a file created, renamed or removed survives a crash only once its
 * directory is fsynced; so is a new directory, in its parent.
 */
public final class Directories {
  private Directories() {}

  /** Fsyncs a directory, so the names in it are durable. Errors are thrown, never swallowed. */
  public static void sync(Path directory) throws IOException {
    try (FileChannel d = FileChannel.open(directory, StandardOpenOption.READ)) {
      d.force(true);
    }
  }

  /**
   * Creates a directory and its missing parents, each made durable in its own parent; an existing
   * directory is left as it is.
   */
  public static void createDurably(Path directory) throws IOException {
    Path abs = directory.toAbsolutePath();
    if (Files.isDirectory(abs)) {
      return;
    }
    Path parent = abs.getParent();
    if (parent != null) {
      createDurably(parent);
    }
    try {
      Files.createDirectory(abs);
    } catch (java.nio.file.FileAlreadyExistsException raced) {
      if (!Files.isDirectory(abs)) {
        throw raced;
      }
      return;
    }
    if (parent != null) {
      sync(parent);
    }
  }
}
