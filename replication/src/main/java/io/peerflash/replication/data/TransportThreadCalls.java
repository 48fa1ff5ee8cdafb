package io.peerflash.replication.data;

import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallExecutorSupplier;
import java.util.Set;
import java.util.concurrent.Executor;

/**
 * For {@code ServerBuilder.callExecutor}: the named methods' calls are delivered on the transport
 * thread that read them, every other call on the server's executor. Only for handlers that never
 * block there and hand any waiting work to a pool themselves: each delivery then saves a thread
 * hand-off.
 */
public final class TransportThreadCalls {
  private TransportThreadCalls() {}

  public static ServerCallExecutorSupplier forMethods(String... fullMethodNames) {
    Set<String> methods = Set.of(fullMethodNames);
    Executor transportThread = Runnable::run;
    return new ServerCallExecutorSupplier() {
      @Override
      public <ReqT, RespT> Executor getExecutor(ServerCall<ReqT, RespT> call, Metadata headers) {
        return methods.contains(call.getMethodDescriptor().getFullMethodName())
            ? transportThread
            : null;
      }
    };
  }
}
