package io.peerflash.bench;

import io.peerflash.bench.BenchResult.TimelinePoint;
import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.FontMetrics;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.geom.Path2D;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.ToDoubleFunction;
import javax.imageio.ImageIO;

/**
 * Latency plots drawn with java.awt into PNG files (headless): percentile distributions of several
 * runs side by side, and the timeline of a long run.
 */
public final class Plots {
  static final Color[] PALETTE = {
    new Color(0x1f77b4),
    new Color(0xd62728),
    new Color(0x2ca02c),
    new Color(0xff7f0e),
    new Color(0x9467bd),
    new Color(0x8c564b),
    new Color(0xe377c2),
    new Color(0x7f7f7f),
    new Color(0xbcbd22),
    new Color(0x17becf),
    new Color(0x000000),
    new Color(0xaec7e8)
  };

  private static final int PANEL_W = 640;
  private static final int PANEL_H = 420;
  private static final int LEFT = 70;
  private static final int RIGHT = 20;
  private static final int TOP = 40;
  private static final int BOTTOM = 50;

  /** The nines axis ends here: 99.999%. */
  private static final double MAX_NINES = 5;

  private Plots() {}

  /** A titled group of runs drawn in one panel. */
  public record Panel(String title, List<BenchResult> results) {}

  /** Draws one percentile panel per entry, side by side. */
  public static BufferedImage percentiles(List<Panel> panels) {
    int n = Math.max(1, panels.size());
    int legendRows = 0;
    for (Panel p : panels) {
      legendRows = Math.max(legendRows, p.results().size());
    }
    int legendH = 18 * legendRows + 10;
    BufferedImage img =
        new BufferedImage(PANEL_W * n, PANEL_H + legendH, BufferedImage.TYPE_INT_RGB);
    Graphics2D g = graphics(img);
    for (int i = 0; i < panels.size(); i++) {
      drawPercentilePanel(g, panels.get(i), i * PANEL_W, 0, PANEL_W, PANEL_H, legendH);
    }
    g.dispose();
    return img;
  }

  /** Writes a PNG, creating the directory. */
  public static void writePng(BufferedImage img, Path file) throws IOException {
    Path parent = file.toAbsolutePath().getParent();
    if (parent != null) {
      Files.createDirectories(parent);
    }
    if (!ImageIO.write(img, "png", file.toFile())) {
      throw new IOException("no PNG writer available");
    }
  }

  private static Graphics2D graphics(BufferedImage img) {
    Graphics2D g = img.createGraphics();
    g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
    g.setRenderingHint(
        RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
    g.setColor(Color.WHITE);
    g.fillRect(0, 0, img.getWidth(), img.getHeight());
    g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
    return g;
  }

  /** x position of a percentile on a "nines" axis: 90% is 1, 99% is 2, 99.9% is 3... */
  static double nines(double percentile) {
    if (percentile >= 100) {
      return MAX_NINES;
    }
    return Math.min(MAX_NINES, -Math.log10(1 - percentile / 100));
  }

  /** Decades of a log axis covering [lo, hi] (positive values). */
  static double[] decades(double lo, double hi) {
    double a = Math.floor(Math.log10(Math.max(lo, 1e-3)));
    double b = Math.ceil(Math.log10(Math.max(Math.max(hi, lo * 10), 1e-3)));
    if (b <= a) {
      b = a + 1;
    }
    return new double[] {a, b};
  }

  /** "10 us", "1 ms", "100 ms", "1 s". */
  public static String micros(double us) {
    if (us >= 1e6) {
      return trim(us / 1e6) + " s";
    }
    if (us >= 1e3) {
      return trim(us / 1e3) + " ms";
    }
    return trim(us) + " us";
  }

  private static String trim(double v) {
    return v == Math.rint(v) ? Long.toString((long) v) : String.format(Locale.ROOT, "%.1f", v);
  }

  private static void drawPercentilePanel(
      Graphics2D g, Panel panel, int x0, int y0, int w, int h, int legendH) {
    int px = x0 + LEFT;
    int py = y0 + TOP;
    int pw = w - LEFT - RIGHT;
    int ph = h - TOP - BOTTOM;
    double lo = Double.MAX_VALUE;
    double hi = 0;
    for (BenchResult r : panel.results()) {
      for (double[] p : r.percentiles()) {
        if (p[1] > 0) {
          lo = Math.min(lo, p[1]);
          hi = Math.max(hi, p[1]);
        }
      }
    }
    if (hi == 0) {
      lo = 10;
      hi = 1000;
    }
    double[] dec = decades(lo, hi);
    g.setColor(Color.BLACK);
    g.setFont(g.getFont().deriveFont(Font.BOLD, 14f));
    drawCentered(g, panel.title(), px + pw / 2, y0 + 24);
    g.setFont(g.getFont().deriveFont(Font.PLAIN, 12f));
    // Grid: decades of latency, nines of percentile.
    drawLatencyGrid(g, dec, px, py, pw, ph);
    String[] nineLabels = {"0%", "90%", "99%", "99.9%", "99.99%", "99.999%"};
    for (int k = 0; k <= MAX_NINES; k++) {
      int x = px + (int) Math.round(k / MAX_NINES * pw);
      g.setColor(new Color(0xdddddd));
      g.drawLine(x, py, x, py + ph);
      g.setColor(Color.DARK_GRAY);
      drawCentered(g, nineLabels[k], x, py + ph + 16);
    }
    drawCentered(g, "percentile", px + pw / 2, py + ph + 34);
    g.setColor(Color.BLACK);
    g.drawRect(px, py, pw, ph);
    int i = 0;
    for (BenchResult r : panel.results()) {
      Color c = PALETTE[i % PALETTE.length];
      Path2D.Double path = new Path2D.Double();
      boolean first = true;
      for (double[] p : r.percentiles()) {
        if (p[1] <= 0) {
          continue;
        }
        double x = px + nines(p[0]) / MAX_NINES * pw;
        double y = py + ph - (Math.log10(p[1]) - dec[0]) / (dec[1] - dec[0]) * ph;
        if (first) {
          path.moveTo(x, y);
          first = false;
        } else {
          path.lineTo(x, y);
        }
      }
      g.setColor(c);
      g.setStroke(new BasicStroke(2f));
      g.draw(path);
      g.setStroke(new BasicStroke(1f));
      int ly = y0 + h + 14 + 18 * i;
      g.fillRect(px, ly - 9, 14, 10);
      g.setColor(Color.BLACK);
      g.drawString(
          String.format(
              Locale.ROOT,
              "%s  (p50 %s, p99 %s, %s IOPS)",
              r.label(),
              micros(r.latency().p50()),
              micros(r.latency().p99()),
              Report.count(r.iops())),
          px + 20,
          ly);
      i++;
    }
  }

  /**
   * The timeline of a long run: latency per interval (p50, p99, max; log scale) above, IOPS and the
   * node's dirty fraction below.
   */
  public static BufferedImage timeline(String title, List<TimelinePoint> points) {
    int w = 1100;
    int top = 380;
    int bottom = 260;
    BufferedImage img = new BufferedImage(w, top + bottom + 30, BufferedImage.TYPE_INT_RGB);
    Graphics2D g = graphics(img);
    double tMax = 1;
    double lo = Double.MAX_VALUE;
    double hi = 0;
    double iopsMax = 1;
    boolean dirtyKnown = false;
    for (TimelinePoint p : points) {
      tMax = Math.max(tMax, p.t());
      for (double v : new double[] {p.p50(), p.p99(), p.max()}) {
        if (v > 0) {
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
        }
      }
      iopsMax = Math.max(iopsMax, p.iops());
      dirtyKnown |= !Double.isNaN(p.dirtyFraction());
    }
    if (hi == 0) {
      lo = 10;
      hi = 1000;
    }
    double[] dec = decades(lo, hi);
    int px = LEFT;
    int pw = w - LEFT - 70;
    g.setColor(Color.BLACK);
    g.setFont(g.getFont().deriveFont(Font.BOLD, 14f));
    drawCentered(g, title, w / 2, 24);
    g.setFont(g.getFont().deriveFont(Font.PLAIN, 12f));
    // Latency panel.
    int py = TOP;
    int ph = top - TOP - 30;
    drawLatencyGrid(g, dec, px, py, pw, ph);
    g.setColor(Color.BLACK);
    g.drawRect(px, py, pw, ph);
    String[] names = {"p50", "p99", "max"};
    List<ToDoubleFunction<TimelinePoint>> series =
        List.of(TimelinePoint::p50, TimelinePoint::p99, TimelinePoint::max);
    for (int s = 0; s < series.size(); s++) {
      List<double[]> xy = new ArrayList<>();
      for (TimelinePoint p : points) {
        double v = series.get(s).applyAsDouble(p);
        if (v > 0) {
          xy.add(
              new double[] {
                px + p.t() / tMax * pw, py + ph - (Math.log10(v) - dec[0]) / (dec[1] - dec[0]) * ph
              });
        }
      }
      drawLine(g, xy, PALETTE[s]);
      g.fillRect(px + 10 + 90 * s, py + 8, 14, 10);
      g.setColor(Color.BLACK);
      g.drawString(names[s], px + 28 + 90 * s, py + 18);
    }
    // Rate panel.
    int ry = top + 10;
    int rh = bottom - 40;
    g.setColor(Color.BLACK);
    g.drawRect(px, ry, pw, rh);
    for (int k = 0; k <= 4; k++) {
      int y = ry + rh - rh * k / 4;
      g.setColor(new Color(0xdddddd));
      g.drawLine(px, y, px + pw, y);
      g.setColor(Color.DARK_GRAY);
      String label = Report.count(iopsMax * k / 4);
      g.drawString(label, px - 8 - g.getFontMetrics().stringWidth(label), y + 4);
      if (dirtyKnown) {
        g.drawString((25 * k) + "%", px + pw + 6, y + 4);
      }
    }
    List<double[]> iops = new ArrayList<>();
    List<double[]> dirty = new ArrayList<>();
    for (TimelinePoint p : points) {
      double x = px + p.t() / tMax * pw;
      iops.add(new double[] {x, ry + rh - p.iops() / iopsMax * rh});
      if (!Double.isNaN(p.dirtyFraction())) {
        dirty.add(new double[] {x, ry + rh - Math.min(1, p.dirtyFraction()) * rh});
      }
    }
    drawLine(g, iops, PALETTE[2]);
    g.fillRect(px + 10, ry + 8, 14, 10);
    g.setColor(Color.BLACK);
    g.drawString("IOPS (left)", px + 28, ry + 18);
    if (dirtyKnown) {
      drawLine(g, dirty, PALETTE[4]);
      g.fillRect(px + 130, ry + 8, 14, 10);
      g.setColor(Color.BLACK);
      g.drawString("dirty fraction of the cache (right)", px + 148, ry + 18);
    }
    for (int k = 0; k <= 5; k++) {
      int x = px + pw * k / 5;
      g.setColor(Color.DARK_GRAY);
      drawCentered(g, String.format(Locale.ROOT, "%.0f s", tMax * k / 5), x, ry + rh + 16);
    }
    g.dispose();
    return img;
  }

  private static void drawLine(Graphics2D g, List<double[]> xy, Color c) {
    Path2D.Double path = new Path2D.Double();
    for (int i = 0; i < xy.size(); i++) {
      if (i == 0) {
        path.moveTo(xy.get(i)[0], xy.get(i)[1]);
      } else {
        path.lineTo(xy.get(i)[0], xy.get(i)[1]);
      }
    }
    g.setColor(c);
    g.setStroke(new BasicStroke(1.6f));
    g.draw(path);
    g.setStroke(new BasicStroke(1f));
  }

  /** One horizontal line and label per decade of latency, {@code dec} = [first, last] exponent. */
  private static void drawLatencyGrid(Graphics2D g, double[] dec, int px, int py, int pw, int ph) {
    for (double d = dec[0]; d <= dec[1]; d++) {
      int y = py + ph - (int) Math.round((d - dec[0]) / (dec[1] - dec[0]) * ph);
      g.setColor(new Color(0xdddddd));
      g.drawLine(px, y, px + pw, y);
      g.setColor(Color.DARK_GRAY);
      String label = micros(Math.pow(10, d));
      g.drawString(label, px - 8 - g.getFontMetrics().stringWidth(label), y + 4);
    }
  }

  private static void drawCentered(Graphics2D g, String s, int x, int y) {
    FontMetrics fm = g.getFontMetrics();
    g.drawString(s, x - fm.stringWidth(s) / 2, y);
  }
}
