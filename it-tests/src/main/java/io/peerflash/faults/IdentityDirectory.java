package io.peerflash.faults;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveOutputStream;
import org.testcontainers.images.builder.Transferable;

/**
 * A node's identity directory as a copy into its container, owned by the node's user (keys 0600 in
 * a 0700 directory, as on this host), so the node can read its key and nobody else can.
 */
final class IdentityDirectory implements Transferable {
  private final Path dir;
  private final int uid;

  IdentityDirectory(Path dir, int uid) {
    this.dir = dir;
    this.uid = uid;
  }

  private List<Path> files() {
    try (Stream<Path> files = Files.list(dir)) {
      return files.filter(Files::isRegularFile).sorted().toList();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  @Override
  public long getSize() {
    long size = 0;
    for (Path f : files()) {
      try {
        size += Files.size(f);
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
    return size;
  }

  @Override
  public String getDescription() {
    return "identity directory " + dir;
  }

  @Override
  public void transferTo(TarArchiveOutputStream tar, String destination) {
    try {
      TarArchiveEntry d = new TarArchiveEntry(destination + "/");
      d.setMode(TarArchiveEntry.DEFAULT_DIR_MODE & ~0777 | 0700);
      d.setIds(uid, uid);
      tar.putArchiveEntry(d);
      tar.closeArchiveEntry();
      for (Path f : files()) {
        byte[] content = Files.readAllBytes(f);
        TarArchiveEntry e = new TarArchiveEntry(destination + "/" + f.getFileName());
        boolean key = f.getFileName().toString().endsWith("-key.pem");
        e.setMode(TarArchiveEntry.DEFAULT_FILE_MODE & ~0777 | (key ? 0600 : 0644));
        e.setIds(uid, uid);
        e.setSize(content.length);
        tar.putArchiveEntry(e);
        tar.write(content);
        tar.closeArchiveEntry();
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
