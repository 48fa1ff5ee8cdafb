package io.peerflash.node.nbd;

import io.grpc.netty.shaded.io.netty.buffer.ByteBuf;
import io.grpc.netty.shaded.io.netty.buffer.Unpooled;
import io.peerflash.node.engine.IoRange;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * One volume as an NBD export: checks a request's range against the volume once, splits it into
 * engine calls of at most {@link IoRange#MAX_IO_BYTES} (1 MiB, aligned to the start of the volume),
 * and joins their results.
 *
 * <p>What is atomic: each 1 MiB piece of a request commits as one engine write (its blocks become
 * visible together and survive a crash together); a larger request is several such writes, issued
 * at once, and a failure of one piece fails the whole request while other pieces may have been
 * applied, as with a disk that returns an error for a multi-sector write. A FUA request is made
 * durable after all of its pieces completed.
 */
final class VolumeExport {
  static final int PIECE_BYTES = IoRange.MAX_IO_BYTES;

  private final VolumeIo io;
  private final String name;
  private final long sizeBytes;
  private final boolean readOnly;

  VolumeExport(VolumeIo io, VolumeIo.Volume volume, boolean readOnly) {
    this.io = io;
    this.name = volume.name();
    this.sizeBytes = volume.sizeBytes();
    this.readOnly = readOnly;
  }

  String name() {
    return name;
  }

  long sizeBytes() {
    return sizeBytes;
  }

  boolean readOnly() {
    return readOnly;
  }

  /**
   * @throws NbdErrors.Refused EINVAL for a range that is empty, not of whole 512-byte sectors, or
   *     past the end of the volume
   */
  void checkRange(String op, long offset, long length) {
    if (length <= 0) {
      throw new NbdErrors.Refused(NbdProtocol.EINVAL, op + " of 0 bytes");
    }
    if (offset % NbdProtocol.MIN_BLOCK_BYTES != 0 || length % NbdProtocol.MIN_BLOCK_BYTES != 0) {
      throw new NbdErrors.Refused(
          NbdProtocol.EINVAL,
          op
              + " at "
              + Long.toUnsignedString(offset)
              + " of "
              + length
              + " bytes is not in whole 512-byte sectors (the export's minimum block size)");
    }
    if (offset < 0 || offset > sizeBytes || length > sizeBytes - offset) {
      throw new NbdErrors.Refused(
          NbdProtocol.EINVAL,
          op
              + " at "
              + Long.toUnsignedString(offset)
              + " of "
              + length
              + " bytes goes past the end of volume "
              + name
              + " ("
              + sizeBytes
              + " bytes)");
    }
  }

  private void checkWritable(String op) {
    if (readOnly) {
      throw new NbdErrors.Refused(
          NbdProtocol.EPERM, op + " refused: the client's grant on " + name + " is read-only");
    }
  }

  /** Reads {@code length} bytes: one buffer, or the pieces' buffers joined in order. */
  CompletableFuture<ByteBuf> read(long offset, int length) {
    checkRange("read", offset, length);
    List<CompletableFuture<byte[]>> parts = new ArrayList<>();
    for (long at = offset; at < offset + length; ) {
      int n = pieceLength(at, offset + length);
      parts.add(io.read(name, at, n));
      at += n;
    }
    if (parts.size() == 1) {
      return parts.get(0).thenApply(Unpooled::wrappedBuffer);
    }
    return CompletableFuture.allOf(parts.toArray(CompletableFuture[]::new))
        .thenApply(
            ok -> {
              byte[][] arrays = new byte[parts.size()][];
              for (int i = 0; i < arrays.length; i++) {
                arrays[i] = parts.get(i).join();
              }
              return Unpooled.wrappedBuffer(arrays);
            });
  }

  /** Writes {@code data} (copied here: the caller may release it once this returns). */
  CompletableFuture<Void> write(long offset, ByteBuf data, boolean fua) {
    int length = data.readableBytes();
    checkRange("write", offset, length);
    checkWritable("write");
    List<CompletableFuture<Void>> parts = new ArrayList<>();
    int index = data.readerIndex();
    for (long at = offset; at < offset + length; ) {
      int n = pieceLength(at, offset + length);
      byte[] copy = new byte[n];
      data.getBytes(index, copy);
      parts.add(io.write(name, at, ByteBuffer.wrap(copy)));
      at += n;
      index += n;
    }
    return durableIf(fua, all(parts));
  }

  /**
   * Zeros a range. Without {@code noHole} the blocks become zero entries (no data slot, reported as
   * zeros by BLOCK_STATUS); with it, zeros are written as data.
   */
  CompletableFuture<Void> zero(long offset, long length, boolean fua, boolean noHole) {
    checkRange("write-zeroes", offset, length);
    checkWritable("write-zeroes");
    List<CompletableFuture<Void>> parts = new ArrayList<>();
    for (long at = offset; at < offset + length; ) {
      int n = pieceLength(at, offset + length);
      parts.add(noHole ? io.write(name, at, ByteBuffer.wrap(new byte[n])) : io.zero(name, at, n));
      at += n;
    }
    return durableIf(fua, all(parts));
  }

  /** Discards a range: it reads as zeros afterwards (TRIM may do more than the protocol asks). */
  CompletableFuture<Void> trim(long offset, long length, boolean fua) {
    checkRange("trim", offset, length);
    checkWritable("trim");
    List<CompletableFuture<Void>> parts = new ArrayList<>();
    for (long at = offset; at < offset + length; ) {
      int n = pieceLength(at, offset + length);
      parts.add(io.zero(name, at, n));
      at += n;
    }
    return durableIf(fua, all(parts));
  }

  /** Reads the range into the cache (misses are promoted) and drops the data. */
  CompletableFuture<Void> cache(long offset, long length) {
    checkRange("cache", offset, length);
    List<CompletableFuture<Void>> parts = new ArrayList<>();
    for (long at = offset; at < offset + length; ) {
      int n = pieceLength(at, offset + length);
      parts.add(io.read(name, at, n).thenAccept(data -> {}));
      at += n;
    }
    return all(parts);
  }

  CompletableFuture<Void> flush() {
    return io.flush(name);
  }

  /**
   * The allocation of a range from its start, for base:allocation: runs of 4 KiB blocks that read
   * as zeros (reported {@link NbdProtocol#STATE_ZERO}) and of data. It answers at most one piece (1
   * MiB) per call, which the protocol allows (the client asks again for the rest), and rests on the
   * data itself: what a read returns now, whatever the block's place (cache, a replica's copy after
   * failover, shared storage after destage or eviction, a restart in between).
   *
   * @return pairs of (length, flags), covering at least the first byte of the range
   */
  CompletableFuture<List<int[]>> blockStatus(long offset, long length) {
    checkRange("block-status", offset, length);
    int n = pieceLength(offset, offset + length);
    return io.read(name, offset, n)
        .thenApply(
            data -> {
              List<int[]> extents = new ArrayList<>();
              int block = NbdProtocol.PREFERRED_BLOCK_BYTES;
              // The first run ends at the first 4 KiB boundary, so later runs align to blocks.
              int at = 0;
              while (at < data.length) {
                int end = (int) Math.min(data.length, ((offset + at) / block + 1) * block - offset);
                int flags = allZero(data, at, end) ? NbdProtocol.STATE_ZERO : 0;
                int[] last = extents.isEmpty() ? null : extents.get(extents.size() - 1);
                if (last != null && last[1] == flags) {
                  last[0] += end - at;
                } else {
                  extents.add(new int[] {end - at, flags});
                }
                at = end;
              }
              return extents;
            });
  }

  private static boolean allZero(byte[] data, int from, int to) {
    for (int i = from; i < to; i++) {
      if (data[i] != 0) {
        return false;
      }
    }
    return true;
  }

  private CompletableFuture<Void> durableIf(boolean fua, CompletableFuture<Void> done) {
    return fua ? done.thenCompose(ok -> io.flush(name)) : done;
  }

  /** Pieces end at 1 MiB boundaries of the volume, so a request's pieces are blocks-aligned. */
  private static int pieceLength(long at, long end) {
    long boundary = (at / PIECE_BYTES + 1) * PIECE_BYTES;
    return (int) (Math.min(boundary, end) - at);
  }

  private static CompletableFuture<Void> all(List<CompletableFuture<Void>> parts) {
    return parts.size() == 1
        ? parts.get(0)
        : CompletableFuture.allOf(parts.toArray(CompletableFuture[]::new));
  }
}
