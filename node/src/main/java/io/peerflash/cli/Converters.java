package io.peerflash.cli;

import io.peerflash.proto.v1.CacheMode;
import io.peerflash.proto.v1.OnPeerLoss;
import io.peerflash.util.Sizes;
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

  /** For completion scripts and help. */
  static final class ModeCandidates implements Iterable<String> {
    @Override
    public java.util.Iterator<String> iterator() {
      return List.of("write-back", "write-through", "write-around").iterator();
    }
  }
}
