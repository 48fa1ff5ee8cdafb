package io.peerflash.cli;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.MessageOrBuilder;
import com.google.protobuf.util.JsonFormat;
import java.io.PrintStream;
import picocli.CommandLine.Option;

/**
 * {@code -o json}: a command that prints state prints the answer's protobuf message as JSON instead
 * (field names as in the .proto files, zero values included), for scripts.
 */
final class OutputOption {
  enum Format {
    text,
    json
  }

  @Option(
      names = {"-o", "--output"},
      paramLabel = "FORMAT",
      defaultValue = "text",
      description = "text (default) or json (the API's message, proto field names, all fields).")
  Format format = Format.text;

  private static final JsonFormat.Printer PRINTER =
      JsonFormat.printer().preservingProtoFieldNames().includingDefaultValueFields();

  boolean json() {
    return format == Format.json;
  }

  static void print(PrintStream out, MessageOrBuilder message) {
    out.println(json(message));
  }

  static String json(MessageOrBuilder message) {
    try {
      return PRINTER.print(message);
    } catch (InvalidProtocolBufferException e) {
      // Only Any fields of unknown types fail, and none of the printed messages holds one.
      throw new IllegalStateException(e);
    }
  }
}
