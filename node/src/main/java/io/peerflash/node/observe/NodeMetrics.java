package io.peerflash.node.observe;

import io.peerflash.node.engine.CacheEngine;
import io.peerflash.node.engine.EngineObserver;
import io.peerflash.node.engine.NodeStatusView;
import io.peerflash.node.engine.VolumeStatusView;
import io.peerflash.node.health.VolumeRisk;
import io.prometheus.metrics.core.datapoints.CounterDataPoint;
import io.prometheus.metrics.core.datapoints.DistributionDataPoint;
import io.prometheus.metrics.core.metrics.Counter;
import io.prometheus.metrics.core.metrics.CounterWithCallback;
import io.prometheus.metrics.core.metrics.GaugeWithCallback;
import io.prometheus.metrics.core.metrics.Histogram;
import io.prometheus.metrics.instrumentation.jvm.JvmMetrics;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import io.prometheus.metrics.model.snapshots.HistogramSnapshot;
import io.prometheus.metrics.model.snapshots.Unit;
import java.util.Locale;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Function;
import java.util.function.Supplier;
import java.util.function.ToDoubleFunction;
import java.util.function.ToLongFunction;

/**
 * A node's metrics, in Prometheus' conventions (base units, {@code _seconds}, {@code _bytes},
 * {@code _total}). Latencies are histograms (classic buckets and native) per node and stage, never
 * per volume, so the number of series stays bounded whatever the number of volumes; per-volume
 * values are gauges read when scraped.
 *
 * <p>Recording costs two clock reads and one histogram update per request and stage; a node run
 * with {@code metrics=false} records nothing ({@link #DISABLED}).
 */
public final class NodeMetrics implements EngineObserver, RequestTimer {
  /** Histogram bounds: 50 us to 10 s, the range from a cache hit to a stuck shared storage. */
  static final double[] LATENCY_BOUNDS_SECONDS = {
    0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5,
    10
  };

  /** Records nothing: for a node run with metrics turned off. */
  public static final RequestTimer DISABLED = RequestTimer.NONE;

  private final PrometheusRegistry registry = new PrometheusRegistry();
  private final Histogram requests;
  private final DistributionDataPoint[][] requestPoints;
  private final CounterDataPoint[][] errorPoints;
  private final DistributionDataPoint localStore;
  private final DistributionDataPoint fsync;
  private final DistributionDataPoint destageBatch;
  private final Histogram replicaAck;
  private final ConcurrentHashMap<String, DistributionDataPoint> replicaAckByPeer =
      new ConcurrentHashMap<>();

  public NodeMetrics() {
    requests =
        latency("peerflash_request_duration_seconds")
            .help("Requests as the client sees them, from receipt to answer, by front end and op")
            .labelNames("frontend", "op")
            .register(registry);
    Counter errors =
        Counter.builder()
            .name("peerflash_request_errors_total")
            .help("Requests answered with an error, by front end and op")
            .labelNames("frontend", "op")
            .register(registry);
    FrontEnd[] ends = FrontEnd.values();
    Op[] ops = Op.values();
    requestPoints = new DistributionDataPoint[ends.length][ops.length];
    errorPoints = new CounterDataPoint[ends.length][ops.length];
    for (FrontEnd f : ends) {
      for (Op o : ops) {
        requestPoints[f.ordinal()][o.ordinal()] = requests.labelValues(label(f), label(o));
        errorPoints[f.ordinal()][o.ordinal()] = errors.labelValues(label(f), label(o));
      }
    }
    localStore =
        latency("peerflash_local_store_duration_seconds")
            .help("A write-back write's own store: slot writes, index commit, install")
            .register(registry);
    fsync =
        latency("peerflash_fsync_duration_seconds")
            .help("One group commit's fsync of the cache file and synced index write")
            .register(registry);
    destageBatch =
        latency("peerflash_destage_batch_duration_seconds")
            .help("One destage batch written to shared storage and synced")
            .register(registry);
    replicaAck =
        latency("peerflash_replica_ack_duration_seconds")
            .help("From sending a write's copies to a replica to its ack, by replica node")
            .labelNames("peer")
            .register(registry);
    JvmMetrics.builder().register(registry);
  }

  private static Histogram.Builder latency(String name) {
    return Histogram.builder()
        .name(name)
        .unit(Unit.SECONDS)
        .classicUpperBounds(LATENCY_BOUNDS_SECONDS)
        .withoutExemplars();
  }

  private static String label(Enum<?> e) {
    return e.name().toLowerCase(Locale.ROOT);
  }

  public PrometheusRegistry registry() {
    return registry;
  }

  @Override
  public void record(FrontEnd frontEnd, Op op, long startNanos, boolean ok) {
    requestPoints[frontEnd.ordinal()][op.ordinal()].observe(
        Unit.nanosToSeconds(System.nanoTime() - startNanos));
    if (!ok) {
      errorPoints[frontEnd.ordinal()][op.ordinal()].inc();
    }
  }

  @Override
  public void localStored(long nanos) {
    localStore.observe(Unit.nanosToSeconds(nanos));
  }

  @Override
  public void synced(long nanos) {
    fsync.observe(Unit.nanosToSeconds(nanos));
  }

  @Override
  public void destaged(long nanos, long bytes) {
    destageBatch.observe(Unit.nanosToSeconds(nanos));
  }

  /** A replica acked a write's copies {@code nanos} after they were sent. */
  public void replicaAcked(String peer, long nanos) {
    replicaAckByPeer
        .computeIfAbsent(peer, p -> replicaAck.labelValues(p))
        .observe(Unit.nanosToSeconds(nanos));
  }

  /** The request latency histogram of one front end and op, for the status page. */
  HistogramSnapshot.HistogramDataPointSnapshot requestSnapshot(FrontEnd frontEnd, Op op) {
    for (HistogramSnapshot.HistogramDataPointSnapshot p : requests.collect().getDataPoints()) {
      if (p.getLabels().get("frontend").equals(label(frontEnd))
          && p.getLabels().get("op").equals(label(op))) {
        return p;
      }
    }
    return null;
  }

  /**
   * Exports what the engine counts and holds: hits, misses, destaged bytes, backpressure; and per
   * volume its dirty bytes, bytes at risk and oldest dirty age.
   */
  public void bindEngine(CacheEngine engine, VolumeRisk risk) {
    Supplier<NodeStatusView> status = oncePerScrape(engine::status);
    engineCounter(
        status,
        "peerflash_read_hits_total",
        "Blocks of reads answered from the cache",
        NodeStatusView::readHits);
    engineCounter(
        status,
        "peerflash_read_misses_total",
        "Blocks of reads answered from shared storage",
        NodeStatusView::readMisses);
    engineCounter(
        status,
        "peerflash_destaged_bytes_total",
        "Bytes written from the cache to shared storage",
        NodeStatusView::destagedBytes);
    engineCounter(
        status,
        "peerflash_evicted_blocks_total",
        "Clean blocks evicted to make room",
        NodeStatusView::evictedBlocks);
    engineCounter(
        status,
        "peerflash_backpressure_waits_total",
        "Writes that waited for the destager to free cache space",
        NodeStatusView::backpressureWaits);
    engineCounter(
        status,
        "peerflash_backpressure_rejections_total",
        "Writes refused after waiting write-backpressure-timeout-ms for space",
        NodeStatusView::backpressureRejections);
    engineGauge(
        status,
        "peerflash_cache_size_bytes",
        "Size of the cache file",
        NodeStatusView::cacheSizeBytes);
    engineGauge(
        status, "peerflash_cache_used_bytes", "Cache slots in use", NodeStatusView::cacheUsedBytes);
    engineGauge(
        status,
        "peerflash_cache_dirty_bytes",
        "Cache slots holding data not yet on shared storage",
        NodeStatusView::dirtyBytes);
    engineGauge(
        status,
        "peerflash_local_flash_failed",
        "1 after an fsync of local flash failed: the node acknowledges nothing until restarted",
        s -> s.localFailure() == null ? 0 : 1);
    volumeGauge(
        status,
        "peerflash_volume_dirty_bytes",
        "Dirty bytes of a volume held here (owned or as a replica)",
        VolumeStatusView::dirtyBytes);
    volumeGauge(
        status,
        "peerflash_volume_oldest_dirty_age_seconds",
        "Age of the oldest dirty block of a volume held here",
        v -> v.oldestDirtyAgeMs() / 1000.0);
    volumeGauge(
        status,
        "peerflash_volume_at_risk_bytes",
        "Dirty bytes of an owned volume held by fewer copies than its policy wants",
        v -> risk.atRiskBytes(v));
  }

  /** Exports the node's view of the cluster: Raft and its lease. */
  public void bindCluster(ClusterSignals cluster) {
    gauge("peerflash_raft_term", "Raft term this node is in", cluster::raftTerm);
    gauge(
        "peerflash_raft_commit_index",
        "Highest Raft log index this node knows committed",
        cluster::raftCommitIndex);
    gauge("peerflash_raft_leader", "1 while this node is the Raft leader", cluster::raftLeader);
    gauge(
        "peerflash_lease_remaining_seconds",
        "Time left on this node's lease by its own clock (0: lapsed, it serves nothing)",
        () -> cluster.leaseRemainingMs() / 1000.0);
    GaugeWithCallback.builder()
        .name("peerflash_replication_lag_seconds")
        .help(
            "Per replica: age of the oldest copy sent to it and not yet acked (0: all acked);"
                + " the replica ack timeout removes a replica past it")
        .labelNames("peer")
        .callback(
            cb -> cluster.replicationLag().forEach((peer, lag) -> cb.call(lag[0] / 1000.0, peer)))
        .register(registry);
    GaugeWithCallback.builder()
        .name("peerflash_replication_in_flight_batches")
        .help("Per replica: batches of copies sent to it and not yet acked")
        .labelNames("peer")
        .callback(cb -> cluster.replicationLag().forEach((peer, lag) -> cb.call(lag[1], peer)))
        .register(registry);
    CounterWithCallback.builder()
        .name("peerflash_failovers_total")
        .help("Volumes this node took over from a failed owner")
        .callback(cb -> cb.call(cluster.failovers()))
        .register(registry);
    CounterWithCallback.builder()
        .name("peerflash_fencing_refusals_total")
        .help("Copies or writes refused because the sender's epoch or this node's lease was stale")
        .callback(cb -> cb.call(cluster.fencingRefusals()))
        .register(registry);
  }

  /** Exports the count of calls refused for their certificate or role. */
  public void bindAuthRefusals(java.util.function.LongSupplier refusals) {
    CounterWithCallback.builder()
        .name("peerflash_auth_refusals_total")
        .help("Calls refused: no valid client certificate, or a role that may not make them")
        .callback(cb -> cb.call(refusals.getAsLong()))
        .register(registry);
  }

  /**
   * The engine's status read once for all the metrics of one scrape: each metric's callback asks
   * for it, and building it walks every volume.
   */
  private static Supplier<NodeStatusView> oncePerScrape(Supplier<NodeStatusView> read) {
    long[] readAt = {Long.MIN_VALUE};
    NodeStatusView[] last = {null};
    return () -> {
      synchronized (readAt) {
        long now = System.nanoTime();
        if (last[0] == null || now - readAt[0] > SCRAPE_NANOS) {
          last[0] = read.get();
          readAt[0] = now;
        }
        return last[0];
      }
    };
  }

  /** How long one scrape's reads of the engine's status may share one (well under any interval). */
  private static final long SCRAPE_NANOS = java.util.concurrent.TimeUnit.MILLISECONDS.toNanos(200);

  private void gauge(String name, String help, java.util.function.DoubleSupplier value) {
    GaugeWithCallback.builder()
        .name(name)
        .help(help)
        .callback(cb -> cb.call(value.getAsDouble()))
        .register(registry);
  }

  private void engineCounter(
      Supplier<NodeStatusView> status,
      String name,
      String help,
      ToLongFunction<NodeStatusView> value) {
    CounterWithCallback.builder()
        .name(name)
        .help(help)
        .callback(cb -> cb.call(value.applyAsLong(status.get())))
        .register(registry);
  }

  private void engineGauge(
      Supplier<NodeStatusView> status,
      String name,
      String help,
      ToDoubleFunction<NodeStatusView> value) {
    GaugeWithCallback.builder()
        .name(name)
        .help(help)
        .callback(cb -> cb.call(value.applyAsDouble(status.get())))
        .register(registry);
  }

  private void volumeGauge(
      Supplier<NodeStatusView> status,
      String name,
      String help,
      Function<VolumeStatusView, Number> value) {
    GaugeWithCallback.builder()
        .name(name)
        .help(help)
        .labelNames("volume")
        .callback(
            cb -> {
              for (VolumeStatusView v : status.get().volumes()) {
                cb.call(value.apply(v).doubleValue(), v.info().name());
              }
            })
        .register(registry);
  }
}
