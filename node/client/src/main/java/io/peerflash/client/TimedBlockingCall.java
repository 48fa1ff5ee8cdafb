package io.peerflash.client;

import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.Deadline;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ClientCalls;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executor;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

/**
 * A blocking unary call whose deadline the calling thread keeps itself, for the block I/O calls.
 *
 * <p>A gRPC deadline arms a timer on the channel's event loop for every call (waking it when the
 * call starts from another thread), sends the server a {@code grpc-timeout} header, and the server
 * arms a timer and a cancellable context of its own. A 4 KiB echo at QD1 took 100 us p50 with a 5 s
 * deadline and 88 us without (same processes, alternating). Here the thread that waits for the
 * answer also watches the time: a parked thread with a timeout costs nothing extra. When the time
 * runs out the call is cancelled (the server sees the cancellation, as with an expired gRPC
 * deadline) and {@link Status.Code#DEADLINE_EXCEEDED} is thrown.
 *
 * <p>Like gRPC's blocking stubs, the call's callbacks run on the waiting thread, not on a pool: the
 * transport thread queues them and unparks the waiter (one hand-off, the least a blocking call
 * needs). Nodes do not read client deadlines: every wait of theirs is bounded by their own
 * configuration.
 */
final class TimedBlockingCall implements Executor {
  private final ConcurrentLinkedQueue<Runnable> callbacks = new ConcurrentLinkedQueue<>();
  private final Thread waiter = Thread.currentThread();

  private TimedBlockingCall() {}

  /**
   * Calls {@code method} and waits for its answer until {@code deadline} (null: without bound).
   *
   * @throws StatusRuntimeException the call's failure; {@link Status.Code#DEADLINE_EXCEEDED} when
   *     no answer came in time, {@link Status.Code#CANCELLED} when the thread was interrupted (its
   *     interrupt flag is then set again)
   */
  static <ReqT, RespT> RespT call(
      Channel channel, MethodDescriptor<ReqT, RespT> method, ReqT request, Deadline deadline) {
    if (deadline == null) {
      return ClientCalls.blockingUnaryCall(channel, method, CallOptions.DEFAULT, request);
    }
    TimedBlockingCall executor = new TimedBlockingCall();
    ClientCall<ReqT, RespT> call =
        channel.newCall(method, CallOptions.DEFAULT.withExecutor(executor));
    // (futureUnaryCall cancels the call itself if starting it throws.)
    Future<RespT> answer = ClientCalls.futureUnaryCall(call, request);
    try {
      while (!answer.isDone()) {
        long leftNanos = deadline.timeRemaining(TimeUnit.NANOSECONDS);
        if (leftNanos <= 0) {
          call.cancel("the client's deadline passed", null);
          throw Status.DEADLINE_EXCEEDED
              .withDescription(
                  "no answer from "
                      + channel.authority()
                      + " to "
                      + method.getBareMethodName()
                      + " before the deadline")
              .asRuntimeException();
        }
        executor.runCallbacksOrPark(leftNanos);
        if (Thread.interrupted()) {
          call.cancel("the calling thread was interrupted", null);
          Thread.currentThread().interrupt();
          throw Status.CANCELLED
              .withDescription("the calling thread was interrupted")
              .asRuntimeException();
        }
      }
      return answer.get();
    } catch (InterruptedException e) {
      // (Not reached: the answer is done before get() is called.)
      Thread.currentThread().interrupt();
      throw Status.CANCELLED.withCause(e).asRuntimeException();
    } catch (ExecutionException e) {
      throw Status.fromThrowable(e.getCause())
          .asRuntimeException(Status.trailersFromThrowable(e.getCause()));
    }
  }

  /** Runs the queued callbacks; parks (at most {@code nanos}) if there were none. */
  private void runCallbacksOrPark(long nanos) {
    Runnable r = callbacks.poll();
    if (r == null) {
      LockSupport.parkNanos(this, nanos);
      r = callbacks.poll();
    }
    while (r != null) {
      r.run();
      r = callbacks.poll();
    }
  }

  /**
   * Queues a callback for the waiting thread. Callbacks that arrive after the waiter gave up (its
   * call cancelled) are never run; they only complete a future nobody reads.
   */
  @Override
  public void execute(Runnable callback) {
    callbacks.add(callback);
    LockSupport.unpark(waiter);
  }
}
