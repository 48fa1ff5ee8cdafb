package io.peerflash.faults;

import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;

/** Settings of a cluster. */
public final class ClusterSpec {
  final String scenario;
  int nodes = 3;
  String cacheSize = "64MiB";
  final Map<String, String> settings = new LinkedHashMap<>();
  long sharedStorageLimit;
  Duration healthCheckInterval;
  String javaOpts = "-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1";
  boolean publishNbd;

  ClusterSpec(String scenario) {
    this.scenario = scenario;
    // Short leases so failovers take seconds. The replica ack timeout is above the default: a
    // replica removed after a hiccup of the loaded 2-core machine (containers starting, the
    // JIT warming up) is re-protected, but until it is back in sync the scenario's fault hits a
    // volume with fewer copies than it set up, which is not the case it means to test. The cost
    // is a longer pause when a peer really dies (kill-peer reports it: up to the 2 s timeout, the
    // removal's commit and the write's retry).
    settings.put("lease-timeout-ms", "1500");
    settings.put("clock-skew-margin-ms", "300");
    settings.put("replication-ack-timeout-ms", "2000");
  }

  public ClusterSpec nodes(int n) {
    this.nodes = n;
    return this;
  }

  public ClusterSpec cacheSize(String size) {
    this.cacheSize = size;
    return this;
  }

  /** A node setting, {@code --set key=value}. */
  public ClusterSpec set(String key, String value) {
    settings.put(key, value);
    return this;
  }

  /**
   * Shared storage on a size-limited tmpfs Docker volume (mounted into every node) instead of a
   * directory of this host, so a scenario can fill it up.
   */
  public ClusterSpec sharedStorageLimit(long bytes) {
    this.sharedStorageLimit = bytes;
    return this;
  }

  /**
   * Every node serves NBD on {@link DockerCluster#NBD_PORT} (TLS with STARTTLS), published on a
   * port of this host ({@link DockerCluster.Node#nbdHostPort}).
   */
  public ClusterSpec publishNbd() {
    this.publishNbd = true;
    settings.put("nbd", "0.0.0.0:" + DockerCluster.NBD_PORT);
    return this;
  }

  /** Runs the image's health check at this interval (default: health check off). */
  public ClusterSpec healthCheckInterval(Duration interval) {
    this.healthCheckInterval = interval;
    return this;
  }

  public DockerCluster start() {
    DockerCluster c = new DockerCluster(this);
    try {
      c.startAll();
      return c;
    } catch (RuntimeException | Error e) {
      c.close();
      throw e;
    }
  }
}
