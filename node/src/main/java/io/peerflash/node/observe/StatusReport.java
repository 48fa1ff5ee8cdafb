package io.peerflash.node.observe;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.MessageOrBuilder;
import com.google.protobuf.util.JsonFormat;
import io.peerflash.node.observe.RequestTimer.FrontEnd;
import io.peerflash.node.observe.RequestTimer.Op;
import io.peerflash.proto.v1.ClusterStatus;
import io.peerflash.proto.v1.ListClusterEventsResponse;
import io.peerflash.proto.v1.Volume;
import io.prometheus.metrics.model.snapshots.ClassicHistogramBucket;
import io.prometheus.metrics.model.snapshots.HistogramSnapshot.HistogramDataPointSnapshot;
import java.util.List;
import java.util.function.Supplier;

/**
 * What the status page shows, as JSON: the cluster as this node holds its map, every volume with
 * its state, and the request latency histograms (cumulative; the page plots the differences between
 * two polls).
 */
public final class StatusReport {
  private static final JsonFormat.Printer JSON =
      JsonFormat.printer().omittingInsignificantWhitespace().includingDefaultValueFields();

  private final String nodeId;
  private final Supplier<ClusterStatus> cluster;
  private final Supplier<List<Volume>> volumes;
  private final Supplier<ListClusterEventsResponse> recentEvents;
  private final NodeMetrics metrics;

  /**
   * @param cluster null on a single node
   * @param recentEvents the newest cluster events; null on a single node
   * @param metrics null when metrics are off (the page then plots nothing)
   */
  public StatusReport(
      String nodeId,
      Supplier<ClusterStatus> cluster,
      Supplier<List<Volume>> volumes,
      Supplier<ListClusterEventsResponse> recentEvents,
      NodeMetrics metrics) {
    this.nodeId = nodeId;
    this.cluster = cluster;
    this.volumes = volumes;
    this.recentEvents = recentEvents;
    this.metrics = metrics;
  }

  public String json() {
    StringBuilder out = new StringBuilder(4096);
    out.append("{\"node\":").append(quote(nodeId));
    out.append(",\"timeMs\":").append(System.currentTimeMillis());
    out.append(",\"cluster\":");
    if (cluster == null) {
      out.append("null");
    } else {
      appendProto(out, cluster.get());
    }
    out.append(",\"volumes\":[");
    boolean first = true;
    for (Volume v : volumes.get()) {
      if (!first) {
        out.append(',');
      }
      first = false;
      appendProto(out, v);
    }
    out.append("],\"events\":");
    if (recentEvents == null) {
      out.append("null");
    } else {
      appendProto(out, recentEvents.get());
    }
    out.append(",\"latency\":{");
    appendLatency(out, "write", Op.WRITE);
    out.append(',');
    appendLatency(out, "read", Op.READ);
    out.append("}}");
    return out.toString();
  }

  private void appendLatency(StringBuilder out, String name, Op op) {
    out.append(quote(name)).append(':');
    HistogramDataPointSnapshot grpc =
        metrics == null ? null : metrics.requestSnapshot(FrontEnd.GRPC, op);
    HistogramDataPointSnapshot nbd =
        metrics == null ? null : metrics.requestSnapshot(FrontEnd.NBD, op);
    if (grpc == null) {
      out.append("null");
      return;
    }
    long count = grpc.getCount() + (nbd == null ? 0 : nbd.getCount());
    double sum = grpc.getSum() + (nbd == null ? 0 : nbd.getSum());
    out.append("{\"count\":").append(count).append(",\"sumSeconds\":").append(sum);
    out.append(",\"buckets\":[");
    List<ClassicHistogramBucket> a = grpc.getClassicBuckets().stream().toList();
    List<ClassicHistogramBucket> b =
        nbd == null ? List.of() : nbd.getClassicBuckets().stream().toList();
    for (int i = 0; i < a.size(); i++) {
      if (i > 0) {
        out.append(',');
      }
      double le = a.get(i).getUpperBound();
      long n = a.get(i).getCount() + (i < b.size() ? b.get(i).getCount() : 0);
      out.append("[").append(Double.isInfinite(le) ? "\"+Inf\"" : Double.toString(le));
      out.append(',').append(n).append(']');
    }
    out.append("]}");
  }

  private static void appendProto(StringBuilder out, MessageOrBuilder message) {
    try {
      out.append(JSON.print(message));
    } catch (InvalidProtocolBufferException e) {
      out.append("null");
    }
  }

  static String quote(String s) {
    StringBuilder q = new StringBuilder(s.length() + 2).append('"');
    for (char c : s.toCharArray()) {
      switch (c) {
        case '"' -> q.append("\\\"");
        case '\\' -> q.append("\\\\");
        default -> {
          if (c < 0x20) {
            q.append(String.format("\\u%04x", (int) c));
          } else {
            q.append(c);
          }
        }
      }
    }
    return q.append('"').toString();
  }
}
