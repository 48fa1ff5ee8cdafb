package io.peerflash.faults;

import com.github.dockerjava.api.DockerClient;
import com.github.dockerjava.api.command.InspectContainerResponse;
import com.github.dockerjava.api.exception.DockerException;
import com.github.dockerjava.api.model.Bind;
import com.github.dockerjava.api.model.Capability;
import com.github.dockerjava.api.model.ContainerNetwork;
import com.github.dockerjava.api.model.HealthCheck;
import com.github.dockerjava.api.model.Network;
import com.github.dockerjava.api.model.Volume;
import io.peerflash.client.ClientSecurity;
import io.peerflash.client.PeerFlashClient;
import io.peerflash.proto.v1.ClusterMember;
import io.peerflash.proto.v1.ClusterStatus;
import io.peerflash.proto.v1.ClusterVolume;
import io.peerflash.proto.v1.MemberState;
import io.peerflash.security.Identity;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.testcontainers.DockerClientFactory;
import org.testcontainers.containers.Container.ExecResult;
import org.testcontainers.containers.GenericContainer;
import org.testcontainers.containers.wait.strategy.Wait;
import org.testcontainers.utility.DockerImageName;

/**
 * A PeerFlash cluster of node containers on a Docker network the cluster creates, with shared
 * storage bind-mounted into every container, and the faults the scenarios inject: SIGKILL, SIGTERM,
 * restart, pause, network disconnect, iptables rules inside a container (cut links, packet loss)
 * and a shared storage that runs full.
 *
 * <p>Every node listens on a fixed address of the cluster network (its {@code --listen} address is
 * what it advertises to peers and to redirected clients), which this host reaches directly: the
 * tests' clients talk to the containers' addresses, no ports are published. Everything the cluster
 * creates is removed by {@link #close}, after the nodes' logs are saved.
 *
 * <p>Every port runs mutual TLS: the cluster's CA, one identity per node (its certificate names its
 * network alias and address) and an admin client are made in a temporary directory of this host
 * ({@link ClusterCertificates}); each container gets a copy of its own node's directory only, the
 * CA key never leaves this host, and the tests' clients connect as the admin.
 */
public final class DockerCluster implements AutoCloseable {
  public static final int CLIENT_PORT = 7601;

  /**
   * Where a node takes replica copies from owners (its replica link; fixed for the iptables rules).
   */
  public static final int REPLICA_LINK_PORT = 7651;

  public static final int HTTP_PORT = 7801;
  public static final int RAFT_PORT = 7701;

  /** NBD's port in a container, published on this host with {@link ClusterSpec#publishNbd}. */
  public static final int NBD_PORT = 10809;

  public static final String SHARED_DIR = "/var/lib/peerflash/shared";
  public static final String DATA_DIR = "/var/lib/peerflash/data";

  /** Where a container holds its node's identity directory (the node's {@code --certs}). */
  public static final String CERTS_DIR = "/etc/peerflash/certs";

  /** The user the node image runs as (deploy/Dockerfile): it must own its keys. */
  private static final int NODE_UID = 10001;

  private static final String LABEL = "io.peerflash.it";

  /** One node container. */
  public final class Node {
    private final String id;
    private final String ip;
    private final GenericContainer<?> container;
    private volatile boolean paused;

    private Node(String id, String ip, GenericContainer<?> container) {
      this.id = id;
      this.ip = ip;
      this.container = container;
    }

    /** The port of this host that reaches the node's NBD port (with {@code publishNbd}). */
    public int nbdHostPort() {
      return container.getMappedPort(NBD_PORT);
    }

    public String id() {
      return id;
    }

    public String ip() {
      return ip;
    }

    /** The node's client address, {@code IP:7601}. */
    public String target() {
      return ip + ":" + CLIENT_PORT;
    }

    String containerId() {
      return container.getContainerId();
    }

    @Override
    public String toString() {
      return id + "@" + ip;
    }
  }

  public static ClusterSpec builder(String scenario) {
    return new ClusterSpec(scenario);
  }

  private final ClusterSpec spec;
  private final DockerClient docker;
  private final String suffix = Long.toHexString(ThreadLocalRandom.current().nextLong() >>> 36);
  private final Path logDir;
  private final List<Node> nodes = new ArrayList<>();
  private String networkId;
  private String networkName;
  private String subnetPrefix;
  private Path sharedHostDir;
  private String sharedVolume;
  private ClusterCertificates certificates;
  private ClientSecurity adminSecurity;
  private PeerFlashClient client;

  DockerCluster(ClusterSpec spec) {
    this.spec = spec;
    this.docker = DockerClientFactory.instance().client();
    this.logDir =
        Path.of(System.getProperty("peerflash.log.dir", "target/container-logs"))
            .resolve(spec.scenario);
  }

  // ----------------------------------------------------------------------------------------------
  // Start and stop

  void startAll() {
    String image = NodeImage.get();
    createNetwork();
    createSharedStorage();
    createCertificates();
    StringBuilder peers = new StringBuilder();
    for (int i = 1; i <= spec.nodes; i++) {
      peers.append(i > 1 ? "," : "").append("n").append(i).append('=');
      peers.append(ipOf(i)).append(':').append(RAFT_PORT);
    }
    for (int i = 1; i <= spec.nodes; i++) {
      nodes.add(newNode(image, i, peers.toString()));
    }
    ExecutorService starter = Executors.newFixedThreadPool(spec.nodes);
    try {
      List<Future<?>> started = new ArrayList<>();
      for (Node n : nodes) {
        started.add(starter.submit(() -> n.container.start()));
      }
      for (Future<?> f : started) {
        f.get(5, TimeUnit.MINUTES);
      }
    } catch (Exception e) {
      throw new IllegalStateException("cluster " + spec.scenario + " did not start", e);
    } finally {
      starter.shutdownNow();
    }
    awaitAllUp(Duration.ofMinutes(2));
  }

  private String ipOf(int i) {
    return subnetPrefix + "." + (10 + i);
  }

  private void createNetwork() {
    DockerException last = null;
    for (int attempt = 0; attempt < 20; attempt++) {
      String prefix = "10.213." + ThreadLocalRandom.current().nextInt(1, 255);
      String name = "peerflash-it-" + spec.scenario + "-" + suffix;
      try {
        networkId =
            docker
                .createNetworkCmd()
                .withName(name)
                .withDriver("bridge")
                .withLabels(Map.of(LABEL, spec.scenario))
                .withIpam(
                    new Network.Ipam()
                        .withConfig(
                            new Network.Ipam.Config()
                                .withSubnet(prefix + ".0/24")
                                .withGateway(prefix + ".1")))
                .exec()
                .getId();
        networkName = name;
        subnetPrefix = prefix;
        return;
      } catch (DockerException e) {
        last = e; // the subnet is taken: try another
      }
    }
    throw new IllegalStateException("no free subnet for the cluster network", last);
  }

  /**
   * The CA, a certificate per node for the names it is dialled by (its network alias and its
   * address: --listen, --raft and the advertised address are all that address) and the admin client
   * the tests connect as.
   */
  private void createCertificates() {
    certificates = ClusterCertificates.create(spec.scenario);
    for (int i = 1; i <= spec.nodes; i++) {
      certificates.issueNode("n" + i, List.of("n" + i, ipOf(i)));
    }
    Path admin = certificates.issueClient("admin", Identity.Role.ADMIN, List.of(), false);
    try {
      adminSecurity = ClientSecurity.certs(admin);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private void createSharedStorage() {
    try {
      if (spec.sharedStorageLimit > 0) {
        sharedVolume = "peerflash-it-shared-" + spec.scenario + "-" + suffix;
        docker
            .createVolumeCmd()
            .withName(sharedVolume)
            .withDriver("local")
            .withLabels(Map.of(LABEL, spec.scenario))
            .withDriverOpts(
                Map.of(
                    "type", "tmpfs",
                    "device", "tmpfs",
                    "o", "size=" + spec.sharedStorageLimit + ",mode=1777"))
            .exec();
      } else {
        sharedHostDir = Files.createTempDirectory("peerflash-it-shared-");
        // The nodes run as uid 10001.
        Files.setPosixFilePermissions(sharedHostDir, PosixFilePermissions.fromString("rwxrwxrwx"));
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private Node newNode(String image, int i, String peers) {
    String id = "n" + i;
    String ip = ipOf(i);
    List<String> cmd =
        new ArrayList<>(
            List.of(
                "node",
                "--id=" + id,
                "--listen=" + ip + ":" + CLIENT_PORT,
                "--raft=" + ip + ":" + RAFT_PORT,
                "--peers=" + peers,
                "--fault-domain=rack-" + id,
                "--data-dir=" + DATA_DIR,
                "--shared-dir=" + SHARED_DIR,
                "--cache-size=" + spec.cacheSize,
                "--certs=" + CERTS_DIR,
                "--set=replica-link=" + ip + ":" + REPLICA_LINK_PORT,
                // The health check asks its /healthz instead of starting a JVM.
                "--http=" + ip + ":" + HTTP_PORT));
    spec.settings.forEach((k, v) -> cmd.add("--set=" + k + "=" + v));
    String source = sharedHostDir != null ? sharedHostDir.toString() : sharedVolume;
    GenericContainer<?> c =
        new GenericContainer<>(DockerImageName.parse(image))
            .withNetworkMode(networkName)
            .withEnv("JAVA_OPTS", spec.javaOpts)
            .withCommand(cmd.toArray(String[]::new))
            // Copied in before the container starts; it stays across restarts of the container.
            .withCopyToContainer(
                new IdentityDirectory(certificates.directory(id), NODE_UID), CERTS_DIR)
            .waitingFor(
                Wait.forLogMessage("(?s).*peerflash node " + id + " listening on.*", 1)
                    .withStartupTimeout(Duration.ofMinutes(3)))
            .withCreateContainerCmdModifier(
                create -> {
                  create.withName("peerflash-it-" + spec.scenario + "-" + id + "-" + suffix);
                  create.withHostName(id);
                  create.withIpv4Address(ip);
                  create.withAliases(id);
                  Map<String, String> labels = new LinkedHashMap<>();
                  if (create.getLabels() != null) {
                    labels.putAll(create.getLabels());
                  }
                  labels.put(LABEL, spec.scenario);
                  create.withLabels(labels);
                  create
                      .getHostConfig()
                      .withCapAdd(Capability.NET_ADMIN)
                      .withBinds(new Bind(source, new Volume(SHARED_DIR)));
                  create.withHealthcheck(healthCheck());
                });
    if (spec.publishNbd) {
      c.withExposedPorts(NBD_PORT);
    }
    return new Node(id, ip, c);
  }

  private HealthCheck healthCheck() {
    if (spec.healthCheckInterval == null) {
      return new HealthCheck().withTest(List.of("NONE"));
    }
    long interval = spec.healthCheckInterval.toNanos();
    return new HealthCheck()
        .withTest(List.of("CMD", "/usr/local/bin/peerflash-healthcheck"))
        .withInterval(interval)
        .withTimeout(TimeUnit.SECONDS.toNanos(30))
        .withStartPeriod(TimeUnit.SECONDS.toNanos(60))
        .withRetries(3);
  }

  /** Saves every node's log, then removes the containers, the network and shared storage. */
  @Override
  public void close() {
    if (client != null) {
      client.close();
    }
    for (Node n : nodes) {
      if (n.container.getContainerId() == null) {
        continue;
      }
      try {
        saveLog(n);
        if (n.paused) {
          docker.unpauseContainerCmd(n.containerId()).exec();
        }
      } catch (RuntimeException ignored) {
        // removing it anyway
      }
      try {
        docker.removeContainerCmd(n.containerId()).withForce(true).withRemoveVolumes(true).exec();
      } catch (RuntimeException ignored) {
        // already gone
      }
    }
    if (networkId != null) {
      try {
        docker.removeNetworkCmd(networkId).exec();
      } catch (RuntimeException ignored) {
        // already gone
      }
    }
    if (sharedVolume != null) {
      try {
        docker.removeVolumeCmd(sharedVolume).exec();
      } catch (RuntimeException ignored) {
        // already gone
      }
    }
    if (sharedHostDir != null) {
      try (Stream<Path> files = Files.walk(sharedHostDir)) {
        files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
      } catch (IOException ignored) {
        // best effort
      }
    }
    if (certificates != null) {
      certificates.close();
    }
  }

  private void saveLog(Node n) {
    try {
      Files.createDirectories(logDir);
      Files.writeString(logDir.resolve(n.id + ".log"), n.container.getLogs());
    } catch (IOException | RuntimeException e) {
      // logs are a diagnostic only
    }
  }

  /**
   * The cluster's Docker network: another container started on it reaches each node by its alias
   * ({@code n1}..) and fixed address.
   */
  public String networkName() {
    return networkName;
  }

  /** Where the nodes' logs are saved on close. */
  public Path logDir() {
    return logDir;
  }

  // ----------------------------------------------------------------------------------------------
  // Access

  public List<Node> nodes() {
    return List.copyOf(nodes);
  }

  public Node node(String id) {
    return nodes.stream()
        .filter(n -> n.id.equals(id))
        .findFirst()
        .orElseThrow(() -> new IllegalArgumentException("no node " + id));
  }

  /** Every node's client address, comma separated (a client target). */
  public String targets() {
    return String.join(",", nodes.stream().map(Node::target).toList());
  }

  /** The cluster's certificates: its CA issues more clients, and each node's identity is here. */
  public ClusterCertificates certificates() {
    return certificates;
  }

  /** How the tests' clients connect: mutual TLS as the cluster's admin client. */
  public ClientSecurity adminSecurity() {
    return adminSecurity;
  }

  /** A client builder connecting as the admin (mutual TLS); the caller sets targets. */
  public PeerFlashClient.Builder clientBuilder() {
    return PeerFlashClient.builder().security(adminSecurity);
  }

  /** A new client given every node; the caller closes it. */
  public PeerFlashClient newClient(Duration deadline) {
    return clientBuilder().target(targets()).deadline(deadline).build();
  }

  /**
   * A new client given only {@code n}'s address (it still follows redirects); the caller closes it.
   */
  public PeerFlashClient newClient(Node n, Duration deadline) {
    return clientBuilder().target(n.target()).deadline(deadline).build();
  }

  /** A shared client for control calls (status, volume queries), closed with the cluster. */
  public synchronized PeerFlashClient client() {
    if (client == null) {
      client = newClient(Duration.ofSeconds(10));
    }
    return client;
  }

  /** The cluster map as seen by every node that answers within 3 s. */
  public List<ClusterStatus> statuses() {
    List<ClusterStatus> all = new ArrayList<>();
    for (Node n : nodes) {
      if (n.paused) {
        continue;
      }
      try (PeerFlashClient c =
          clientBuilder()
              .target(n.target())
              .deadline(Duration.ofSeconds(3))
              .retryBudget(Duration.ZERO)
              .build()) {
        all.add(c.clusterStatus());
      } catch (RuntimeException e) {
        // next node
      }
    }
    return all;
  }

  /**
   * The cluster map as the Raft leader sees it (a node cut off from the others may answer with an
   * old map), else as the first node that answers.
   */
  public Optional<ClusterStatus> clusterStatus() {
    List<ClusterStatus> all = statuses();
    return all.stream()
        .filter(s -> !s.getLeaderId().isEmpty() && s.getAnsweredBy().equals(s.getLeaderId()))
        .findFirst()
        .or(() -> all.stream().findFirst());
  }

  /**
   * The volume's entry in the cluster map (owner, epoch, replica set): the newest (highest epoch)
   * any node knows.
   */
  public Optional<ClusterVolume> volume(String name) {
    return statuses().stream()
        .flatMap(s -> s.getVolumesList().stream())
        .filter(v -> v.getName().equals(name))
        .max(Comparator.comparingLong(ClusterVolume::getEpoch));
  }

  /** The cluster's event history of a volume, as the first node that answers holds it. */
  public List<io.peerflash.proto.v1.ClusterEvent> events(String volume) {
    for (Node n : nodes) {
      try (PeerFlashClient c = clientBuilder().target(n.target()).build()) {
        return c.clusterEvents(
                io.peerflash.proto.v1.ListClusterEventsRequest.newBuilder()
                    .setVolume(volume)
                    .build())
            .getEventsList();
      } catch (RuntimeException e) {
        // next node
      }
    }
    throw new IllegalStateException("no node answered for the events of " + volume);
  }

  /** The volume's owner in the cluster map. */
  public Node ownerOf(String volume) {
    ClusterVolume v =
        volume(volume).orElseThrow(() -> new IllegalStateException("no map entry for " + volume));
    return node(v.getOwner());
  }

  /** The first replica of the volume in the cluster map. */
  public Node replicaOf(String volume) {
    ClusterVolume v =
        volume(volume).orElseThrow(() -> new IllegalStateException("no map entry for " + volume));
    if (v.getReplicaSetCount() == 0) {
      throw new IllegalStateException("volume " + volume + " has no replica: " + v);
    }
    return node(v.getReplicaSet(0));
  }

  /** Waits until every node is UP in the map, a leader is known and every node answers. */
  public void awaitAllUp(Duration timeout) {
    long deadline = System.nanoTime() + timeout.toNanos();
    String last = "no node answered";
    while (true) {
      Optional<ClusterStatus> s = clusterStatus();
      if (s.isPresent()) {
        ClusterStatus st = s.get();
        long up =
            st.getMembersList().stream().filter(m -> m.getState() == MemberState.MEMBER_UP).count();
        last =
            "leader '"
                + st.getLeaderId()
                + "', members "
                + st.getMembersList().stream().map(m -> m.getId() + " " + m.getState()).toList();
        if (!st.getLeaderId().isEmpty() && up == nodes.size() && allAnswer()) {
          return;
        }
      }
      if (System.nanoTime() > deadline) {
        throw new IllegalStateException(
            "cluster " + spec.scenario + " not all UP within " + timeout + ": " + last);
      }
      sleep(250);
    }
  }

  private boolean allAnswer() {
    for (Node n : nodes) {
      if (!answers(n)) {
        return false;
      }
    }
    return true;
  }

  /** Whether the node answers a status call within 3 s. */
  public boolean answers(Node n) {
    try (PeerFlashClient c =
        clientBuilder()
            .target(n.target())
            .deadline(Duration.ofSeconds(3))
            .retryBudget(Duration.ZERO)
            .build()) {
      c.status();
      return true;
    } catch (RuntimeException e) {
      return false;
    }
  }

  /** The member's state in the map as seen by the first node that answers. */
  public Optional<MemberState> memberState(Node n) {
    return clusterStatus()
        .flatMap(
            s ->
                s.getMembersList().stream()
                    .filter(m -> m.getId().equals(n.id))
                    .map(ClusterMember::getState)
                    .findAny());
  }

  // ----------------------------------------------------------------------------------------------
  // Faults

  /** {@code kill -9} of the node's JVM (PID 1 of its container). */
  public void kill(Node n) {
    docker.killContainerCmd(n.containerId()).withSignal("SIGKILL").exec();
    awaitNotRunning(n, Duration.ofSeconds(30));
  }

  /**
   * {@code docker stop}: SIGTERM, then SIGKILL after {@code timeout}.
   *
   * @return the container's exit code (143 after a clean stop on SIGTERM, 137 if it was killed)
   */
  public int stop(Node n, Duration timeout) {
    docker.stopContainerCmd(n.containerId()).withTimeout((int) timeout.toSeconds()).exec();
    awaitNotRunning(n, Duration.ofSeconds(30));
    Long code = inspect(n).getState().getExitCodeLong();
    return code == null ? -1 : code.intValue();
  }

  /** Starts a stopped or killed node's container again (same data, same address). */
  public void restart(Node n) {
    docker.startContainerCmd(n.containerId()).exec();
    long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(2);
    while (!answers(n)) {
      if (System.nanoTime() > deadline) {
        throw new IllegalStateException(n + " did not answer within 2 min after its restart");
      }
      sleep(250);
    }
  }

  /** Starts several stopped nodes at once (a cluster may need a quorum before any serves). */
  public void restartAll(List<Node> which) {
    for (Node n : which) {
      docker.startContainerCmd(n.containerId()).exec();
    }
    long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(2);
    for (Node n : which) {
      while (!answers(n)) {
        if (System.nanoTime() > deadline) {
          throw new IllegalStateException(n + " did not answer within 2 min after its restart");
        }
        sleep(250);
      }
    }
  }

  /** The node's log so far (every run of its container). */
  public String logs(Node n) {
    return n.container.getLogs();
  }

  public InspectContainerResponse inspect(Node n) {
    return docker.inspectContainerCmd(n.containerId()).exec();
  }

  public boolean running(Node n) {
    Boolean r = inspect(n).getState().getRunning();
    return r != null && r;
  }

  private void awaitNotRunning(Node n, Duration timeout) {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (running(n)) {
      if (System.nanoTime() > deadline) {
        throw new IllegalStateException(n + " still running after " + timeout);
      }
      sleep(100);
    }
  }

  /** The container's health status ("starting", "healthy", "unhealthy"), or "none". */
  public String health(Node n) {
    var h = inspect(n).getState().getHealth();
    return h == null ? "none" : h.getStatus();
  }

  /** Freezes every process of the node (cgroup freezer) until {@link #unpause}. */
  public void pause(Node n) {
    docker.pauseContainerCmd(n.containerId()).exec();
    n.paused = true;
  }

  public void unpause(Node n) {
    docker.unpauseContainerCmd(n.containerId()).exec();
    n.paused = false;
  }

  /** Takes the node off the cluster network: it reaches nobody and nobody reaches it. */
  public void disconnect(Node n) {
    docker
        .disconnectFromNetworkCmd()
        .withNetworkId(networkId)
        .withContainerId(n.containerId())
        .withForce(true)
        .exec();
  }

  /** Puts the node back on the cluster network at its own address. */
  public void reconnect(Node n) {
    docker
        .connectToNetworkCmd()
        .withNetworkId(networkId)
        .withContainerId(n.containerId())
        .withContainerNetwork(
            new ContainerNetwork()
                .withIpamConfig(new ContainerNetwork.Ipam().withIpv4Address(n.ip))
                .withAliases(n.id))
        .exec();
  }

  /** Runs a command as root inside the node's container; fails unless it exits 0. */
  public String execAsRoot(Node n, String... command) {
    try {
      ExecResult r = n.container.execInContainerWithUser(StandardCharsets.UTF_8, "root", command);
      if (r.getExitCode() != 0) {
        throw new IllegalStateException(
            "in "
                + n
                + ": "
                + String.join(" ", command)
                + " exited "
                + r.getExitCode()
                + ": "
                + r.getStderr()
                + r.getStdout());
      }
      return r.getStdout();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  /** Network faults inside the nodes' containers (iptables). */
  public NetworkFaults network() {
    return new NetworkFaults(this, nodes);
  }

  /**
   * Fills the shared storage file system (only with {@link ClusterSpec#sharedStorageLimit}): from
   * now on every write that needs new space on shared storage fails with ENOSPC.
   */
  public void fillSharedStorage(Node via) {
    requireLimitedStorage();
    try {
      execAsRoot(via, "dd", "if=/dev/zero", "of=" + SHARED_DIR + "/.filler", "bs=1M");
    } catch (IllegalStateException expected) {
      // dd ends with "No space left on device"
      if (!expected.getMessage().contains("No space left")) {
        throw expected;
      }
    }
  }

  /** Frees the space {@link #fillSharedStorage} took. */
  public void freeSharedStorage(Node via) {
    requireLimitedStorage();
    execAsRoot(via, "rm", "-f", SHARED_DIR + "/.filler");
  }

  private void requireLimitedStorage() {
    if (sharedVolume == null) {
      throw new IllegalStateException("shared storage has no size limit in this cluster");
    }
  }

  /** The bytes of a volume's backing file on shared storage. */
  public byte[] sharedFile(String volume) {
    if (sharedHostDir != null) {
      try {
        return Files.readAllBytes(sharedHostDir.resolve(volume));
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
    for (Node n : nodes) {
      if (n.paused || !running(n)) {
        continue;
      }
      return n.container.copyFileFromContainer(SHARED_DIR + "/" + volume, in -> in.readAllBytes());
    }
    throw new IllegalStateException("no running node to read shared storage through");
  }

  static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }
}
