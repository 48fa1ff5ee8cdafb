package io.peerflash.cli;

import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.OnPeerLoss;
import io.peerflash.util.Sizes;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.TypeConversionException;

/** Option types of the command line. */
final class Converters {
  private Converters() {}

  /** Byte counts as {@link Sizes} reads them: 4096, 4KiB, 1MiB... */
  static final class SizeConverter implements ITypeConverter<Long> {
    @Override
    public Long convert(String value) {
      try {
        return Sizes.parse(value);
      } catch (IllegalArgumentException | ArithmeticException e) {
        throw new TypeConversionException(
            e instanceof ArithmeticException ? "'" + value + "' is too large" : e.getMessage());
      }
    }
  }

  /** write-back, write-through, write-around (underscores and any case accepted). */
  static final class ModeConverter implements ITypeConverter<CacheMode> {
    @Override
    public CacheMode convert(String value) {
      String v = value.trim().toLowerCase(Locale.ROOT).replace('_', '-');
      return switch (v) {
        case "write-back", "writeback" -> CacheMode.WRITE_BACK;
        case "write-through", "writethrough" -> CacheMode.WRITE_THROUGH;
        case "write-around", "writearound" -> CacheMode.WRITE_AROUND;
        default ->
            throw new TypeConversionException(
                "unknown mode '" + value + "' (use write-back, write-through or write-around)");
      };
    }
  }

  /** write-through, block, accept. */
  static final class OnPeerLossConverter implements ITypeConverter<OnPeerLoss> {
    @Override
    public OnPeerLoss convert(String value) {
      return switch (value.trim().toLowerCase(Locale.ROOT).replace('_', '-')) {
        case "write-through" -> OnPeerLoss.ON_PEER_LOSS_WRITE_THROUGH;
        case "block" -> OnPeerLoss.ON_PEER_LOSS_BLOCK;
        case "accept" -> OnPeerLoss.ON_PEER_LOSS_ACCEPT;
        default ->
            throw new TypeConversionException(
                "unknown on-peer-loss '" + value + "' (use write-through, block or accept)");
      };
    }

    static String format(OnPeerLoss p) {
      return switch (p) {
        case ON_PEER_LOSS_BLOCK -> "block";
        case ON_PEER_LOSS_ACCEPT -> "accept";
        default -> "write-through";
      };
    }
  }

  /** Durations: 500ms, 90s, 10m, 1h; a bare number is seconds. */
  static final class DurationConverter implements ITypeConverter<Duration> {
    @Override
    public Duration convert(String value) {
      String v = value.trim().toLowerCase(Locale.ROOT);
      int split = 0;
      while (split < v.length() && Character.isDigit(v.charAt(split))) {
        split++;
      }
      String unit = v.substring(split);
      long n;
      try {
        n = Long.parseLong(v.substring(0, split));
      } catch (NumberFormatException e) {
        n = -1;
      }
      Duration d =
          n <= 0
              ? null
              : switch (unit) {
                case "ms" -> Duration.ofMillis(n);
                case "", "s" -> Duration.ofSeconds(n);
                case "m", "min" -> Duration.ofMinutes(n);
                case "h" -> Duration.ofHours(n);
                default -> null;
              };
      if (d == null) {
        throw new TypeConversionException(
            "'" + value + "' is not a positive duration (e.g. 500ms, 90s, 10m, 1h)");
      }
      return d;
    }
  }

  /** For completion scripts and help. */
  static final class ModeCandidates implements Iterable<String> {
    @Override
    public java.util.Iterator<String> iterator() {
      return List.of("write-back", "write-through", "write-around").iterator();
    }
  }
}
