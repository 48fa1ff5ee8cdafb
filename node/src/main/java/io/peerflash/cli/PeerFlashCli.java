package io.peerflash.cli;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.netty.channel.EventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.nio.NioEventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.socket.nio.NioSocketChannel;
import io.grpc.netty.shaded.io.netty.util.concurrent.DefaultThreadFactory;
import io.peerflash.client.ClientSecurity;
import io.peerflash.client.PeerFlashClient;
import io.peerflash.client.PeerFlashException;
import io.peerflash.node.NodeConfig;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.UsageMessageSpec;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.ParseResult;
import picocli.CommandLine.ScopeType;
import picocli.CommandLine.Spec;
import picocli.CommandLine.UnmatchedArgumentException;

/**
 * The {@code peerflash} command line: runs a node, or talks to one over gRPC.
 *
 * <p>Exit codes: 0 success, 1 the operation failed (server error, unreachable node, I/O error), 2
 * usage or configuration error.
 */
@Command(
    name = "peerflash",
    scope = ScopeType.INHERIT,
    mixinStandardHelpOptions = true,
    versionProvider = PeerFlashCli.Version.class,
    description = "PeerFlash: a clustered write-back flash cache in front of shared storage.")
public final class PeerFlashCli implements Callable<Integer> {
  static final int EXIT_OK = 0;
  static final int EXIT_FAILURE = 1;
  static final int EXIT_USAGE = 2;

  /**
   * The commands, in the order help lists them. A call's command line is built with only the
   * command and subcommand it names (all of them where it names none, for help and suggestions):
   * picocli reads every option of every command it is given by reflection, which cost each CLI call
   * a third of its CPU time.
   */
  static final List<Class<?>> COMMANDS =
      List.of(
          NodeCommand.class,
          VolumeCommand.class,
          IoCommands.Write.class,
          IoCommands.Read.class,
          IoCommands.Trim.class,
          FlushCommand.class,
          StatusCommand.class,
          HealthCommand.class,
          ClusterCommand.class,
          LocalClusterCommand.class,
          CertsCommand.class,
          BenchCommand.class);

  private static final String NETTY_JFR = "io.grpc.netty.shaded.io.netty.jfr.enabled";

  /** The subcommands of the commands that group them, in the order help lists them. */
  static final Map<Class<?>, List<Class<?>>> SUBCOMMANDS =
      Map.of(
          VolumeCommand.class,
          List.of(
              VolumeCommand.Create.class,
              VolumeCommand.ListVolumes.class,
              VolumeCommand.Stat.class,
              VolumeCommand.Delete.class,
              VolumeCommand.SetPolicy.class,
              VolumeCommand.Move.class),
          ClusterCommand.class,
          List.of(
              ClusterCommand.Status.class,
              ClusterCommand.Health.class,
              ClusterEventsCommand.class,
              ClusterCommand.Drain.class,
              ClusterCommand.RemoveNode.class,
              ClusterCommand.AddNode.class),
          CertsCommand.class,
          List.of(
              CertsCommand.Init.class,
              CertsCommand.Node.class,
              CertsCommand.Client.class,
              CertsCommand.Revoke.class,
              CertsCommand.ListCerts.class));

  /** Opens a channel to {@code HOST:PORT}; tests substitute an in-process channel. */
  @FunctionalInterface
  interface ChannelFactory {
    ManagedChannel open(String target);
  }

  private final ChannelFactory channels;
  // Channels of the benchmark client: responses run on the transport thread (no hand-off).
  private final ChannelFactory benchChannels;
  private final PrintStream out;
  private final PrintStream err;
  private final boolean interactive;
  private final boolean quietLibraryLogging;
  // The node the current command talks to, to name it when it cannot be reached.
  private volatile String target;
  // How the current command connects (its --certs or --insecure); null until it says.
  private volatile ClientSecurity security;
  // The I/O thread of this process's channels (bench's own aside), made on first use. Its own, not
  // gRPC's shared one, so that it can be stopped before the process exits: the JVM waits up to
  // 300 ms at exit for any thread still waiting in native code, such as an idle event loop.
  private EventLoopGroup eventLoop;
  // How local-cluster starts a node (null: this program's java and jar); tests substitute a fake.
  private volatile List<String> nodeLauncher;

  @Spec CommandSpec spec;

  public PeerFlashCli() {
    // Channels from the command's --certs / --insecure (see ClientOptions).
    this(null, null, System.out, System.err, System.console() != null, true);
  }

  /** For tests: no console, and the JVM's logging configuration is left alone. */
  PeerFlashCli(ChannelFactory channels, PrintStream out, PrintStream err) {
    this(channels, channels, out, err, false, false);
  }

  private PeerFlashCli(
      ChannelFactory channels,
      ChannelFactory benchChannels,
      PrintStream out,
      PrintStream err,
      boolean interactive,
      boolean quietLibraryLogging) {
    this.channels = channels;
    this.benchChannels = benchChannels;
    this.out = out;
    this.err = err;
    this.interactive = interactive;
    this.quietLibraryLogging = quietLibraryLogging;
  }

  public static void main(String[] args) {
    Class<?> command = args.length > 0 ? named(COMMANDS, args[0]) : null;
    if (command != null && command != NodeCommand.class) {
      // Before anything logs: a client command's logging is set up in code, not from XML.
      System.setProperty(ClientLogConfigurator.PROPERTY, "client");
      // Netty's buffer events for JDK Flight Recorder: registering them costs a short command
      // 50 ms (JFR generates a class per event), and nobody records a CLI call.
      if (System.getProperty(NETTY_JFR) == null) {
        System.setProperty(NETTY_JFR, "false");
      }
    }
    PeerFlashCli cli = new PeerFlashCli();
    int code = cli.execute(args);
    cli.closeTransport();
    System.exit(code);
  }

  /** Runs one command line and returns its exit code. */
  public int execute(String... args) {
    CommandLine cl = commandLine(this, args);
    cl.setOut(new PrintWriter(out, true));
    cl.setErr(new PrintWriter(err, true));
    cl.setParameterExceptionHandler(this::onUsageError);
    cl.setExecutionExceptionHandler(this::onFailure);
    // The settings reference is preformatted; picocli's own footer would rewrap and reindent it.
    CommandLine node = cl.getSubcommands().get("node");
    if (node != null) {
      node.getHelpSectionMap()
          .put(
              UsageMessageSpec.SECTION_KEY_FOOTER,
              help ->
                  String.format(
                          "%nSettings (keys of --config files and --set KEY=VALUE; the flags above"
                              + " are shortcuts and win over both):%n")
                      + NodeConfig.reference());
    }
    return cl.execute(args);
  }

  /**
   * The command line of {@code cli} for a call with {@code args}: with the command and subcommand
   * the leading arguments name, or every command where they name none. Picocli takes a leading
   * argument that names a command as that command, so the smaller tree parses such a call exactly
   * as the whole one would.
   */
  static CommandLine commandLine(PeerFlashCli cli, String... args) {
    CommandLine root = new CommandLine(cli);
    addCommands(root, COMMANDS, args, 0);
    return root;
  }

  private static void addCommands(
      CommandLine parent, List<Class<?>> commands, String[] args, int index) {
    Class<?> named = index < args.length ? named(commands, args[index]) : null;
    for (Class<?> command : named != null ? List.of(named) : commands) {
      parent.addSubcommand(command);
      List<Class<?>> subcommands = SUBCOMMANDS.get(command);
      if (subcommands != null) {
        CommandLine added =
            parent.getSubcommands().get(command.getAnnotation(Command.class).name());
        addCommands(added, subcommands, args, named != null ? index + 1 : args.length);
      }
    }
  }

  /** The command of {@code commands} called {@code name}, or null. */
  static Class<?> named(List<Class<?>> commands, String name) {
    for (Class<?> command : commands) {
      Command c = command.getAnnotation(Command.class);
      if (c.name().equals(name) || List.of(c.aliases()).contains(name)) {
        return command;
      }
    }
    return null;
  }

  @Override
  public Integer call() {
    throw new ParameterException(spec.commandLine(), "missing command");
  }

  PrintStream out() {
    return out;
  }

  PrintStream err() {
    return err;
  }

  List<String> nodeLauncher() {
    return nodeLauncher;
  }

  /** For tests: the command line prefix local-cluster starts nodes with, before "node ...". */
  void nodeLauncher(List<String> launcher) {
    this.nodeLauncher = launcher == null ? null : List.copyOf(launcher);
  }

  /** Whether stderr is a terminal, so progress can be redrawn in place. */
  boolean interactive() {
    return interactive;
  }

  PeerFlashClient connect(String target) {
    this.target = target;
    return clientBuilder(target).build();
  }

  /** Quiets library logging for a client command (as the first call of one does). */
  void quietLibraryLogging() {
    if (quietLibraryLogging) {
      ClientLogging.quiet();
    }
  }

  /** Whether channels come from the command's --certs or --insecure (not a test's factory). */
  boolean needsSecurity() {
    return channels == null;
  }

  /** How the current command connects to nodes (from its --certs or --insecure). */
  void security(ClientSecurity security) {
    this.security = security;
  }

  ClientSecurity security() {
    ClientSecurity s = security;
    if (s == null) {
      throw new IllegalStateException(
          "no client certificate: give --certs DIR (an identity directory with ca-cert.pem,"
              + " client-cert.pem and client-key.pem; local-cluster prints the line to export) or"
              + " set PEERFLASH_CERTS; --insecure connects to a plaintext cluster");
    }
    return s;
  }

  private ManagedChannel open(String target) {
    if (channels != null) {
      return channels.open(target);
    }
    return security()
        .builder(target)
        .eventLoopGroup(eventLoop())
        .channelType(NioSocketChannel.class)
        .build();
  }

  private synchronized EventLoopGroup eventLoop() {
    if (eventLoop == null) {
      eventLoop = new NioEventLoopGroup(1, new DefaultThreadFactory("peerflash-cli-io", true));
    }
    return eventLoop;
  }

  /**
   * Stops the I/O thread of this process's channels, and with it any channel still open: called
   * once the command is done, so that the process exits at once instead of waiting for it.
   */
  void closeTransport() {
    EventLoopGroup group;
    synchronized (this) {
      group = eventLoop;
      eventLoop = null;
    }
    if (group != null) {
      group.shutdownGracefully(0, 1, TimeUnit.SECONDS).awaitUninterruptibly(2, TimeUnit.SECONDS);
    }
  }

  private ManagedChannel openDirect(String target) {
    return benchChannels != null
        ? benchChannels.open(target)
        : BenchCommand.directChannel(target, security());
  }

  /** A client builder for {@code targets} whose channels come from this CLI's channel factory. */
  PeerFlashClient.Builder clientBuilder(String targets) {
    if (quietLibraryLogging) {
      ClientLogging.quiet();
    }
    return PeerFlashClient.builder().target(targets).channelFactory(this::open);
  }

  /** A channel for the benchmark's load (see {@link BenchCommand#directChannel}). */
  ManagedChannel benchChannel(String target) {
    this.target = target;
    if (quietLibraryLogging) {
      ClientLogging.quiet();
    }
    return openDirect(target);
  }

  /** A client builder for the benchmark's load, over {@link #benchChannel} channels. */
  PeerFlashClient.Builder benchClientBuilder(String targets) {
    this.target = targets;
    if (quietLibraryLogging) {
      ClientLogging.quiet();
    }
    return PeerFlashClient.builder().target(targets).channelFactory(this::openDirect);
  }

  private int onUsageError(ParameterException ex, String[] args) {
    CommandLine cl = ex.getCommandLine();
    PrintWriter w = cl.getErr();
    w.println("error: " + ex.getMessage());
    UnmatchedArgumentException.printSuggestions(ex, w);
    w.println("Try '" + cl.getCommandSpec().qualifiedName() + " --help' for usage.");
    w.flush();
    return EXIT_USAGE;
  }

  private int onFailure(Exception ex, CommandLine cl, ParseResult parsed) {
    Throwable e = ex instanceof StatusRuntimeException ? PeerFlashException.from(ex) : ex;
    if (e instanceof PeerFlashException pfe) {
      if (isUnreachable(pfe)) {
        err.println(
            (target != null && target.contains(",")
                    ? "error: cannot reach any peerflash node of " + target
                    : "error: cannot reach peerflash node at " + target)
                + ": "
                + Formats.connectFailure(pfe.status().getCause())
                + " (is it running? choose another with --target HOST:PORT)");
      } else {
        String description = pfe.description();
        err.println(
            "error: "
                + pfe.code()
                + ": "
                + (description == null || description.isEmpty() ? "(no details)" : description));
      }
    } else {
      err.println("error: " + Formats.describe(e));
    }
    if (System.getenv("PEERFLASH_DEBUG") != null) {
      e.printStackTrace(err);
    }
    err.flush();
    return EXIT_FAILURE;
  }

  // A transport failure carries its cause (connection refused, unknown host); an UNAVAILABLE the
  // server chose to send (e.g. a flush giving up on shared storage) arrives without one.
  private static boolean isUnreachable(PeerFlashException e) {
    return e.code() == Status.Code.UNAVAILABLE && e.status().getCause() != null;
  }

  static final class Version implements CommandLine.IVersionProvider {
    @Override
    public String[] getVersion() {
      String v = PeerFlashCli.class.getPackage().getImplementationVersion();
      return new String[] {"peerflash " + (v == null ? "(development build)" : v)};
    }
  }
}
