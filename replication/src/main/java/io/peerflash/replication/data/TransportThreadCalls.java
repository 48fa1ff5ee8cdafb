package io.peerflash.replication.data;

import io.grpc.Context;
import io.grpc.Metadata;
import io.grpc.ServerBuilder;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;
import java.util.Objects;
import java.util.Queue;
import java.util.Set;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;

/**
 * Serves the named methods' calls on the transport thread that read them and every other call on a
 * pool. Only for handlers that never block on the transport thread and hand any waiting work to a
 * pool themselves: each of their calls then needs no thread hand-off at all.
 *
 * <p>Why not {@code ServerBuilder.callExecutor}: gRPC runs every call's method lookup on the
 * server's executor before it consults that supplier, so each call would still wake a pool thread
 * (and a unary call's message usually arrives while that thread runs, so it is served there). A
 * server with {@code directExecutor()} skips that, and also lets the transport thread deframe
 * messages itself; this interceptor moves the other calls to the pool instead.
 */
public final class TransportThreadCalls implements ServerInterceptor {
  private final Set<String> onTransportThread;
  private final Executor pool;

  private TransportThreadCalls(Executor pool, Set<String> onTransportThread) {
    this.pool = Objects.requireNonNull(pool, "pool");
    this.onTransportThread = onTransportThread;
  }

  /**
   * Makes {@code builder} serve the methods named (full names) on the transport thread and every
   * other call, of any service added to it, on {@code pool}.
   */
  public static void serve(ServerBuilder<?> builder, Executor pool, String... fullMethodNames) {
    builder.directExecutor().intercept(new TransportThreadCalls(pool, Set.of(fullMethodNames)));
  }

  @Override
  public <ReqT, RespT> ServerCall.Listener<ReqT> interceptCall(
      ServerCall<ReqT, RespT> call, Metadata headers, ServerCallHandler<ReqT, RespT> next) {
    if (onTransportThread.contains(call.getMethodDescriptor().getFullMethodName())) {
      return next.startCall(call, headers);
    }
    OnPool<ReqT, RespT> listener = new OnPool<>(call, pool, Context.current());
    listener.submit(() -> listener.delegate = next.startCall(call, headers));
    return listener;
  }

  /**
   * One call's callbacks, run on the pool one at a time and in the order the transport delivered
   * them (the order gRPC promises a listener), each in the call's context.
   */
  private static final class OnPool<ReqT, RespT> extends ServerCall.Listener<ReqT>
      implements Runnable {
    private final ServerCall<ReqT, RespT> call;
    private final Executor pool;
    private final Context context;
    private final Queue<Runnable> tasks = new ConcurrentLinkedQueue<>();
    private final AtomicBoolean scheduled = new AtomicBoolean();
    // Written by the first task, read by later ones on the same serial queue; stays null when
    // the handler failed to start, and later callbacks are then dropped.
    private ServerCall.Listener<ReqT> delegate;

    OnPool(ServerCall<ReqT, RespT> call, Executor pool, Context context) {
      this.call = call;
      this.pool = pool;
      this.context = context;
    }

    void submit(Runnable task) {
      tasks.add(task);
      if (scheduled.compareAndSet(false, true)) {
        try {
          pool.execute(this);
        } catch (RuntimeException e) { // the pool is shut down or saturated
          scheduled.set(false);
          tasks.clear();
          closeQuietly(Status.UNAVAILABLE.withDescription("server is shutting down").withCause(e));
        }
      }
    }

    @Override
    public void run() {
      do {
        for (Runnable task; (task = tasks.poll()) != null; ) {
          Context previous = context.attach();
          try {
            task.run();
          } catch (RuntimeException | Error e) {
            // As gRPC does with a handler that throws: the call ends, the server goes on.
            closeQuietly(Status.INTERNAL.withDescription("call handler failed").withCause(e));
          } finally {
            context.detach(previous);
          }
        }
        scheduled.set(false);
        // A callback queued after the poll above but before the flag was cleared found it set.
      } while (!tasks.isEmpty() && scheduled.compareAndSet(false, true));
    }

    private void closeQuietly(Status status) {
      try {
        call.close(status, new Metadata());
      } catch (IllegalStateException alreadyClosed) {
        // The handler closed it before failing.
      }
    }

    private void deliver(Consumer<ServerCall.Listener<ReqT>> callback) {
      submit(
          () -> {
            if (delegate != null) {
              callback.accept(delegate);
            }
          });
    }

    @Override
    public void onMessage(ReqT message) {
      deliver(l -> l.onMessage(message));
    }

    @Override
    public void onHalfClose() {
      deliver(ServerCall.Listener::onHalfClose);
    }

    @Override
    public void onCancel() {
      deliver(ServerCall.Listener::onCancel);
    }

    @Override
    public void onComplete() {
      deliver(ServerCall.Listener::onComplete);
    }

    @Override
    public void onReady() {
      deliver(ServerCall.Listener::onReady);
    }
  }
}
