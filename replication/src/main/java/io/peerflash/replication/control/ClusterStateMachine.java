package io.peerflash.replication.control;

import io.peerflash.proto.v1.ClusterError;
import io.peerflash.proto.v1.ClusterMapSnapshot;
import io.peerflash.proto.v1.CommandResult;
import io.peerflash.proto.v1.MapCommand;
import io.peerflash.replication.fault.FaultPoints;
import io.peerflash.util.Time;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.function.Consumer;
import org.apache.ratis.io.MD5Hash;
import org.apache.ratis.proto.RaftProtos.LogEntryProto;
import org.apache.ratis.protocol.Message;
import org.apache.ratis.protocol.RaftClientRequest;
import org.apache.ratis.protocol.RaftGroupId;
import org.apache.ratis.protocol.RaftGroupMemberId;
import org.apache.ratis.protocol.RaftPeerId;
import org.apache.ratis.server.RaftServer;
import org.apache.ratis.server.protocol.TermIndex;
import org.apache.ratis.server.storage.FileInfo;
import org.apache.ratis.server.storage.RaftStorage;
import org.apache.ratis.statemachine.StateMachineStorage;
import org.apache.ratis.statemachine.TransactionContext;
import org.apache.ratis.statemachine.impl.BaseStateMachine;
import org.apache.ratis.statemachine.impl.SimpleStateMachineStorage;
import org.apache.ratis.statemachine.impl.SingleFileSnapshotInfo;
import org.apache.ratis.thirdparty.com.google.protobuf.ByteString;
import org.apache.ratis.thirdparty.com.google.protobuf.UnsafeByteOperations;
import org.apache.ratis.util.MD5FileUtil;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The Ratis state machine holding the {@link ClusterMap}.
 *
 * <ul>
 *   <li>{@link #applyTransaction} decodes a {@link MapCommand}, applies it with {@link
 *       ClusterMap#apply}, publishes the new map (volatile) and replies with the {@link
 *       CommandResult}. Ratis calls it on one thread, in log order.
 *   <li>Map listeners ({@link #addListener}) and command listeners ({@link #addCommandListener})
 *       run on that same thread, in apply order, after the map is published: they must be quick and
 *       must not block on the control plane (for example wait for a submit), or the state machine
 *       stalls.
 *   <li>Leader listeners ({@link #addLeaderListener}) run on the executor given to the constructor,
 *       because Ratis reports leader changes while holding its server lock.
 *   <li>{@link #query} answers with the serialized map ({@link ClusterMapSnapshot}).
 *   <li>Snapshots are single files ({@link ClusterMapSnapshot}) in {@link
 *       SimpleStateMachineStorage}, written to a temporary file, fsynced and renamed; the MD5 file
 *       written after it is what makes Ratis consider the snapshot complete.
 * </ul>
 */
public final class ClusterStateMachine extends BaseStateMachine {
  private static final Logger LOG = LoggerFactory.getLogger(ClusterStateMachine.class);

  /** Called after each applied command, on the state machine's thread, in log order. */
  @FunctionalInterface
  public interface CommandListener {
    void onApplied(long index, MapCommand command, CommandResult result, ClusterMap map);
  }

  private static final String TMP_PREFIX = "tmp-";

  private final SimpleStateMachineStorage storage = new SimpleStateMachineStorage();
  private final Executor leaderEventExecutor;
  private final List<Consumer<ClusterMap>> listeners = new CopyOnWriteArrayList<>();
  private final List<CommandListener> commandListeners = new CopyOnWriteArrayList<>();
  private final List<Consumer<Optional<String>>> leaderListeners = new CopyOnWriteArrayList<>();

  private final java.util.concurrent.atomic.AtomicInteger installs =
      new java.util.concurrent.atomic.AtomicInteger();

  private volatile ClusterMap map = ClusterMap.EMPTY;
  // Changed with the map, under the same lock, so a snapshot holds the events up to its index.
  private final ClusterEventLog events = new ClusterEventLog(ClusterEventLog.DEFAULT_CAPACITY);
  private volatile Optional<String> leaderId = Optional.empty();

  /**
   * @param leaderEventExecutor runs leader listeners (a single-threaded executor keeps their order)
   */
  public ClusterStateMachine(Executor leaderEventExecutor) {
    this.leaderEventExecutor = Objects.requireNonNull(leaderEventExecutor);
  }

  private volatile FaultPoints faults = new FaultPoints();
  private volatile String faultKey = "";

  /** Where tests make this node apply committed commands late ({@link FaultPoints#MAP_APPLY}). */
  void useFaultPoints(FaultPoints faults, String nodeId) {
    this.faultKey = nodeId;
    this.faults = faults;
  }

  /** The map as of the last applied command on this node. */
  public ClusterMap map() {
    return map;
  }

  /**
   * This node's map once it has applied at least up to {@code index} (polling every 10 ms).
   *
   * @throws IOException when it has not within {@code timeoutMs}, or {@code closed} says so first
   */
  ClusterMap awaitApplied(long index, long timeoutMs, Time time, BooleanSupplier closed)
      throws IOException {
    long deadline = time.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
    while (true) {
      TermIndex applied = getLastAppliedTermIndex();
      if (applied != null && applied.getIndex() >= index) {
        return map;
      }
      if (time.nanoTime() - deadline > 0 || closed.getAsBoolean()) {
        throw new IOException(
            "this node's map has not caught up with index " + index + " of the leader's");
      }
      try {
        time.sleepMs(10);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new java.io.InterruptedIOException("interrupted");
      }
    }
  }

  /** The cluster's event history as of the last applied command on this node. */
  public ClusterEventLog events() {
    return events;
  }

  /** The leader this node last heard of, if any. */
  public Optional<String> leaderId() {
    return leaderId;
  }

  /** Called with every new map (after each command that changed it, and after a reload). */
  public void addListener(Consumer<ClusterMap> listener) {
    listeners.add(Objects.requireNonNull(listener));
  }

  public void removeListener(Consumer<ClusterMap> listener) {
    listeners.remove(listener);
  }

  public void addCommandListener(CommandListener listener) {
    commandListeners.add(Objects.requireNonNull(listener));
  }

  public void removeCommandListener(CommandListener listener) {
    commandListeners.remove(listener);
  }

  /** Called with the new leader id (empty when unknown) on every leader change. */
  public void addLeaderListener(Consumer<Optional<String>> listener) {
    leaderListeners.add(Objects.requireNonNull(listener));
  }

  // ---------------------------------------------------------------- lifecycle and snapshots

  @Override
  public void initialize(RaftServer server, RaftGroupId groupId, RaftStorage raftStorage)
      throws IOException {
    getLifeCycle()
        .startAndTransition(
            () -> {
              super.initialize(server, groupId, raftStorage);
              storage.init(raftStorage);
              deleteTemporarySnapshots();
              loadLatestSnapshot();
            },
            IOException.class);
  }

  /**
   * Before Ratis installs a snapshot sent by the leader (this node fell behind a purged log), it
   * pauses the state machine; {@link #reinitialize()} then loads the installed snapshot. Ratis
   * checks that the life cycle is PAUSED at that point.
   */
  @Override
  public void pause() {
    installs.incrementAndGet();
    getLifeCycle().transition(org.apache.ratis.util.LifeCycle.State.PAUSING);
    getLifeCycle().transition(org.apache.ratis.util.LifeCycle.State.PAUSED);
  }

  /** Loads the latest snapshot (the one just installed from the leader) and resumes. */
  @Override
  public void reinitialize() throws IOException {
    loadLatestSnapshot();
    if (getLifeCycleState() == org.apache.ratis.util.LifeCycle.State.PAUSED) {
      getLifeCycle().transition(org.apache.ratis.util.LifeCycle.State.STARTING);
      getLifeCycle().transition(org.apache.ratis.util.LifeCycle.State.RUNNING);
    }
  }

  /** How many times Ratis paused this state machine to install a snapshot from the leader. */
  int snapshotInstalls() {
    return installs.get();
  }

  /** Removes snapshot files left half-written by a crash (they were never renamed). */
  private void deleteTemporarySnapshots() throws IOException {
    Path dir = storage.getSnapshotFile(0, 0).toPath().getParent();
    if (dir == null || !Files.isDirectory(dir)) {
      return;
    }
    try (java.util.stream.Stream<Path> files = Files.list(dir)) {
      for (Path f : (Iterable<Path>) files::iterator) {
        if (f.getFileName().toString().startsWith(TMP_PREFIX)) {
          Files.deleteIfExists(f);
        }
      }
    }
  }

  /** Loads the latest snapshot (at start, and after a snapshot was installed from the leader). */
  private void loadLatestSnapshot() throws IOException {
    SingleFileSnapshotInfo snapshot = storage.loadLatestSnapshot();
    if (snapshot == null) {
      return;
    }
    Path path = snapshot.getFile().getPath();
    if (!Files.exists(path)) {
      LOG.warn("{}: snapshot file {} does not exist", getId(), path);
      return;
    }
    MD5Hash md5 = snapshot.getFile().getFileDigest();
    if (md5 != null) {
      MD5FileUtil.verifySavedMD5(path.toFile(), md5);
    }
    TermIndex last = SimpleStateMachineStorage.getTermIndexFromSnapshotFile(path.toFile());
    ClusterMapSnapshot proto;
    try (InputStream in = Files.newInputStream(path)) {
      proto = ClusterMapSnapshot.parseFrom(in);
    }
    ClusterMap loaded = ClusterMap.fromSnapshot(proto);
    synchronized (this) {
      // Unconditional: Ratis sets its applied index to the snapshot's and re-applies from there.
      map = loaded;
      events.restore(proto.getEventsList(), proto.getNextEventSeq());
      setLastAppliedTermIndex(last);
    }
    LOG.info(
        "{}: loaded snapshot {} ({} members, {} volumes)",
        getId(),
        last,
        loaded.members().size(),
        loaded.volumes().size());
    notifyMap(loaded);
  }

  @Override
  public StateMachineStorage getStateMachineStorage() {
    return storage;
  }

  @Override
  public long takeSnapshot() throws IOException {
    ClusterMap m;
    TermIndex last;
    ClusterEventLog.Saved history;
    synchronized (this) {
      m = map;
      last = getLastAppliedTermIndex();
      history = events.save();
    }
    if (last == null || last.getIndex() < 0) {
      return -1;
    }
    File file = storage.getSnapshotFile(last.getTerm(), last.getIndex());
    Path target = file.toPath();
    Path tmp = target.resolveSibling(TMP_PREFIX + target.getFileName());
    byte[] bytes =
        m.toSnapshot(last.getTerm(), last.getIndex()).toBuilder()
            .addAllEvents(history.events())
            .setNextEventSeq(history.nextSeq())
            .build()
            .toByteArray();
    try (FileChannel ch =
        FileChannel.open(
            tmp,
            StandardOpenOption.CREATE,
            StandardOpenOption.TRUNCATE_EXISTING,
            StandardOpenOption.WRITE)) {
      OutputStream out = java.nio.channels.Channels.newOutputStream(ch);
      out.write(bytes);
      out.flush();
      ch.force(true);
    }
    Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    MD5Hash md5 = MD5FileUtil.computeAndSaveMd5ForFile(file);
    storage.updateLatestSnapshot(new SingleFileSnapshotInfo(new FileInfo(target, md5), last));
    LOG.debug("{}: took snapshot {} ({} bytes)", getId(), last, bytes.length);
    return last.getIndex();
  }

  // ---------------------------------------------------------------- transactions

  /** Rejects undecodable commands before they reach the log. */
  @Override
  public TransactionContext startTransaction(RaftClientRequest request) throws IOException {
    TransactionContext trx = super.startTransaction(request);
    try {
      MapCommand c = MapCommand.parseFrom(request.getMessage().getContent().toByteArray());
      if (c.getCommandCase() == MapCommand.CommandCase.COMMAND_NOT_SET) {
        trx.setException(new IllegalArgumentException("MapCommand without a command"));
      }
    } catch (com.google.protobuf.InvalidProtocolBufferException e) {
      trx.setException(new IllegalArgumentException("not a MapCommand", e));
    }
    return trx;
  }

  @Override
  public CompletableFuture<Message> applyTransaction(TransactionContext trx) {
    faults.hit(FaultPoints.MAP_APPLY, faultKey);
    LogEntryProto entry = trx.getLogEntry();
    TermIndex ti = TermIndex.valueOf(entry);
    ByteString data = entry.getStateMachineLogEntry().getLogData();
    MapCommand command;
    CommandResult result;
    ClusterMap before;
    ClusterMap after;
    try {
      command = MapCommand.parseFrom(data.asReadOnlyByteBuffer());
    } catch (com.google.protobuf.InvalidProtocolBufferException e) {
      command = MapCommand.getDefaultInstance();
    }
    synchronized (this) {
      before = map;
      ClusterMap.Applied applied = before.apply(command);
      after = applied.map();
      result = applied.result();
      map = after;
      events.append(ClusterEvents.of(ti.getIndex(), command, result, before, after));
      updateLastAppliedTermIndex(ti);
    }
    if (!result.getOk() && result.getError() == ClusterError.CLUSTER_ERROR_INVALID_ARGUMENT) {
      LOG.debug("{}: {} rejected: {}", getId(), ti, result.getMessage());
    }
    for (CommandListener l : commandListeners) {
      try {
        l.onApplied(ti.getIndex(), command, result, after);
      } catch (RuntimeException e) {
        LOG.warn("{}: command listener failed", getId(), e);
      }
    }
    if (after != before) {
      notifyMap(after);
    }
    return CompletableFuture.completedFuture(
        Message.valueOf(UnsafeByteOperations.unsafeWrap(result.toByteArray())));
  }

  /** Keeps the applied index consistent with the map for entries that are not commands. */
  @Override
  public synchronized void notifyTermIndexUpdated(long term, long index) {
    super.notifyTermIndexUpdated(term, index);
  }

  @Override
  public CompletableFuture<Message> query(Message request) {
    ClusterMap m;
    TermIndex last;
    synchronized (this) {
      m = map;
      last = getLastAppliedTermIndex();
    }
    long term = last == null ? 0 : last.getTerm();
    long index = last == null ? 0 : Math.max(0, last.getIndex());
    return CompletableFuture.completedFuture(
        Message.valueOf(UnsafeByteOperations.unsafeWrap(m.toSnapshot(term, index).toByteArray())));
  }

  @Override
  public void notifyLeaderChanged(RaftGroupMemberId groupMemberId, RaftPeerId newLeaderId) {
    Optional<String> leader = Optional.ofNullable(newLeaderId).map(RaftPeerId::toString);
    leaderId = leader;
    if (leaderListeners.isEmpty()) {
      return;
    }
    try {
      leaderEventExecutor.execute(
          () -> {
            for (Consumer<Optional<String>> l : leaderListeners) {
              try {
                l.accept(leader);
              } catch (RuntimeException e) {
                LOG.warn("leader listener failed", e);
              }
            }
          });
    } catch (java.util.concurrent.RejectedExecutionException e) {
      LOG.debug("leader change to {} after close", leader);
    }
  }

  private void notifyMap(ClusterMap m) {
    for (Consumer<ClusterMap> l : listeners) {
      try {
        l.accept(m);
      } catch (RuntimeException e) {
        LOG.warn("{}: map listener failed", getId(), e);
      }
    }
  }
}
