package io.peerflash.cli;

import io.peerflash.node.NodeConfig;
import io.peerflash.node.PeerFlashNode;
import io.peerflash.node.logging.NodeLogging;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** Runs a node in the foreground; SIGTERM stops it gracefully. */
@Command(
    name = "node",
    sortOptions = false,
    description = {
      "Run a PeerFlash node in the foreground until SIGTERM or Ctrl-C, which stop it gracefully:"
          + " no new requests are accepted and those in flight finish.",
      "Settings come from --config, then --set, then the flags below."
    })
final class NodeCommand implements Callable<Integer> {
  // No defaults on any option: only what was given overrides the config file.
  @Option(names = "--id", paramLabel = "ID", description = "Node id, unique in the cluster.")
  String id;

  @Option(
      names = "--listen",
      paramLabel = "HOST:PORT",
      description = "Client gRPC address (default 127.0.0.1:7601; port 0 picks a free one).")
  String listen;

  @Option(names = "--data-dir", paramLabel = "DIR", description = "Local flash directory.")
  String dataDir;

  @Option(names = "--shared-dir", paramLabel = "DIR", description = "Shared storage directory.")
  String sharedDir;

  @Option(
      names = "--cache-size",
      paramLabel = "SIZE",
      description = "Cache file size, e.g. 256MiB (default 256MiB).")
  String cacheSize;

  @Option(
      names = "--sync",
      arity = "0..1",
      fallbackValue = "true",
      paramLabel = "BOOL",
      description = "Make acknowledged writes survive power loss (fsync per batch).")
  String sync;

  @Option(
      names = "--raft",
      paramLabel = "HOST:PORT",
      description = "This node's Raft address: runs it as a cluster member.")
  String raft;

  @Option(
      names = "--peers",
      paramLabel = "ID=HOST:PORT,...",
      description = "The initial Raft voters, this node included.")
  String peers;

  @Option(
      names = "--fault-domain",
      paramLabel = "NAME",
      description = "Rack, host or zone: replicas go to other domains when possible.")
  String faultDomain;

  @Option(
      names = "--certs",
      paramLabel = "DIR",
      description =
          "This node's identity directory (made by 'peerflash certs node'): mutual TLS on every"
              + " port. Required unless --insecure.")
  String certs;

  @Option(
      names = "--insecure",
      arity = "0..1",
      fallbackValue = "true",
      paramLabel = "BOOL",
      description = "Plaintext, no authentication: anyone who reaches the node may do anything.")
  String insecure;

  @Option(
      names = "--log-json",
      description =
          "Log one JSON object per line (logback's JsonEncoder: timestamp in ms since the epoch,"
              + " level, thread, logger, message, the node id under context.properties)"
              + " instead of text lines.")
  boolean logJson;

  @Option(
      names = "--http",
      paramLabel = "HOST:PORT",
      description =
          "Serve the read-only HTTP port: /metrics (Prometheus), /healthz, /readyz and the status"
              + " page at / (plain HTTP unless http-tls says otherwise; see docs/security.md).")
  String http;

  @Option(
      names = "--nbd",
      paramLabel = "HOST:PORT",
      description =
          "Serve every volume as an NBD export over TCP (TLS via STARTTLS when the node runs TLS).")
  String nbd;

  @Option(
      names = "--nbd-socket",
      paramLabel = "PATH",
      description = "Serve NBD on a Unix socket (mode 0660) for clients on this host.")
  String nbdSocket;

  @Option(
      names = "--nbd-socket-group",
      paramLabel = "GROUP",
      description = "Group owning the NBD socket file (default: the node's group).")
  String nbdSocketGroup;

  @Option(names = "--config", paramLabel = "FILE", description = "File of key=value settings.")
  Path config;

  @Option(
      names = "--set",
      paramLabel = "KEY=VALUE",
      description = "Any setting listed below; repeatable.")
  Map<String, String> settings;

  @Spec CommandSpec spec;

  @Override
  public Integer call() throws IOException, InterruptedException {
    PeerFlashCli cli = (PeerFlashCli) spec.root().userObject();
    PrintStream err = cli.err();
    NodeConfig nodeConfig;
    try {
      nodeConfig = NodeConfig.fromMap(settings());
    } catch (IOException e) {
      err.println("error: cannot read config file " + config + ": " + Formats.describe(e));
      return PeerFlashCli.EXIT_USAGE;
    } catch (IllegalArgumentException e) {
      err.println("error: bad configuration: " + e.getMessage());
      return PeerFlashCli.EXIT_USAGE;
    }
    // Every line from here on names this node; set before the node starts so its own lines do.
    NodeLogging.identify(nodeConfig.nodeId());
    if (logJson) {
      NodeLogging.useJson();
    }
    PeerFlashNode node;
    try {
      node = PeerFlashNode.start(nodeConfig);
    } catch (IOException e) {
      err.println("error: cannot start node " + nodeConfig.nodeId() + ": " + Formats.describe(e));
      return PeerFlashCli.EXIT_FAILURE;
    }
    // Runs on SIGTERM/SIGINT; close() stops accepting and lets in-flight requests finish.
    Thread hook = new Thread(node::close, "peerflash-shutdown");
    Runtime.getRuntime().addShutdownHook(hook);
    cli.out()
        .println(
            "peerflash node "
                + nodeConfig.nodeId()
                + " listening on "
                + nodeConfig.listenHost()
                + ":"
                + node.port());
    cli.out().flush();
    try {
      node.awaitTermination();
    } finally {
      boolean hookPending;
      try {
        hookPending = Runtime.getRuntime().removeShutdownHook(hook);
      } catch (IllegalStateException e) {
        hookPending = false; // The JVM is shutting down and the hook is closing the node.
      }
      if (hookPending) {
        node.close();
      }
    }
    return PeerFlashCli.EXIT_OK;
  }

  /** The settings in force: the config file, overridden by --set, overridden by the flags. */
  Map<String, String> settings() throws IOException {
    Map<String, String> values = new LinkedHashMap<>();
    if (config != null) {
      values.putAll(NodeConfig.readFile(config));
    }
    if (settings != null) {
      values.putAll(settings);
    }
    putIfGiven(values, NodeConfig.ID, id);
    putIfGiven(values, NodeConfig.LISTEN, listen);
    putIfGiven(values, NodeConfig.DATA_DIR, dataDir);
    putIfGiven(values, NodeConfig.SHARED_DIR, sharedDir);
    putIfGiven(values, NodeConfig.CACHE_SIZE, cacheSize);
    putIfGiven(values, NodeConfig.SYNC, sync);
    putIfGiven(values, NodeConfig.RAFT, raft);
    putIfGiven(values, NodeConfig.PEERS, peers);
    putIfGiven(values, NodeConfig.FAULT_DOMAIN, faultDomain);
    putIfGiven(values, NodeConfig.CERTS, certs);
    putIfGiven(values, NodeConfig.INSECURE, insecure);
    putIfGiven(values, NodeConfig.HTTP, http);
    putIfGiven(values, NodeConfig.NBD, nbd);
    putIfGiven(values, NodeConfig.NBD_SOCKET, nbdSocket);
    putIfGiven(values, NodeConfig.NBD_SOCKET_GROUP, nbdSocketGroup);
    return values;
  }

  private static void putIfGiven(Map<String, String> values, NodeConfig.Key<?> key, String v) {
    if (v != null) {
      values.put(key.name(), v);
    }
  }
}
