package io.peerflash.cli;

import com.google.protobuf.BytesValue;
import com.google.protobuf.UnsafeByteOperations;
import io.grpc.CallOptions;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.StreamObserver;
import io.peerflash.bench.BenchResult;
import io.peerflash.bench.Echo;
import io.peerflash.bench.LoadDriver;
import io.peerflash.bench.Workload;
import io.peerflash.client.PeerFlashClient;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.function.Consumer;

/**
 * {@code peerflash bench --workload echo}: 4 KiB gRPC echoes against {@code bench echo-server}, the
 * floor every node workload is compared with.
 */
final class EchoBench {
  private final BenchCommand cmd;

  EchoBench(BenchCommand cmd) {
    this.cmd = cmd;
  }

  void run(PeerFlashCli cli, BenchCommand.Plan plan, List<BenchResult> results)
      throws InterruptedException {
    String target = PeerFlashClient.parseTargets(cmd.client.target).get(0);
    ManagedChannel channel = cli.benchChannel(target);
    try {
      BytesValue request = echoRequest(cmd.seed);
      // Fail fast when nothing answers there.
      Echo.call(channel, request);
      for (int qd : plan.depths()) {
        LoadDriver driver = new LoadDriver(cmd.settings(plan, Workload.ECHO, qd, null, 0));
        LoadDriver.Outcome o;
        String how;
        if (qd == 1 || plan.threads()) {
          how = qd == 1 ? "blocking unary" : qd + " threads, blocking unary";
          o = driver.runThreads(i -> Echo.call(channel, request), qd);
        } else if (plan.stream()) {
          how = "one bidi stream, pipelined";
          EchoStream s = new EchoStream(channel);
          try {
            o = driver.runPipelined((i, done) -> s.send(request, done), qd);
          } finally {
            s.close();
          }
        } else {
          how = "asynchronous unary, pipelined";
          o =
              driver.runPipelined(
                  (i, done) ->
                      ClientCalls.asyncUnaryCall(
                          channel.newCall(Echo.UNARY, CallOptions.DEFAULT),
                          request,
                          BenchCommand.observer(done)),
                  qd);
        }
        results.add(
            cmd.result(
                Workload.ECHO,
                qd,
                "grpc-echo",
                cmd.label != null
                    ? cmd.label
                    : "gRPC echo 4 KiB ("
                        + how
                        + (cmd.transport.isEmpty() ? "" : ", " + cmd.transport)
                        + ")",
                "",
                -1,
                o,
                cmd.runId(Workload.ECHO)));
      }
    } finally {
      channel.shutdownNow();
    }
  }

  static BytesValue echoRequest(long seed) {
    byte[] bytes = new byte[Workload.ECHO.blockBytes()];
    new SplittableRandom(seed).nextBytes(bytes);
    return BytesValue.newBuilder().setValue(UnsafeByteOperations.unsafeWrap(bytes)).build();
  }

  /** Pipelined echoes on one bidi stream; answers come back in order. */
  private static final class EchoStream {
    private final ClientCallStreamObserver<BytesValue> requests;
    private final ConcurrentLinkedQueue<Consumer<Throwable>> waiting =
        new ConcurrentLinkedQueue<>();

    EchoStream(ManagedChannel channel) {
      requests =
          (ClientCallStreamObserver<BytesValue>)
              ClientCalls.asyncBidiStreamingCall(
                  channel.newCall(Echo.STREAM, CallOptions.DEFAULT),
                  new StreamObserver<BytesValue>() {
                    @Override
                    public void onNext(BytesValue value) {
                      Consumer<Throwable> done = waiting.poll();
                      if (done != null) {
                        done.accept(null);
                      }
                    }

                    @Override
                    public void onError(Throwable t) {
                      for (Consumer<Throwable> d; (d = waiting.poll()) != null; ) {
                        d.accept(t);
                      }
                    }

                    @Override
                    public void onCompleted() {
                      onError(Status.UNAVAILABLE.withDescription("stream ended").asException());
                    }
                  });
    }

    void send(BytesValue request, Consumer<Throwable> done) {
      synchronized (this) {
        waiting.add(done);
        requests.onNext(request);
      }
    }

    void close() {
      synchronized (this) {
        requests.onCompleted();
      }
    }
  }
}
