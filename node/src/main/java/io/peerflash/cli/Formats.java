package io.peerflash.cli;

import io.peerflash.proto.v1.CacheMode;
import io.peerflash.util.Sizes;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.util.Locale;

/** How values are shown to people. */
final class Formats {
  private Formats() {}

  static String mode(CacheMode mode) {
    return switch (mode) {
      case WRITE_BACK -> "write-back";
      case WRITE_THROUGH -> "write-through";
      case WRITE_AROUND -> "write-around";
      default -> mode.name().toLowerCase(Locale.ROOT);
    };
  }

  static String size(long bytes) {
    return Sizes.format(bytes);
  }

  /** Human size plus the exact count, for places where precision matters (stat). */
  static String sizeExact(long bytes) {
    return bytes < Sizes.KIB ? Sizes.format(bytes) : Sizes.format(bytes) + " (" + bytes + " B)";
  }

  static String durationMs(long ms) {
    if (ms < 1000) {
      return ms + " ms";
    }
    if (ms < 60_000) {
      return String.format(Locale.ROOT, "%.1f s", ms / 1000.0);
    }
    long s = ms / 1000;
    if (s < 3600) {
      return String.format(Locale.ROOT, "%dm%02ds", s / 60, s % 60);
    }
    return String.format(Locale.ROOT, "%dh%02dm", s / 3600, (s % 3600) / 60);
  }

  /** {@code text} as a JSON string literal, quotes included. */
  static String jsonString(String text) {
    StringBuilder b = new StringBuilder("\"");
    for (char ch : text.toCharArray()) {
      switch (ch) {
        case '"' -> b.append("\\\"");
        case '\\' -> b.append("\\\\");
        case '\n' -> b.append("\\n");
        case '\r' -> b.append("\\r");
        case '\t' -> b.append("\\t");
        default -> {
          if (ch < 0x20) {
            b.append(String.format("\\u%04x", (int) ch));
          } else {
            b.append(ch);
          }
        }
      }
    }
    return b.append('"').toString();
  }

  static String percent(double fraction) {
    return String.format(Locale.ROOT, "%.1f%%", fraction * 100);
  }

  static String rate(long bytes, long elapsedNanos) {
    if (elapsedNanos <= 0) {
      return "-";
    }
    return Sizes.format((long) (bytes * 1e9 / elapsedNanos)) + "/s";
  }

  /** A "label: value" line; labels are padded so values line up. */
  static String field(String label, Object value) {
    return String.format(Locale.ROOT, "%-18s %s", label + ":", value);
  }

  /** A one-line explanation of a local failure, without the exception class when it is noise. */
  static String describe(Throwable e) {
    if (e instanceof NoSuchFileException f) {
      return "no such file: " + f.getFile();
    }
    if (e instanceof AccessDeniedException f) {
      return "permission denied: " + f.getFile();
    }
    if (e instanceof FileAlreadyExistsException f) {
      return "file exists: " + f.getFile();
    }
    if (e instanceof NotDirectoryException f) {
      return "not a directory: " + f.getFile();
    }
    String message = e.getMessage();
    if (e instanceof java.io.IOException && message != null) {
      return message;
    }
    return message == null
        ? e.getClass().getSimpleName()
        : e.getClass().getSimpleName() + ": " + message;
  }

  /** Why a connection failed, in a few words. */
  static String connectFailure(Throwable t) {
    Throwable root = t;
    while (root.getCause() != null && root.getCause() != root) {
      root = root.getCause();
    }
    String message = rootMessage(root);
    if (root instanceof java.net.ConnectException || message.contains("Connection refused")) {
      return "connection refused";
    }
    if (root instanceof java.net.UnknownHostException) {
      return "unknown host (" + message + ")";
    }
    return message;
  }

  /** The message of the innermost cause, e.g. "Connection refused" under gRPC's wrappers. */
  static String rootMessage(Throwable t) {
    Throwable root = t;
    while (root.getCause() != null && root.getCause() != root) {
      root = root.getCause();
    }
    String message = root.getMessage();
    return message == null ? root.getClass().getSimpleName() : message;
  }
}
