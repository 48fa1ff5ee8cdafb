package io.peerflash.cli;

import com.google.protobuf.ByteString;
import com.google.protobuf.UnsafeByteOperations;
import io.peerflash.cli.Converters.SizeConverter;
import io.peerflash.client.PeerFlashClient;
import io.peerflash.util.Sizes;
import java.io.EOFException;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** Block I/O commands: write, read, trim. */
final class IoCommands {
  /** The largest request the API accepts. */
  static final int CHUNK_BYTES = (int) Sizes.MIB;

  /** Unanswered 1 MiB writes a pipelined upload keeps on the wire. */
  static final int WRITE_STREAM_IN_FLIGHT = 8;

  static final int SECTOR_BYTES = 512;

  private IoCommands() {}

  // Checked here so a large upload is not left half-written when its last chunk is rejected.
  static void requireSectorMultiple(CommandSpec spec, String what, long bytes) {
    if (bytes % SECTOR_BYTES != 0) {
      throw new ParameterException(
          spec.commandLine(),
          what + " must be a multiple of " + SECTOR_BYTES + " bytes, got " + bytes);
    }
  }

  @Command(
      name = "write",
      description = {
        "Write a file into a volume. Files over 1 MiB are sent as pipelined 1 MiB writes.",
        "Offset and file size must be multiples of 512 bytes."
      })
  static final class Write implements Callable<Integer> {
    @Mixin ClientOptions client;
    @Spec CommandSpec spec;

    @Parameters(index = "0", paramLabel = "NAME", description = "Volume name.")
    String name;

    @Option(
        names = "--offset",
        required = true,
        paramLabel = "N",
        converter = SizeConverter.class,
        description = "Byte offset in the volume, e.g. 0, 4096 or 4KiB.")
    long offset;

    @Option(names = "--in", required = true, paramLabel = "FILE", description = "Data to write.")
    Path in;

    @Override
    public Integer call() throws IOException {
      requireSectorMultiple(spec, "--offset", offset);
      long sizeBytes = Files.size(in);
      requireSectorMultiple(spec, "the size of " + in, sizeBytes);
      if (sizeBytes == 0) {
        client.cli().out().println("nothing to write: " + in + " is empty");
        return PeerFlashCli.EXIT_OK;
      }
      long startNanos = System.nanoTime();
      long wentThrough;
      try (PeerFlashClient c = client.connect();
          FileChannel file = FileChannel.open(in, StandardOpenOption.READ)) {
        // Pipelined over a write stream; a chunk refused by a node that no longer owns the
        // volume, or lost with a dead node, is resent to the new owner.
        wentThrough =
            c.writeWithRetry(
                name,
                offset,
                sizeBytes,
                CHUNK_BYTES,
                WRITE_STREAM_IN_FLIGHT,
                (pos, n) -> readFully(file, pos, n));
      }
      long elapsedNanos = System.nanoTime() - startNanos;
      client
          .cli()
          .out()
          .println(
              "wrote "
                  + Formats.size(sizeBytes)
                  + " to "
                  + name
                  + " at offset "
                  + offset
                  + " in "
                  + Formats.durationMs(elapsedNanos / 1_000_000)
                  + " ("
                  + Formats.rate(sizeBytes, elapsedNanos)
                  + ")");
      if (wentThrough > 0) {
        client
            .cli()
            .err()
            .println(
                "warning: "
                    + wentThrough
                    + " of "
                    + ((sizeBytes + CHUNK_BYTES - 1) / CHUNK_BYTES)
                    + " chunks went through to shared storage before their acknowledgement: a"
                    + " replica could not take its copy. The data is safe; the volume is short of"
                    + " copies until re-protection ends (see 'peerflash volume stat "
                    + name
                    + "').");
      }
      return PeerFlashCli.EXIT_OK;
    }

    private ByteString readFully(FileChannel file, long position, int length) throws IOException {
      ByteBuffer buf = ByteBuffer.allocate(length);
      while (buf.hasRemaining()) {
        if (file.read(buf, position + buf.position()) < 0) {
          throw new EOFException(in + " shrank while it was being read");
        }
      }
      buf.flip();
      // A fresh buffer per chunk, never reused, so wrapping it without a copy is safe.
      return UnsafeByteOperations.unsafeWrap(buf);
    }
  }

  @Command(
      name = "read",
      description = {
        "Read a range of a volume into a file (or stdout). Ranges over 1 MiB are read in 1 MiB"
            + " requests.",
        "Offset and length must be multiples of 512 bytes."
      })
  static final class Read implements Callable<Integer> {
    @Mixin ClientOptions client;
    @Spec CommandSpec spec;

    @Parameters(index = "0", paramLabel = "NAME", description = "Volume name.")
    String name;

    @Option(
        names = "--offset",
        required = true,
        paramLabel = "N",
        converter = SizeConverter.class,
        description = "Byte offset in the volume, e.g. 0 or 4KiB.")
    long offset;

    @Option(
        names = "--length",
        required = true,
        paramLabel = "N",
        converter = SizeConverter.class,
        description = "Bytes to read, e.g. 4096 or 16MiB.")
    long length;

    @Option(
        names = "--out",
        defaultValue = "-",
        paramLabel = "FILE",
        description =
            "Where to put the data (default: stdout, also written -). An existing file is"
                + " overwritten.")
    String out;

    @Override
    public Integer call() throws IOException {
      requireSectorMultiple(spec, "--offset", offset);
      requireSectorMultiple(spec, "--length", length);
      boolean toStdout = out.equals("-");
      try (PeerFlashClient c = client.connect()) {
        OutputStream sink = toStdout ? client.cli().out() : Files.newOutputStream(Path.of(out));
        try {
          for (long pos = 0; pos < length; pos += CHUNK_BYTES) {
            int n = (int) Math.min(CHUNK_BYTES, length - pos);
            ByteString data = c.readByteString(name, offset + pos, n);
            if (data.size() != n) {
              throw new IOException(
                  "short read at offset " + (offset + pos) + ": got " + data.size() + " of " + n);
            }
            data.writeTo(sink);
          }
          sink.flush();
        } finally {
          if (!toStdout) {
            sink.close();
          }
        }
      }
      if (!toStdout) {
        client
            .cli()
            .out()
            .println(
                "read "
                    + Formats.size(length)
                    + " from "
                    + name
                    + " at offset "
                    + offset
                    + " into "
                    + out);
      }
      return PeerFlashCli.EXIT_OK;
    }
  }

  @Command(name = "trim", description = "Discard a range of a volume; it then reads as zeros.")
  static final class Trim implements Callable<Integer> {
    @Mixin ClientOptions client;
    @Spec CommandSpec spec;

    @Parameters(index = "0", paramLabel = "NAME", description = "Volume name.")
    String name;

    @Option(
        names = "--offset",
        required = true,
        paramLabel = "N",
        converter = SizeConverter.class,
        description = "Byte offset in the volume.")
    long offset;

    @Option(
        names = "--length",
        required = true,
        paramLabel = "N",
        converter = SizeConverter.class,
        description = "Bytes to discard.")
    long length;

    @Override
    public Integer call() {
      requireSectorMultiple(spec, "--offset", offset);
      requireSectorMultiple(spec, "--length", length);
      try (PeerFlashClient c = client.connect()) {
        // The server takes at most 1 MiB per request, as for reads and writes.
        for (long done = 0; done < length; ) {
          long chunk = Math.min(1 << 20, length - done);
          c.trim(name, offset + done, chunk);
          done += chunk;
        }
      }
      client
          .cli()
          .out()
          .println("trimmed " + Formats.size(length) + " of " + name + " at offset " + offset);
      return PeerFlashCli.EXIT_OK;
    }
  }
}
