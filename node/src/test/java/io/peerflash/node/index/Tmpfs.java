package io.peerflash.node.index;

import static org.assertj.core.api.Assertions.fail;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.TimeUnit;

/**
 * A small tmpfs of its own, so a test can fill a file system without touching anyone else's, and a
 * filler file that takes its free space. Mounting needs root (the tests and CI run as root); a test
 * that cannot mount fails, it is never skipped.
 */
public final class Tmpfs implements AutoCloseable {
  private static final String FILLER = "filler";

  private final Path dir;

  private Tmpfs(Path dir) {
    this.dir = dir;
  }

  public static Tmpfs mount(String prefix, int sizeMiB) throws IOException, InterruptedException {
    Path dir = Files.createTempDirectory(prefix);
    String out =
        run("mount", "-t", "tmpfs", "-o", "size=" + sizeMiB + "m", "tmpfs", dir.toString());
    if (out != null) {
      Files.deleteIfExists(dir);
      fail(
          "cannot mount a %d MiB tmpfs at %s (%s): this test fills a file system of its own and"
              + " must run as root",
          sizeMiB, dir, out);
    }
    return new Tmpfs(dir);
  }

  public Path dir() {
    return dir;
  }

  public long freeBytes() throws IOException {
    return Files.getFileStore(dir).getUsableSpace();
  }

  /** Grows the filler file until at most {@code leaveBytes} are free (0: until the fs is full). */
  public void fillLeaving(long leaveBytes) throws IOException {
    ByteBuffer chunk = ByteBuffer.allocateDirect(1 << 20);
    try (FileChannel ch =
        FileChannel.open(
            dir.resolve(FILLER),
            StandardOpenOption.CREATE,
            StandardOpenOption.WRITE,
            StandardOpenOption.APPEND)) {
      for (long want = freeBytes() - leaveBytes; want > 0; ) {
        chunk.clear();
        if (want < chunk.capacity()) {
          chunk.limit((int) want);
        }
        try {
          want -= ch.write(chunk);
        } catch (IOException e) {
          if (leaveBytes == 0) {
            return; // full: what was asked for
          }
          throw e;
        }
      }
    }
  }

  /** Deletes the filler file: its space is free again. */
  public void freeFiller() throws IOException {
    Files.deleteIfExists(dir.resolve(FILLER));
  }

  @Override
  public void close() throws IOException, InterruptedException {
    String out = run("umount", dir.toString());
    if (out != null) {
      fail("cannot unmount the tmpfs at %s: %s", dir, out);
    }
    Files.deleteIfExists(dir);
  }

  /** Runs a command; null when it succeeded, else its exit code and output. */
  private static String run(String... command) throws IOException, InterruptedException {
    Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
    if (!p.waitFor(30, TimeUnit.SECONDS)) {
      p.destroyForcibly();
      return String.join(" ", command) + " did not finish in 30 s";
    }
    return p.exitValue() == 0 ? null : "exit " + p.exitValue() + ": " + out;
  }
}
