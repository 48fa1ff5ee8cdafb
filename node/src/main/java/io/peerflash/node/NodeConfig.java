package io.peerflash.node;

import io.peerflash.node.engine.EngineConfig;
import io.peerflash.util.Sizes;
import java.io.IOException;
import java.io.Reader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.function.Function;

/**
 * Every setting of a node, typed, with its default and meaning beside its key. The same keys are
 * used in the optional config file ({@code key=value} lines) and as {@code --key value} flags; a
 * flag overrides the file.
 */
public record NodeConfig(
    String nodeId,
    String listenHost,
    int listenPort,
    /** The engine's settings (local flash, space, destage, shared storage retries). */
    EngineConfig engine,
    Path sharedDir,
    long storageLatencyMicros,
    boolean storageDirectIo,
    int rpcThreads,
    int eventLoopThreads,
    long shutdownGraceMs,
    String raftAddress,
    Map<String, String> raftPeers,
    String faultDomain,
    long leaseTimeoutMs,
    long clockSkewMarginMs,
    long replicationAckTimeoutMs,
    long replicationConnectTimeoutMs,
    long peerLossWaitMs,
    String advertiseAddress,
    int maxOpenBackingFiles,
    Path certsDir,
    boolean insecure,
    /** HOST:PORT of the read-only HTTP port (metrics, health, status page), or empty: none. */
    String httpAddress,
    HttpTls httpTls,
    boolean metricsEnabled,
    /** NBD over TCP: HOST:PORT, or empty for none. */
    String nbdListen,
    /** NBD over a Unix socket: its path, or null for none. */
    Path nbdSocket,
    /** The group of the NBD socket file (mode 0660); empty keeps the process's group. */
    String nbdSocketGroup,
    int nbdMaxInFlight,
    long nbdForwardTimeoutMs,
    /** The replica link's HOST:PORT (port 0: any free one), or empty: none. */
    String replicaLink) {

  /** Whether the HTTP port runs TLS, and whether it asks its clients for a certificate. */
  public enum HttpTls {
    /** Plain HTTP. */
    OFF,
    /** HTTPS with the node's certificate. */
    ON,
    /** HTTPS that also requires a client certificate signed by the cluster CA. */
    MUTUAL
  }

  /** One documented setting. */
  public record Key<T>(String name, String defaultValue, String doc, Function<String, T> parser) {
    T parse(String text) {
      try {
        return parser.apply(text.trim());
      } catch (RuntimeException e) {
        throw new IllegalArgumentException(
            "bad value for " + name + ": '" + text + "': " + e.getMessage(), e);
      }
    }
  }

  private static final List<Key<?>> KEYS = new ArrayList<>();

  private static <T> Key<T> key(String name, String def, String doc, Function<String, T> parser) {
    Key<T> k = new Key<>(name, def, doc, parser);
    KEYS.add(k);
    return k;
  }

  public static final Key<String> ID =
      key("id", null, "Node id, unique in the cluster; names this node in status.", s -> s);
  public static final Key<String> LISTEN =
      key("listen", "127.0.0.1:7601", "HOST:PORT of the client gRPC API.", s -> s);
  public static final Key<Path> DATA_DIR =
      key(
          "data-dir",
          null,
          "Local flash directory: the cache file and the RocksDB index.",
          Path::of);
  public static final Key<Path> SHARED_DIR =
      key("shared-dir", null, "Shared storage directory: one backing file per volume.", Path::of);
  public static final Key<Long> CACHE_SIZE =
      key(
          "cache-size",
          "256MiB",
          "Size of the preallocated cache file (4 KiB slots); at least 4MiB.",
          Sizes::parse);
  public static final Key<Boolean> SYNC =
      key(
          "sync",
          "false",
          "false: an acknowledged write survives kill -9 of the node process (data and index are in"
              + " the OS page cache). true: it also survives power loss (group commit: one fsync of"
              + " the cache file and one of the index log per batch of concurrent writes).",
          NodeConfig::parseBoolean);
  public static final Key<Long> WRITE_BACKPRESSURE_TIMEOUT_MS =
      key(
          "write-backpressure-timeout-ms",
          "5000",
          "How long a write waits for free cache space when the cache is full of dirty data before"
              + " it fails with RESOURCE_EXHAUSTED.",
          Long::parseLong);
  public static final Key<Double> WRITE_THROTTLE_RESERVE =
      key(
          "write-throttle-reserve",
          "0.05",
          "Share of the cache (at least two destage batches) kept free or clean while the"
              + " destager cannot keep up. Below it writers are admitted one at a time at the"
              + " rate space comes back, so they slow down smoothly instead of all stalling for a"
              + " destage batch when the cache is full (0 turns the throttle off).",
          Double::parseDouble);
  public static final Key<Long> SEQUENTIAL_CUTOFF =
      key(
          "sequential-cutoff",
          "4MiB",
          "Read misses of a sequential stream past this many bytes are not promoted into the"
              + " cache (0 disables the cutoff).",
          Sizes::parse);
  public static final Key<Double> DESTAGE_HIGH_WATERMARK =
      key(
          "destage-high-watermark",
          "0.5",
          "Dirty fraction of the cache above which the destager runs flat out.",
          Double::parseDouble);
  public static final Key<Double> DESTAGE_LOW_WATERMARK =
      key(
          "destage-low-watermark",
          "0.4",
          "Dirty fraction at which flat-out destaging stops again.",
          Double::parseDouble);
  public static final Key<Long> MAX_DIRTY_AGE_MS =
      key(
          "max-dirty-age-ms",
          "30000",
          "A dirty block older than this is destaged even below the watermarks.",
          Long::parseLong);
  public static final Key<Long> DESTAGE_BATCH =
      key(
          "destage-batch",
          "1MiB",
          "Dirty data the destager takes per batch (one fsync of shared storage per batch).",
          Sizes::parse);
  public static final Key<Integer> DESTAGE_IO_DEPTH =
      key(
          "destage-io-depth",
          "8",
          "Shared-storage writes of one destage batch in flight at once (threads"
              + " peerflash-destage-io-N). One at a time, random blocks destaged at the latency of"
              + " a single request; a whole batch at once, its writeback filled the disk queue.",
          Integer::parseInt);
  public static final Key<Long> DESTAGE_BACKGROUND_RATE =
      key(
          "destage-background-rate",
          "64MiB",
          "Bytes per second the destager writes while below the high watermark (aged blocks,"
              + " trickle); above it, and for Flush, it is not paced.",
          Sizes::parse);
  public static final Key<Long> STORAGE_RETRY_INITIAL_BACKOFF_MS =
      key(
          "storage-retry-initial-backoff-ms",
          "50",
          "First wait after a failed shared-storage operation; doubles per failure.",
          Long::parseLong);
  public static final Key<Long> STORAGE_RETRY_MAX_BACKOFF_MS =
      key(
          "storage-retry-max-backoff-ms",
          "5000",
          "Longest wait between shared-storage retries.",
          Long::parseLong);
  public static final Key<Long> STORAGE_FAILING_AFTER_MS =
      key(
          "storage-failing-after-ms",
          "10000",
          "A volume whose shared storage keeps failing this long is reported STORAGE_FAILING.",
          Long::parseLong);
  public static final Key<Long> FLUSH_STORAGE_FAILURE_TIMEOUT_MS =
      key(
          "flush-storage-failure-timeout-ms",
          "30000",
          "Flush gives up with UNAVAILABLE once shared storage has failed continuously this long.",
          Long::parseLong);
  public static final Key<Long> STORAGE_LATENCY_US =
      key(
          "storage-latency-us",
          "0",
          "Latency added to every shared-storage operation, to emulate a SAN in tests and"
              + " benchmarks.",
          Long::parseLong);
  public static final Key<Boolean> STORAGE_DIRECT_IO =
      key(
          "storage-direct-io",
          "true",
          "Destage to shared storage with O_DIRECT where its file system allows it (logged when"
              + " not): destaged data is already on flash, and its dirty pages' writeback flooded"
              + " the disk queue. false: through the page cache.",
          NodeConfig::parseBoolean);
  public static final Key<Double> VOLUME_DIRTY_SHARE =
      key(
          "volume-dirty-share",
          "0.5",
          "Largest share of the cache one volume's dirty blocks may hold on this node (its own"
              + " and copies held for its owner). A volume at its share waits for its own"
              + " destage, so one whose shared storage fails fills its share, not the whole"
              + " cache, and the other volumes go on.",
          Double::parseDouble);
  public static final Key<Integer> MAX_VOLUMES =
      key(
          "max-volumes",
          "1024",
          "Volumes this node holds at most (in a cluster: volumes in the cluster map);"
              + " creating one more fails with RESOURCE_EXHAUSTED.",
          Integer::parseInt);
  public static final Key<Integer> MAX_OPEN_BACKING_FILES =
      key(
          "max-open-backing-files",
          "256",
          "Volume files on shared storage kept open at once (two descriptors each); files are"
              + " opened when used and the least recently used idle ones closed past this.",
          Integer::parseInt);
  public static final Key<Path> CERTS =
      key(
          "certs",
          "",
          "This node's identity directory (ca-cert.pem, server-cert.pem, server-key.pem,"
              + " client-cert.pem, client-key.pem, optional revoked-serials.txt; made by"
              + " 'peerflash certs node', or by local-cluster): mutual TLS on the client port,"
              + " to peers and in Raft. Files are reloaded when they change (rotation, revocation).",
          s -> s.isBlank() ? null : Path.of(s));
  public static final Key<Boolean> INSECURE =
      key(
          "insecure",
          "false",
          "Plaintext without any authentication on every port: only when asked for explicitly,"
              + " on a network where everyone who can connect is trusted with all data and every"
              + " action.",
          NodeConfig::parseBoolean);
  public static final Key<String> HTTP =
      key(
          "http",
          "",
          "HOST:PORT of the read-only HTTP port: Prometheus metrics at /metrics, /healthz, /readyz"
              + " and the status page at /. Plain HTTP without authentication: it serves no volume"
              + " data and takes no action. Empty: no HTTP port.",
          s -> s);
  public static final Key<HttpTls> HTTP_TLS =
      key(
          "http-tls",
          "off",
          "off: the HTTP port speaks plain HTTP. on: HTTPS with the node's certificate (certs)."
              + " mutual: HTTPS that also requires a client certificate of the cluster's CA.",
          v -> HttpTls.valueOf(v.toUpperCase(java.util.Locale.ROOT)));
  public static final Key<Boolean> METRICS =
      key(
          "metrics",
          "true",
          "Record latency histograms on the I/O path and serve /metrics (false: neither; the"
              + " HTTP port still serves health and the status page).",
          NodeConfig::parseBoolean);
  public static final Key<Integer> RPC_THREADS =
      key(
          "rpc-threads",
          "16",
          "Threads that run the gRPC requests that may wait (shared storage, space, a busy"
              + " block, the cluster map); writes and reads that need no wait run on the network"
              + " threads.",
          Integer::parseInt);
  public static final Key<Integer> EVENT_LOOP_THREADS =
      key(
          "event-loop-threads",
          "0",
          "Network threads, shared by the client API and the connections to peers; 0 picks one per"
              + " four cores (at least one). With one, a replicated write wakes no other thread of"
              + " the owner.",
          Integer::parseInt);
  public static final Key<Long> SHUTDOWN_GRACE_MS =
      key(
          "shutdown-grace-ms",
          "10000",
          "On SIGTERM, how long in-flight requests may take to finish.",
          Long::parseLong);

  public static final Key<String> RAFT =
      key(
          "raft",
          "",
          "HOST:PORT of this node's Raft (cluster map) endpoint; empty runs a single node without"
              + " a cluster.",
          s -> s);
  public static final Key<Map<String, String>> PEERS =
      key(
          "peers",
          "",
          "The initial Raft voters as ID=HOST:PORT,ID=HOST:PORT,... (this node included).",
          NodeConfig::parsePeers);
  public static final Key<String> FAULT_DOMAIN =
      key(
          "fault-domain",
          "",
          "Failure domain (rack, host, zone): replicas go to other domains when possible.",
          s -> s);
  public static final Key<Long> LEASE_TIMEOUT_MS =
      key(
          "lease-timeout-ms",
          "3000",
          "Cluster lease: renewed every third of it; a node that cannot renew stops serving and"
              + " destaging, and the leader marks it DOWN after lease + margin.",
          Long::parseLong);
  public static final Key<Long> CLOCK_SKEW_MARGIN_MS =
      key(
          "clock-skew-margin-ms",
          "500",
          "Safety margin between a node's own lease end and the leader's DOWN decision.",
          Long::parseLong);
  public static final Key<Long> REPLICATION_ACK_TIMEOUT_MS =
      key(
          "replication-ack-timeout-ms",
          "1000",
          "A peer that does not ack a copy within this is treated as lost (on-peer-loss applies).",
          Long::parseLong);
  public static final Key<Long> REPLICATION_CONNECT_TIMEOUT_MS =
      key(
          "replication-connect-timeout-ms",
          "5000",
          "How long a new replication stream to a peer may take to connect (TCP and TLS"
              + " handshake) before its copies fail as unacknowledged; replication-ack-timeout-ms"
              + " counts from when it has connected.",
          Long::parseLong);
  public static final Key<Long> PEER_LOSS_WAIT_MS =
      key(
          "peer-loss-wait-ms",
          "5000",
          "A write to a volume with on-peer-loss block waits at most this for its replicas to be"
              + " restored, then fails with UNAVAILABLE.",
          Long::parseLong);
  public static final Key<String> ADVERTISE =
      key(
          "advertise",
          "",
          "HOST:PORT other nodes and clients use to reach this node's gRPC port (default: the"
              + " listen address; set it when listening on 0.0.0.0 or behind NAT).",
          s -> s);

  public static final Key<String> NBD =
      key(
          "nbd",
          "",
          "HOST:PORT of the NBD front end over TCP (every volume of the cluster is an export of its"
              + " name, on every node; 10809 is NBD's port); empty: none. With TLS on the node, clients must use NBD_OPT_STARTTLS"
              + " with a client certificate of the cluster CA (role io or admin).",
          s -> s);
  public static final Key<String> REPLICA_LINK =
      key(
          "replica-link",
          "on",
          "Where peers send this node copies of their writes: 'on' (the listen host, any free port,"
              + " which peers ask for), HOST:PORT (a fixed port, e.g. for a firewall), or 'off'"
              + " (peers use the gRPC Replicate stream on the listen port, slower). Mutual TLS with"
              + " node certificates, like the other ports.",
          s -> s);

  public static final Key<Path> NBD_SOCKET =
      key(
          "nbd-socket",
          "",
          "Path of a Unix socket serving NBD to clients on this host, without TLS (guarded by the"
              + " file's mode 0660 and group); empty: none.",
          s -> s.isBlank() ? null : Path.of(s));
  public static final Key<String> NBD_SOCKET_GROUP =
      key(
          "nbd-socket-group",
          "",
          "Group that owns the NBD socket file (its members may use every volume through it);"
              + " empty: the node process's group.",
          s -> s);
  public static final Key<Integer> NBD_MAX_IN_FLIGHT =
      key(
          "nbd-max-in-flight",
          "128",
          "NBD requests one connection may have open; past it the node stops reading from the"
              + " connection until half are answered.",
          Integer::parseInt);
  public static final Key<Long> NBD_FORWARD_TIMEOUT_MS =
      key(
          "nbd-forward-timeout-ms",
          "60000",
          "How long an NBD request may wait for a serving owner of its volume before it fails"
              + " with EIO: a node forwards the I/O of a volume another node owns to that owner"
              + " and retries it through a failover, a move or a refused connection (the client"
              + " sees a pause). An OFFLINE volume (no copy can take over) fails at once.",
          Long::parseLong);

  /** The keys in documentation order. */
  public static List<Key<?>> keys() {
    return Collections.unmodifiableList(KEYS);
  }

  private static boolean parseBoolean(String s) {
    return switch (s.toLowerCase(java.util.Locale.ROOT)) {
      case "true", "yes", "1", "on" -> true;
      case "false", "no", "0", "off" -> false;
      default -> throw new IllegalArgumentException("expected true or false");
    };
  }

  /** HOST:PORT of this node's gRPC services as other nodes and clients reach them. */
  public String grpcAddress() {
    return advertiseAddress.isEmpty() ? listenHost + ":" + listenPort : advertiseAddress;
  }

  /** The HTTP port's host and port, checked. */
  public static java.net.InetSocketAddress httpHostAndPort(String address) {
    int colon = address.lastIndexOf(':');
    int port;
    try {
      port = colon <= 0 ? -1 : Integer.parseInt(address.substring(colon + 1));
    } catch (NumberFormatException e) {
      port = -1;
    }
    if (port < 0 || port > 65535) {
      throw new IllegalArgumentException(
          "http must be HOST:PORT with a port from 0 to 65535, got '" + address + "'");
    }
    return java.net.InetSocketAddress.createUnresolved(address.substring(0, colon), port);
  }

  /** The NBD front end's host, or null without a TCP listener. */
  public String nbdHost() {
    return nbdListen.isEmpty() ? null : nbdListen.substring(0, nbdListen.lastIndexOf(':'));
  }

  /** The NBD front end's TCP port (0: any free one), or -1 without a TCP listener. */
  public int nbdPort() {
    return nbdListen.isEmpty()
        ? -1
        : Integer.parseInt(nbdListen.substring(nbdListen.lastIndexOf(':') + 1));
  }

  /** Whether this node runs as a member of a cluster (with a Raft endpoint). */
  public boolean clustered() {
    return !raftAddress.isEmpty();
  }

  static Map<String, String> parsePeers(String text) {
    Map<String, String> peers = new LinkedHashMap<>();
    if (text.isBlank()) {
      return peers;
    }
    for (String part : text.split(",")) {
      int eq = part.indexOf('=');
      if (eq <= 0 || part.indexOf(':', eq) < 0) {
        throw new IllegalArgumentException(
            "peer '" + part + "' is not ID=HOST:PORT (e.g. n1=127.0.0.1:7701)");
      }
      peers.put(part.substring(0, eq).trim(), part.substring(eq + 1).trim());
    }
    return peers;
  }

  /** Reads a {@code key=value} file; unknown keys are an error so typos do not go unnoticed. */
  public static Map<String, String> readFile(Path file) throws IOException {
    Properties p = new Properties();
    try (Reader r = Files.newBufferedReader(file)) {
      p.load(r);
    }
    Map<String, String> values = new LinkedHashMap<>();
    for (String name : p.stringPropertyNames()) {
      values.put(name, p.getProperty(name));
    }
    return values;
  }

  /** Builds a config from explicit values; absent keys take their defaults. */
  public static NodeConfig fromMap(Map<String, String> values) {
    for (String name : values.keySet()) {
      if (KEYS.stream().noneMatch(k -> k.name().equals(name))) {
        throw new IllegalArgumentException("unknown setting '" + name + "'");
      }
    }
    String listen = get(values, LISTEN);
    int colon = listen.lastIndexOf(':');
    if (colon <= 0) {
      throw new IllegalArgumentException("listen must be HOST:PORT, got '" + listen + "'");
    }
    NodeConfig c =
        new NodeConfig(
            get(values, ID),
            listen.substring(0, colon),
            Integer.parseInt(listen.substring(colon + 1)),
            new EngineConfig(
                get(values, DATA_DIR),
                get(values, CACHE_SIZE),
                get(values, SYNC),
                get(values, WRITE_BACKPRESSURE_TIMEOUT_MS),
                get(values, WRITE_THROTTLE_RESERVE),
                get(values, SEQUENTIAL_CUTOFF),
                get(values, DESTAGE_HIGH_WATERMARK),
                get(values, DESTAGE_LOW_WATERMARK),
                get(values, MAX_DIRTY_AGE_MS),
                Math.toIntExact(get(values, DESTAGE_BATCH)),
                get(values, DESTAGE_IO_DEPTH),
                get(values, DESTAGE_BACKGROUND_RATE),
                get(values, STORAGE_RETRY_INITIAL_BACKOFF_MS),
                get(values, STORAGE_RETRY_MAX_BACKOFF_MS),
                get(values, STORAGE_FAILING_AFTER_MS),
                get(values, FLUSH_STORAGE_FAILURE_TIMEOUT_MS),
                get(values, VOLUME_DIRTY_SHARE),
                get(values, MAX_VOLUMES)),
            get(values, SHARED_DIR),
            get(values, STORAGE_LATENCY_US),
            get(values, STORAGE_DIRECT_IO),
            get(values, RPC_THREADS),
            get(values, EVENT_LOOP_THREADS),
            get(values, SHUTDOWN_GRACE_MS),
            get(values, RAFT),
            get(values, PEERS),
            get(values, FAULT_DOMAIN),
            get(values, LEASE_TIMEOUT_MS),
            get(values, CLOCK_SKEW_MARGIN_MS),
            get(values, REPLICATION_ACK_TIMEOUT_MS),
            get(values, REPLICATION_CONNECT_TIMEOUT_MS),
            get(values, PEER_LOSS_WAIT_MS),
            get(values, ADVERTISE),
            get(values, MAX_OPEN_BACKING_FILES),
            getOrNull(values, CERTS),
            get(values, INSECURE),
            get(values, HTTP),
            get(values, HTTP_TLS),
            get(values, METRICS),
            get(values, NBD),
            getOrNull(values, NBD_SOCKET),
            get(values, NBD_SOCKET_GROUP),
            get(values, NBD_MAX_IN_FLIGHT),
            get(values, NBD_FORWARD_TIMEOUT_MS),
            replicaLink(get(values, REPLICA_LINK), listen.substring(0, colon)));
    c.validate();
    return c;
  }

  private static String replicaLink(String setting, String listenHost) {
    return switch (setting) {
      case "off" -> "";
      case "on" -> listenHost + ":0";
      default -> {
        int colon = setting.lastIndexOf(':');
        if (colon <= 0) {
          throw new IllegalArgumentException(
              "replica-link must be on, off or HOST:PORT, got '" + setting + "'");
        }
        int port = Integer.parseInt(setting.substring(colon + 1));
        if (port < 0 || port > 65535) {
          throw new IllegalArgumentException("replica-link port out of range: " + port);
        }
        yield setting;
      }
    };
  }

  private static <T> T getOrNull(Map<String, String> values, Key<T> key) {
    String v = values.getOrDefault(key.name(), key.defaultValue());
    return v == null ? null : key.parse(v);
  }

  private static <T> T get(Map<String, String> values, Key<T> key) {
    String v = values.getOrDefault(key.name(), key.defaultValue());
    if (v == null) {
      throw new IllegalArgumentException("missing required setting --" + key.name());
    }
    return key.parse(v);
  }

  /**
   * @throws IllegalArgumentException naming the broken limit
   */
  public void validate() {
    if (nodeId.isBlank()) {
      throw new IllegalArgumentException("id must not be empty");
    }
    engine.validate();
    if (certsDir == null && !insecure) {
      throw new IllegalArgumentException(
          "a node needs certs=DIR, its identity directory (made by 'peerflash certs node' or by"
              + " local-cluster): every port uses mutual TLS; insecure=true runs plaintext"
              + " without authentication instead");
    }
    if (certsDir != null && insecure) {
      throw new IllegalArgumentException("give either certs=DIR or insecure=true, not both");
    }
    if (!httpAddress.isEmpty()) {
      httpHostAndPort(httpAddress);
    }
    if (httpTls != HttpTls.OFF && certsDir == null) {
      throw new IllegalArgumentException(
          "http-tls=" + httpTls.name().toLowerCase(java.util.Locale.ROOT) + " needs certs=DIR");
    }
    if (replicationAckTimeoutMs < 1 || replicationConnectTimeoutMs < 1) {
      throw new IllegalArgumentException(
          "replication-ack-timeout-ms and replication-connect-timeout-ms must be at least 1");
    }
    if (maxOpenBackingFiles < 1) {
      throw new IllegalArgumentException("max-open-backing-files must be at least 1");
    }
    if (rpcThreads < 1) {
      throw new IllegalArgumentException("rpc-threads must be at least 1");
    }
    if (eventLoopThreads < 0) {
      throw new IllegalArgumentException("event-loop-threads must be 0 (automatic) or more");
    }
    if (clustered() && raftPeers.isEmpty()) {
      throw new IllegalArgumentException(
          "peers must name the cluster's voters (this node included when it bootstraps the"
              + " cluster; without it, it joins a running cluster: see cluster add-node)");
    }
    if (clustered()
        && advertiseAddress.isEmpty()
        && (listenHost.equals("0.0.0.0") || listenHost.equals("::") || listenHost.equals("[::]"))) {
      throw new IllegalArgumentException(
          "listen "
              + listenHost
              + " is a wildcard: peers and clients cannot reach it; set advertise=HOST:PORT");
    }
    if (!advertiseAddress.isEmpty() && advertiseAddress.lastIndexOf(':') <= 0) {
      throw new IllegalArgumentException(
          "advertise must be HOST:PORT, got '" + advertiseAddress + "'");
    }
    if (clustered() && leaseTimeoutMs <= 2 * clockSkewMarginMs) {
      throw new IllegalArgumentException("need clock-skew-margin-ms < lease-timeout-ms / 2");
    }
    if (!nbdListen.isEmpty() && nbdListen.lastIndexOf(':') <= 0) {
      throw new IllegalArgumentException("nbd must be HOST:PORT, got '" + nbdListen + "'");
    }
    if (nbdMaxInFlight < 1) {
      throw new IllegalArgumentException("nbd-max-in-flight must be at least 1");
    }
    if (nbdForwardTimeoutMs < 1) {
      throw new IllegalArgumentException("nbd-forward-timeout-ms must be at least 1");
    }
    if (listenPort < 0 || listenPort > 65535) {
      throw new IllegalArgumentException("listen port out of range: " + listenPort);
    }
  }

  /** Documentation of every key, for {@code --help} and the README. */
  public static String reference() {
    StringBuilder sb = new StringBuilder();
    for (Key<?> k : KEYS) {
      sb.append(
          String.format(
              "  %-34s default %s%n      %s%n",
              k.name(), k.defaultValue() == null ? "(required)" : k.defaultValue(), k.doc()));
    }
    return sb.toString();
  }
}
