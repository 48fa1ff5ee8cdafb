package io.peerflash.client;

import com.google.protobuf.ByteString;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import io.peerflash.proto.v1.CreateVolumeRequest;
import io.peerflash.proto.v1.DeleteVolumeRequest;
import io.peerflash.proto.v1.DeleteVolumeResponse;
import io.peerflash.proto.v1.FlushRequest;
import io.peerflash.proto.v1.FlushResponse;
import io.peerflash.proto.v1.GetStatusRequest;
import io.peerflash.proto.v1.GetVolumeRequest;
import io.peerflash.proto.v1.ListVolumesRequest;
import io.peerflash.proto.v1.ListVolumesResponse;
import io.peerflash.proto.v1.NodeServiceGrpc;
import io.peerflash.proto.v1.NodeStatus;
import io.peerflash.proto.v1.ReadRequest;
import io.peerflash.proto.v1.ReadResponse;
import io.peerflash.proto.v1.SetPolicyRequest;
import io.peerflash.proto.v1.TrimRequest;
import io.peerflash.proto.v1.TrimResponse;
import io.peerflash.proto.v1.Volume;
import io.peerflash.proto.v1.VolumeServiceGrpc;
import io.peerflash.proto.v1.VolumeState;
import io.peerflash.proto.v1.WriteRequest;
import io.peerflash.proto.v1.WriteResponse;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * An in-memory stand-in for a node's VolumeService and NodeService, enforcing the contract's
 * argument rules, so client and CLI tests can run without the cache engine.
 */
public final class FakeVolumeService extends VolumeServiceGrpc.VolumeServiceImplBase {
  private static final int MAX_IO_BYTES = 1 << 20;

  private final Map<String, Volume> volumes = new LinkedHashMap<>();
  private final Map<String, byte[]> contents = new LinkedHashMap<>();

  /** Writes received over WriteStream (as opposed to unary Write). */
  public final AtomicInteger streamedWrites = new AtomicInteger();

  /** Reads received. */
  public final AtomicInteger reads = new AtomicInteger();

  /** How long Flush takes, to exercise the CLI's progress display. */
  public volatile long flushDelayMs;

  /** How many status calls are answered as a fenced node's (not yet serving), before serving. */
  public volatile int fencedStatusCalls;

  private final AtomicInteger statusCalls = new AtomicInteger();

  public final NodeServiceGrpc.NodeServiceImplBase nodeService =
      new NodeServiceGrpc.NodeServiceImplBase() {
        @Override
        public void getStatus(GetStatusRequest request, StreamObserver<NodeStatus> response) {
          int call = statusCalls.incrementAndGet();
          int fenced = fencedStatusCalls;
          if (fenced > 0 && call == fenced + 1) {
            System.out.println("fake node: serving after " + fenced + " fenced status answers");
            System.out.flush();
          }
          List<Volume> all;
          synchronized (FakeVolumeService.this) {
            all = new ArrayList<>(volumes.values());
          }
          long dirty = all.stream().mapToLong(Volume::getDirtyBytes).sum();
          response.onNext(
              NodeStatus.newBuilder()
                  .setNodeId("fake-node")
                  .setCacheSizeBytes(256L << 20)
                  .setCacheUsedBytes(dirty)
                  .setDirtyBytes(dirty)
                  .setReadHits(3)
                  .setReadMisses(1)
                  .setHitRate(0.75)
                  .setFencedReason(call <= fenced ? "no valid lease yet (fake)" : "")
                  .addAllVolumes(all)
                  .build());
          response.onCompleted();
        }
      };

  @Override
  public void createVolume(CreateVolumeRequest request, StreamObserver<Volume> response) {
    Volume v;
    synchronized (this) {
      if (volumes.containsKey(request.getName())) {
        response.onError(
            Status.ALREADY_EXISTS
                .withDescription("volume " + request.getName() + " exists")
                .asRuntimeException());
        return;
      }
      if (request.getSizeBytes() == 0 || request.getSizeBytes() % 4096 != 0) {
        response.onError(
            Status.INVALID_ARGUMENT
                .withDescription("size must be a positive multiple of 4 KiB")
                .asRuntimeException());
        return;
      }
      v =
          Volume.newBuilder()
              .setName(request.getName())
              .setSizeBytes(request.getSizeBytes())
              .setPolicy(request.getPolicy())
              .setState(VolumeState.HEALTHY)
              .build();
      volumes.put(v.getName(), v);
      contents.put(v.getName(), new byte[Math.toIntExact(request.getSizeBytes())]);
    }
    response.onNext(v);
    response.onCompleted();
  }

  @Override
  public void getVolume(GetVolumeRequest request, StreamObserver<Volume> response) {
    Volume v;
    synchronized (this) {
      v = volumes.get(request.getName());
    }
    if (v == null) {
      response.onError(notFound(request.getName()));
      return;
    }
    response.onNext(v);
    response.onCompleted();
  }

  @Override
  public synchronized void listVolumes(
      ListVolumesRequest request, StreamObserver<ListVolumesResponse> response) {
    response.onNext(ListVolumesResponse.newBuilder().addAllVolumes(volumes.values()).build());
    response.onCompleted();
  }

  @Override
  public synchronized void deleteVolume(
      DeleteVolumeRequest request, StreamObserver<DeleteVolumeResponse> response) {
    if (volumes.remove(request.getName()) == null) {
      response.onError(notFound(request.getName()));
      return;
    }
    contents.remove(request.getName());
    response.onNext(DeleteVolumeResponse.getDefaultInstance());
    response.onCompleted();
  }

  @Override
  public synchronized void setPolicy(SetPolicyRequest request, StreamObserver<Volume> response) {
    Volume v = volumes.get(request.getName());
    if (v == null) {
      response.onError(notFound(request.getName()));
      return;
    }
    v = v.toBuilder().setPolicy(request.getPolicy()).setDirtyBytes(0).build();
    volumes.put(v.getName(), v);
    response.onNext(v);
    response.onCompleted();
  }

  @Override
  public void write(WriteRequest request, StreamObserver<WriteResponse> response) {
    Status status = apply(request);
    if (!status.isOk()) {
      response.onError(status.asRuntimeException());
      return;
    }
    response.onNext(WriteResponse.newBuilder().setRequestId(request.getRequestId()).build());
    response.onCompleted();
  }

  @Override
  public StreamObserver<WriteRequest> writeStream(StreamObserver<WriteResponse> response) {
    return new StreamObserver<>() {
      @Override
      public void onNext(WriteRequest request) {
        streamedWrites.incrementAndGet();
        Status status = apply(request);
        WriteResponse.Builder r =
            WriteResponse.newBuilder()
                .setRequestId(request.getRequestId())
                .setCode(status.getCode().value());
        if (status.getDescription() != null) {
          r.setMessage(status.getDescription());
        }
        response.onNext(r.build());
      }

      @Override
      public void onError(Throwable t) {}

      @Override
      public void onCompleted() {
        response.onCompleted();
      }
    };
  }

  @Override
  public void read(ReadRequest request, StreamObserver<ReadResponse> response) {
    reads.incrementAndGet();
    ByteString data;
    synchronized (this) {
      Status status = check(request.getVolume(), request.getOffset(), request.getLength());
      if (!status.isOk()) {
        response.onError(status.asRuntimeException());
        return;
      }
      data =
          ByteString.copyFrom(
              contents.get(request.getVolume()),
              (int) request.getOffset(),
              (int) request.getLength());
    }
    response.onNext(ReadResponse.newBuilder().setData(data).build());
    response.onCompleted();
  }

  @Override
  public void flush(FlushRequest request, StreamObserver<FlushResponse> response) {
    Volume v;
    synchronized (this) {
      v = volumes.get(request.getVolume());
    }
    if (v == null) {
      response.onError(notFound(request.getVolume()));
      return;
    }
    try {
      Thread.sleep(flushDelayMs);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    synchronized (this) {
      volumes.put(v.getName(), volumes.get(v.getName()).toBuilder().setDirtyBytes(0).build());
    }
    response.onNext(FlushResponse.newBuilder().setDestagedBytes(v.getDirtyBytes()).build());
    response.onCompleted();
  }

  @Override
  public synchronized void trim(TrimRequest request, StreamObserver<TrimResponse> response) {
    Volume v = volumes.get(request.getVolume());
    if (v == null) {
      response.onError(notFound(request.getVolume()));
      return;
    }
    Arrays.fill(
        contents.get(v.getName()),
        (int) request.getOffset(),
        (int) (request.getOffset() + request.getLength()),
        (byte) 0);
    response.onNext(TrimResponse.getDefaultInstance());
    response.onCompleted();
  }

  /** A copy of a volume's bytes. */
  public synchronized byte[] contents(String volume) {
    return contents.get(volume).clone();
  }

  private synchronized Status apply(WriteRequest request) {
    Status status = check(request.getVolume(), request.getOffset(), request.getData().size());
    if (!status.isOk()) {
      return status;
    }
    request.getData().copyTo(contents.get(request.getVolume()), (int) request.getOffset());
    Volume v = volumes.get(request.getVolume());
    volumes.put(
        v.getName(),
        v.toBuilder().setDirtyBytes(v.getDirtyBytes() + request.getData().size()).build());
    return Status.OK;
  }

  private Status check(String volume, long offset, long length) {
    Volume v = volumes.get(volume);
    if (v == null) {
      return Status.NOT_FOUND.withDescription("no volume named " + volume);
    }
    if (offset % 512 != 0 || length % 512 != 0 || length > MAX_IO_BYTES) {
      return Status.INVALID_ARGUMENT.withDescription(
          "offset and length must be multiples of 512 and length at most 1 MiB");
    }
    if (offset + length > v.getSizeBytes()) {
      return Status.OUT_OF_RANGE.withDescription("beyond the end of " + volume);
    }
    return Status.OK;
  }

  private static RuntimeException notFound(String volume) {
    return Status.NOT_FOUND.withDescription("no volume named " + volume).asRuntimeException();
  }
}
