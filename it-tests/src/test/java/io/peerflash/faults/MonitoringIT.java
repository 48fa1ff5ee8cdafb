package io.peerflash.faults;

import static org.assertj.core.api.Assertions.assertThat;

import com.github.dockerjava.api.exception.NotFoundException;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.peerflash.client.PeerFlashClient;
import io.peerflash.proto.v1.CacheMode;
import java.io.IOException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.testcontainers.DockerClientFactory;
import org.testcontainers.containers.Container.ExecResult;
import org.testcontainers.containers.GenericContainer;
import org.testcontainers.containers.wait.strategy.Wait;
import org.testcontainers.utility.DockerImageName;
import org.testcontainers.utility.MountableFile;

/**
 * Container scenario {@code monitoring}: the monitoring that ships in {@code deploy/} works on a
 * real cluster. A 3-node cluster and the Prometheus image of the compose profile "monitoring"
 * (Debian's package, {@code deploy/build-prometheus-image.sh}) run on one network, Prometheus with
 * {@code deploy/prometheus/} as its configuration (scraping {@code n1:7801}..{@code n3:7801}, the
 * alert rules loaded, checked by the image's own {@code promtool}). While writes and reads run on a
 * replicated write-back volume, every node's {@code up} becomes 1, and then every query of {@code
 * deploy/grafana/peerflash-dashboard.json} (and of its node variable) returns at least one series
 * with a number.
 *
 * <p>Needs the Prometheus image named by {@code peerflash.prometheus.image}, as the node image
 * needs its base image.
 */
@Tag("container")
class MonitoringIT {
  private static final String SCENARIO = "monitoring";
  private static final String VOLUME = "vm";
  private static final int VOLUME_BYTES = 16 << 20;
  private static final int BLOCK = 4096;
  private static final int PROMETHEUS_PORT = 9090;

  /** What the dashboard's Grafana variables stand for in the queries sent to Prometheus. */
  private static final Map<String, String> GRAFANA_VARIABLES =
      Map.of("__rate_interval", "1m", "__interval", "15s", "__range", "5m");

  private static final Pattern VARIABLE = Pattern.compile("\\$\\{(\\w+)}|\\$(\\w+)");
  private static final Pattern LABEL_VALUES =
      Pattern.compile("label_values\\((.+),\\s*(\\w+)\\s*\\)");

  private DockerCluster cluster;
  private GenericContainer<?> prometheus;
  private Thread traffic;
  private final AtomicBoolean stopTraffic = new AtomicBoolean();
  private final HttpClient http =
      HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(3)).build();

  @AfterEach
  void removeAll() throws InterruptedException {
    stopTraffic.set(true);
    if (traffic != null) {
      traffic.join(30_000);
    }
    if (prometheus != null) {
      try {
        Path log = Path.of(System.getProperty("peerflash.log.dir", "target/container-logs"));
        Files.createDirectories(log.resolve(SCENARIO));
        Files.writeString(log.resolve(SCENARIO).resolve("prometheus.log"), prometheus.getLogs());
      } catch (IOException | RuntimeException e) {
        // the log is a diagnostic only
      }
      prometheus.stop(); // removes the container (and its anonymous volumes)
    }
    if (cluster != null) {
      cluster.close();
    }
  }

  @Test
  void prometheusScrapesEveryNodeAndEveryDashboardQueryReturnsData() throws Exception {
    long startNanos = System.nanoTime();
    Path deploy = Path.of(System.getProperty("peerflash.deploy.dir", "../deploy"));
    List<String> queries = dashboardQueries(deploy.resolve("grafana/peerflash-dashboard.json"));
    assertThat(queries).as("queries in the dashboard").hasSizeGreaterThan(20);
    String image = prometheusImage();

    // Eager destage, so destage batches are timed while the writes run; sync=true, so group
    // commits fsync (and the fsync histogram has samples).
    cluster =
        DockerCluster.builder(SCENARIO).set("max-dirty-age-ms", "300").set("sync", "true").start();
    prometheus = startPrometheus(image, deploy.resolve("prometheus"));
    ExecResult check =
        prometheus.execInContainer("promtool", "check", "config", "/etc/prometheus/prometheus.yml");
    assertThat(check.getExitCode())
        .as(
            "promtool check config (and rules) in the image: %s%s",
            check.getStdout(), check.getStderr())
        .isZero();
    String api =
        "http://"
            + prometheus
                .getContainerInfo()
                .getNetworkSettings()
                .getNetworks()
                .get(cluster.networkName())
                .getIpAddress()
            + ":"
            + PROMETHEUS_PORT;

    // Writes and reads on a write-back volume with one replica: every histogram gets samples
    // (requests, local store, replica acks, fsync, destage batches).
    try (PeerFlashClient admin = cluster.newClient(Duration.ofSeconds(30))) {
      ConsistencyChecker.retry(
          "create volume " + VOLUME,
          Duration.ofMinutes(1),
          () -> admin.createVolume(VOLUME, VOLUME_BYTES, CacheMode.WRITE_BACK, 1));
    }
    AtomicLong requests = new AtomicLong();
    AtomicLong failures = new AtomicLong();
    traffic = new Thread(() -> drive(requests, failures), "monitoring-traffic");
    traffic.start();

    // Every node scraped: up{job="peerflash"} is 1 for n1..n3.
    List<String> targets = cluster.nodes().stream().map(n -> n.id() + ":7801").toList();
    awaitTrue(
        "up{job=\"peerflash\"} == 1 for " + targets,
        Duration.ofSeconds(60),
        () -> {
          Map<String, Double> up = new LinkedHashMap<>();
          for (JsonElement e : query(api, "up{job=\"peerflash\"}")) {
            JsonObject s = e.getAsJsonObject();
            up.put(
                s.getAsJsonObject("metric").get("instance").getAsString(),
                Double.parseDouble(s.getAsJsonArray("value").get(1).getAsString()));
          }
          return targets.stream().allMatch(t -> up.getOrDefault(t, 0.0) == 1.0);
        });

    // Every query of the dashboard: a series with a number (rates need two scrapes of traffic,
    // quantiles an observation in the window).
    Map<String, String> lastAnswer = new LinkedHashMap<>();
    for (String q : queries) {
      lastAnswer.put(q, "not asked yet");
    }
    long deadline = System.nanoTime() + Duration.ofSeconds(90).toNanos();
    while (true) {
      for (String q : List.copyOf(lastAnswer.keySet())) {
        String why = whyNoData(api, q);
        if (why == null) {
          lastAnswer.remove(q);
        } else {
          lastAnswer.put(q, why);
        }
      }
      if (lastAnswer.isEmpty() || System.nanoTime() > deadline) {
        break;
      }
      DockerCluster.sleep(1000);
    }
    StringBuilder failed = new StringBuilder();
    lastAnswer.forEach((q, why) -> failed.append("\n  ").append(q).append(" -> ").append(why));
    assertThat(lastAnswer)
        .as(
            "dashboard queries without data after 90 s (%d requests sent, %d failed):%s",
            requests.get(), failures.get(), failed)
        .isEmpty();

    String line =
        SCENARIO
            + ": Prometheus (Debian's package) scraped "
            + targets.size()
            + " nodes; all "
            + queries.size()
            + " dashboard queries returned data after "
            + requests.get()
            + " requests, in "
            + Duration.ofNanos(System.nanoTime() - startNanos).toSeconds()
            + " s";
    System.out.println(line);
    ConsistencyChecker.appendSummary(line);
  }

  // ----------------------------------------------------------------------------------------------
  // The dashboard

  /**
   * Every {@code expr} of the dashboard's panels and every query of its variables, with Grafana's
   * variables replaced by what Prometheus takes: built-in intervals by fixed ones, a multi-value
   * variable by its "All" value. A {@code label_values(QUERY, LABEL)} variable becomes {@code group
   * by (LABEL) (QUERY)}.
   */
  static List<String> dashboardQueries(Path dashboard) throws IOException {
    JsonObject d = JsonParser.parseString(Files.readString(dashboard)).getAsJsonObject();
    Map<String, String> values = new LinkedHashMap<>(GRAFANA_VARIABLES);
    List<String> raw = new ArrayList<>();
    for (JsonElement v : d.getAsJsonObject("templating").getAsJsonArray("list")) {
      JsonObject var = v.getAsJsonObject();
      String name = var.get("name").getAsString();
      if (var.has("allValue") && !var.get("allValue").isJsonNull()) {
        values.put(name, var.get("allValue").getAsString());
      }
      if ("query".equals(var.get("type").getAsString())) {
        String q =
            var.get("query").isJsonObject()
                ? var.getAsJsonObject("query").get("query").getAsString()
                : var.get("query").getAsString();
        Matcher m = LABEL_VALUES.matcher(q);
        if (!m.matches()) {
          throw new IllegalStateException("variable " + name + ": unknown query " + q);
        }
        raw.add("group by (" + m.group(2) + ") (" + m.group(1) + ")");
      }
    }
    collectExprs(d.getAsJsonArray("panels"), raw);
    List<String> queries = new ArrayList<>();
    for (String q : raw) {
      Matcher m = VARIABLE.matcher(q);
      StringBuilder out = new StringBuilder();
      while (m.find()) {
        String name = m.group(1) != null ? m.group(1) : m.group(2);
        String value = values.get(name);
        if (value == null) {
          throw new IllegalStateException("query uses unknown variable $" + name + ": " + q);
        }
        m.appendReplacement(out, Matcher.quoteReplacement(value));
      }
      m.appendTail(out);
      queries.add(out.toString());
    }
    return queries;
  }

  private static void collectExprs(JsonArray panels, List<String> into) {
    for (JsonElement p : panels) {
      JsonObject panel = p.getAsJsonObject();
      if (panel.has("targets")) {
        for (JsonElement t : panel.getAsJsonArray("targets")) {
          JsonObject target = t.getAsJsonObject();
          if (!target.has("expr")) {
            throw new IllegalStateException(
                "panel '" + panel.get("title") + "': target without expr");
          }
          into.add(target.get("expr").getAsString());
        }
      }
      if (panel.has("panels")) {
        collectExprs(panel.getAsJsonArray("panels"), into);
      }
    }
  }

  // ----------------------------------------------------------------------------------------------
  // Prometheus

  private static String prometheusImage() {
    String image =
        System.getProperty("peerflash.prometheus.image", "peerflash-prometheus:bookworm");
    try {
      DockerClientFactory.instance().client().inspectImageCmd(image).exec();
    } catch (NotFoundException e) {
      throw new IllegalStateException(
          "Prometheus image "
              + image
              + " is missing: build it with deploy/build-prometheus-image.sh "
              + image,
          e);
    }
    return image;
  }

  /** Prometheus on the cluster's network with deploy/prometheus/ as /etc/prometheus. */
  private GenericContainer<?> startPrometheus(String image, Path config) {
    GenericContainer<?> c =
        new GenericContainer<>(DockerImageName.parse(image))
            .withNetworkMode(cluster.networkName())
            .withCopyToContainer(
                MountableFile.forHostPath(config.resolve("prometheus.yml"), 0644),
                "/etc/prometheus/prometheus.yml")
            .withCopyToContainer(
                MountableFile.forHostPath(config.resolve("peerflash-alerts.yml"), 0644),
                "/etc/prometheus/peerflash-alerts.yml")
            .waitingFor(
                Wait.forLogMessage("(?s).*Server is ready to receive web requests.*", 1)
                    .withStartupTimeout(Duration.ofMinutes(1)))
            .withCreateContainerCmdModifier(
                create -> {
                  create.withName(SCENARIO + "-prometheus-" + Long.toHexString(System.nanoTime()));
                  Map<String, String> labels = new LinkedHashMap<>();
                  if (create.getLabels() != null) {
                    labels.putAll(create.getLabels());
                  }
                  labels.put("io.peerflash.it", SCENARIO);
                  create.withLabels(labels);
                });
    c.start();
    return c;
  }

  /** The result of an instant query; fails on anything but a vector answer. */
  private JsonArray query(String api, String promql) {
    URI uri =
        URI.create(
            api + "/api/v1/query?query=" + URLEncoder.encode(promql, StandardCharsets.UTF_8));
    try {
      HttpResponse<String> r =
          http.send(
              HttpRequest.newBuilder(uri).timeout(Duration.ofSeconds(10)).GET().build(),
              HttpResponse.BodyHandlers.ofString());
      JsonObject body = JsonParser.parseString(r.body()).getAsJsonObject();
      if (r.statusCode() != 200 || !"success".equals(body.get("status").getAsString())) {
        throw new AssertionError(
            "Prometheus refused the query " + promql + ": " + r.statusCode() + " " + r.body());
      }
      JsonObject data = body.getAsJsonObject("data");
      assertThat(data.get("resultType").getAsString())
          .as("result type of " + promql)
          .isEqualTo("vector");
      return data.getAsJsonArray("result");
    } catch (IOException e) {
      throw new IllegalStateException("Prometheus at " + api + " did not answer: " + e, e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  /** Null when the query returns a series with a number, else what it returned. */
  private String whyNoData(String api, String promql) {
    JsonArray result = query(api, promql);
    if (result.isEmpty()) {
      return "no series";
    }
    for (JsonElement e : result) {
      double v =
          Double.parseDouble(e.getAsJsonObject().getAsJsonArray("value").get(1).getAsString());
      if (Double.isFinite(v)) {
        return null;
      }
    }
    return result.size() + " series, none with a number: " + result;
  }

  // ----------------------------------------------------------------------------------------------
  // Traffic

  /** Writes of 1-8 blocks and reads of what was written, until told to stop. */
  private void drive(AtomicLong requests, AtomicLong failures) {
    Random random = new Random(21);
    int blocks = VOLUME_BYTES / BLOCK;
    try (PeerFlashClient c = cluster.newClient(Duration.ofSeconds(10))) {
      while (!stopTraffic.get()) {
        int n = 1 + random.nextInt(8);
        long offset = (long) random.nextInt(blocks - n) * BLOCK;
        try {
          byte[] data = new byte[n * BLOCK];
          random.nextBytes(data);
          c.write(VOLUME, offset, data);
          requests.incrementAndGet();
          c.read(VOLUME, offset, n * BLOCK);
          requests.incrementAndGet();
        } catch (RuntimeException e) {
          failures.incrementAndGet();
          DockerCluster.sleep(100);
        }
        // A light load is enough for the histograms; the machine runs the whole cluster.
        DockerCluster.sleep(5);
      }
    }
  }

  private static void awaitTrue(
      String what, Duration timeout, java.util.function.BooleanSupplier condition) {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("timed out after " + timeout + " waiting for: " + what);
      }
      DockerCluster.sleep(500);
    }
  }
}
