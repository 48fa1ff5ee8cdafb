package io.peerflash.node.engine;

import io.peerflash.node.cache.CacheFile;
import io.peerflash.node.index.KeyValueStorage;
import io.peerflash.node.index.RocksKeyValueStorage;
import io.peerflash.util.Directories;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Path;

/**
 * Opens the node's local storage: the cache file's channel and the index. The real files, or in
 * tests ones that fail fsyncs or simulate a power cut, under the same engine code.
 */
public interface LocalStorageOpener {
  FileChannel openCacheFile(Path path) throws IOException;

  KeyValueStorage openIndex(Path dir) throws IOException;

  /** Makes the names in {@code dir} durable (fsync of the directory). */
  default void syncDirectory(Path dir) throws IOException {
    Directories.sync(dir);
  }

  /** The cache file on the file system and the index in RocksDB. */
  LocalStorageOpener REAL =
      new LocalStorageOpener() {
        @Override
        public FileChannel openCacheFile(Path path) throws IOException {
          return CacheFile.ChannelOpener.FILE.open(path);
        }

        @Override
        public KeyValueStorage openIndex(Path dir) throws IOException {
          return new RocksKeyValueStorage(dir);
        }
      };
}
