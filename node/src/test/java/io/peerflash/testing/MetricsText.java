package io.peerflash.testing;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Reads series out of what a node serves on /metrics (Prometheus' text format). */
public final class MetricsText {
  private MetricsText() {}

  /** The value of {@code series} (name and labels as printed); fails when it is not there. */
  public static double sample(String metrics, String series) {
    Matcher m =
        Pattern.compile("^" + Pattern.quote(series) + " (\\S+)$", Pattern.MULTILINE)
            .matcher(metrics);
    assertThat(m.find()).as("series %s in%n%s", series, metrics).isTrue();
    return Double.parseDouble(m.group(1));
  }
}
