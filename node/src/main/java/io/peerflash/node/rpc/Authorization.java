package io.peerflash.node.rpc;

import io.grpc.ForwardingServerCall.SimpleForwardingServerCall;
import io.grpc.ForwardingServerCallListener.SimpleForwardingServerCallListener;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;
import io.peerflash.proto.v1.ClusterServiceGrpc;
import io.peerflash.proto.v1.ClusterStatus;
import io.peerflash.proto.v1.CreateVolumeRequest;
import io.peerflash.proto.v1.DeleteVolumeRequest;
import io.peerflash.proto.v1.FlushRequest;
import io.peerflash.proto.v1.ForwardedFlushRequest;
import io.peerflash.proto.v1.ForwardedIoServiceGrpc;
import io.peerflash.proto.v1.ForwardedReadRequest;
import io.peerflash.proto.v1.ForwardedWriteRequest;
import io.peerflash.proto.v1.ForwardedZeroRequest;
import io.peerflash.proto.v1.GetVolumeRequest;
import io.peerflash.proto.v1.ListVolumesResponse;
import io.peerflash.proto.v1.MoveVolumeRequest;
import io.peerflash.proto.v1.NodeServiceGrpc;
import io.peerflash.proto.v1.NodeStatus;
import io.peerflash.proto.v1.ReadRequest;
import io.peerflash.proto.v1.ReplicaServiceGrpc;
import io.peerflash.proto.v1.SetPolicyRequest;
import io.peerflash.proto.v1.TrimRequest;
import io.peerflash.proto.v1.VolumeServiceGrpc;
import io.peerflash.proto.v1.WriteRequest;
import io.peerflash.security.Audit;
import io.peerflash.security.Identities;
import io.peerflash.security.Identity;
import io.peerflash.security.Identity.Kind;
import io.peerflash.security.Identity.Role;
import java.util.HashMap;
import java.util.Map;
import java.util.function.Predicate;

/**
 * What each identity may call on a node's port, which clients and peers share. The identity comes
 * from the certificate of the call's TLS session ({@link Identities}); nothing in a request counts.
 *
 * <ul>
 *   <li>{@code admin}: everything a client can call: I/O on every volume, create, delete,
 *       set-policy, move, drain, remove and add nodes, status.
 *   <li>{@code io}: read, write, trim and flush of its volumes (all, or those its certificate names
 *       by name or prefix; read-only for data when the certificate says so), and status, stat and
 *       list, showing only its volumes.
 *   <li>{@code read-only}: status, stat and list; no data.
 *   <li>a node: the peer methods (replica copies, describing copies); a node of the current cluster
 *       map also a move another node forwards to the owner (that node checked the client's role;
 *       the audit line names the client). Replica copies are further checked against the map's
 *       owner by the replica service.
 *   <li>a node of the current cluster map (not a removed one, not a client): I/O another node's NBD
 *       front end forwards to the volume's owner ({@code ForwardedIoService}); that node checked
 *       the client's certificate and grant, and the request names the client for the audit log.
 * </ul>
 *
 * Every refusal and every administrative action is one audit line ({@link Audit}).
 */
public final class Authorization implements ServerInterceptor {
  /** What a method needs. */
  public enum Access {
    /** Any authenticated identity (health, reflection). */
    ANY,
    /** Status, stat and list: every client role; io sees only its volumes. */
    STATUS,
    /** Reading a volume's data: admin, io in scope. */
    DATA_READ,
    /** Changing a volume's data: admin, io in scope and not read-only for data. */
    DATA_WRITE,
    /** Changing volumes or the cluster: admin. */
    ADMIN,
    /** Admin, or a node forwarding a client's move to the owner. */
    MOVE,
    /** Nodes only: the peer methods. */
    NODE,
    /** Nodes the current cluster map names members: I/O forwarded for a client. */
    FORWARDED_IO
  }

  private static final Map<String, Access> METHODS = new HashMap<>();

  static {
    put(VolumeServiceGrpc.getCreateVolumeMethod().getFullMethodName(), Access.ADMIN);
    put(VolumeServiceGrpc.getDeleteVolumeMethod().getFullMethodName(), Access.ADMIN);
    put(VolumeServiceGrpc.getSetPolicyMethod().getFullMethodName(), Access.ADMIN);
    put(VolumeServiceGrpc.getGetVolumeMethod().getFullMethodName(), Access.STATUS);
    put(VolumeServiceGrpc.getListVolumesMethod().getFullMethodName(), Access.STATUS);
    put(VolumeServiceGrpc.getWriteMethod().getFullMethodName(), Access.DATA_WRITE);
    put(VolumeServiceGrpc.getWriteStreamMethod().getFullMethodName(), Access.DATA_WRITE);
    put(VolumeServiceGrpc.getTrimMethod().getFullMethodName(), Access.DATA_WRITE);
    put(VolumeServiceGrpc.getReadMethod().getFullMethodName(), Access.DATA_READ);
    put(VolumeServiceGrpc.getFlushMethod().getFullMethodName(), Access.DATA_READ);
    put(NodeServiceGrpc.getGetStatusMethod().getFullMethodName(), Access.STATUS);
    put(ClusterServiceGrpc.getGetClusterStatusMethod().getFullMethodName(), Access.STATUS);
    put(ClusterServiceGrpc.getListClusterEventsMethod().getFullMethodName(), Access.STATUS);
    put(ClusterServiceGrpc.getMoveVolumeMethod().getFullMethodName(), Access.MOVE);
    put(ClusterServiceGrpc.getDrainNodeMethod().getFullMethodName(), Access.ADMIN);
    put(ClusterServiceGrpc.getRemoveNodeMethod().getFullMethodName(), Access.ADMIN);
    put(ClusterServiceGrpc.getAddNodeMethod().getFullMethodName(), Access.ADMIN);
    put(ReplicaServiceGrpc.getReplicateMethod().getFullMethodName(), Access.NODE);
    put(ReplicaServiceGrpc.getDescribeCopiesMethod().getFullMethodName(), Access.NODE);
    put(ReplicaServiceGrpc.getSyncCopiesMethod().getFullMethodName(), Access.NODE);
    put(ReplicaServiceGrpc.getGetReplicaLinkMethod().getFullMethodName(), Access.NODE);
    put(ForwardedIoServiceGrpc.getReadMethod().getFullMethodName(), Access.FORWARDED_IO);
    put(ForwardedIoServiceGrpc.getWriteMethod().getFullMethodName(), Access.FORWARDED_IO);
    put(ForwardedIoServiceGrpc.getZeroMethod().getFullMethodName(), Access.FORWARDED_IO);
    put(ForwardedIoServiceGrpc.getFlushMethod().getFullMethodName(), Access.FORWARDED_IO);
  }

  private final Predicate<String> member;

  /** On a single node: no identity is a member of a cluster (forwarded I/O is refused). */
  public Authorization() {
    this(nodeId -> false);
  }

  /**
   * @param member whether the current cluster map names a node id a member (checked on every
   *     forwarded-I/O call and forwarded move, so a node removed from the map is cut off at its
   *     next call)
   */
  public Authorization(Predicate<String> member) {
    this.member = member;
  }

  private static void put(String method, Access access) {
    METHODS.put(method, access);
  }

  /** Services every authenticated identity may use: they carry no volume data or action. */
  private static boolean openService(String fullMethod) {
    return fullMethod.startsWith("grpc.health.v1.Health/")
        || fullMethod.startsWith("grpc.reflection.");
  }

  @Override
  public <Q, R> ServerCall.Listener<Q> interceptCall(
      ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next) {
    String method = call.getMethodDescriptor().getFullMethodName();
    String action = call.getMethodDescriptor().getBareMethodName();
    Identity who = Identities.current();
    if (who == null) {
      // The identity interceptor refuses such calls before this one; never serve one here.
      return deny(call, null, action, null, "no verified certificate");
    }
    Access access = openService(method) ? Access.ANY : METHODS.get(method);
    if (access == null) {
      return deny(call, who, action, null, "the method is not open to any identity");
    }
    String refusal = methodRefusal(who, access);
    if (refusal == null && access == Access.FORWARDED_IO && !member.test(who.name())) {
      refusal =
          who.describe()
              + " is not a member of the cluster map: only members may forward a client's I/O";
    }
    if (refusal == null
        && access == Access.MOVE
        && who.kind() == Kind.NODE
        && !member.test(who.name())) {
      refusal =
          who.describe()
              + " is not a member of the cluster map: only members may forward a client's move";
    }
    if (refusal != null) {
      // Refused whatever the request says; its first message only names the volume for the
      // audit line.
      return new DenyingListener<>(call, who, action, refusal);
    }
    ServerCall<Q, R> guarded = call;
    if (who.role() == Role.IO && access == Access.STATUS && scoped(who)) {
      guarded = new FilteringCall<>(call, who);
    }
    AuditedCall<Q, R> audited = null;
    if (access == Access.ADMIN || access == Access.MOVE) {
      audited = new AuditedCall<>(guarded, who, action);
      guarded = audited;
    }
    ServerCall.Listener<Q> listener = next.startCall(guarded, headers);
    if (audited != null || needsPerMessageCheck(who, access)) {
      return new CheckedListener<>(listener, guarded, audited, who, action, access);
    }
    return listener;
  }

  /** Why {@code who} may not call a method needing {@code access} at all, or null. */
  public static String methodRefusal(Identity who, Access access) {
    boolean node = who.kind() == Kind.NODE;
    Role role = who.role();
    return switch (access) {
      case ANY -> null;
      case NODE -> node ? null : who.describe() + " may not call a peer method: nodes only";
      case FORWARDED_IO ->
          node
              ? null
              : who.describe()
                  + " may not call a forwarded-I/O method: member nodes only (clients use"
                  + " VolumeService or NBD)";
      case STATUS -> node ? needs(who, "a client role") : null;
      case DATA_READ ->
          role == Role.ADMIN || role == Role.IO ? null : needs(who, "the io or admin role");
      case DATA_WRITE ->
          role == Role.ADMIN || (role == Role.IO && !who.dataReadOnly())
              ? null
              : needs(
                  who,
                  role == Role.IO ? "the io role without data:read-only" : "the io or admin role");
      case ADMIN -> role == Role.ADMIN ? null : needs(who, "the admin role");
      case MOVE -> role == Role.ADMIN || node ? null : needs(who, "the admin role");
    };
  }

  private static String needs(Identity who, String what) {
    return who.describe()
        + (who.kind() == Kind.NODE ? "" : " (role " + who.role().uriName() + ")")
        + " may not do this: it needs "
        + what;
  }

  private static boolean scoped(Identity who) {
    return !who.volumeNames().isEmpty() || !who.volumePrefixes().isEmpty();
  }

  /**
   * A scoped io identity's every request that names a volume (a stat included, so that a volume
   * outside its scope is refused the same way whether it exists or not), and a node's move.
   */
  private static boolean needsPerMessageCheck(Identity who, Access access) {
    return (who.role() == Role.IO && scoped(who))
        || (who.kind() == Kind.NODE && access == Access.MOVE);
  }

  /** The volume a request names, or null when it names none. */
  static String volumeOf(Object request) {
    if (request instanceof WriteRequest r) {
      return r.getVolume();
    } else if (request instanceof ReadRequest r) {
      return r.getVolume();
    } else if (request instanceof TrimRequest r) {
      return r.getVolume();
    } else if (request instanceof FlushRequest r) {
      return r.getVolume();
    } else if (request instanceof GetVolumeRequest r) {
      return r.getName();
    } else if (request instanceof MoveVolumeRequest r) {
      return r.getVolume();
    } else if (request instanceof CreateVolumeRequest r) {
      return r.getName();
    } else if (request instanceof DeleteVolumeRequest r) {
      return r.getName();
    } else if (request instanceof SetPolicyRequest r) {
      return r.getName();
    } else if (request instanceof ForwardedReadRequest r) {
      return r.getVolume();
    } else if (request instanceof ForwardedWriteRequest r) {
      return r.getVolume();
    } else if (request instanceof ForwardedZeroRequest r) {
      return r.getVolume();
    } else if (request instanceof ForwardedFlushRequest r) {
      return r.getVolume();
    }
    return null;
  }

  /**
   * The client a forwarded request (I/O, or a move) says it is for, as the forwarding node named
   * it, or null.
   */
  static String onBehalfOf(Object request) {
    String who = null;
    if (request instanceof ForwardedReadRequest r) {
      who = r.getOnBehalfOf();
    } else if (request instanceof ForwardedWriteRequest r) {
      who = r.getOnBehalfOf();
    } else if (request instanceof ForwardedZeroRequest r) {
      who = r.getOnBehalfOf();
    } else if (request instanceof ForwardedFlushRequest r) {
      who = r.getOnBehalfOf();
    } else if (request instanceof MoveVolumeRequest r && r.getForwarded()) {
      who = r.getOnBehalfOf();
    }
    return who == null || who.isEmpty() ? null : who;
  }

  /** What an administrative request acts on (a volume or a node), for the audit line. */
  static String targetOf(Object request) {
    if (request instanceof io.peerflash.proto.v1.DrainNodeRequest r) {
      // A cancelled drain is a different action on the same node: the audit line says which.
      return r.getCancel() ? r.getNode() + " (cancel)" : r.getNode();
    } else if (request instanceof io.peerflash.proto.v1.RemoveNodeRequest r) {
      return r.getNode();
    } else if (request instanceof io.peerflash.proto.v1.AddNodeRequest r) {
      return r.getNode();
    }
    return volumeOf(request);
  }

  private static <Q, R> ServerCall.Listener<Q> deny(
      ServerCall<Q, R> call, Identity who, String action, String volume, String why) {
    Audit.refused(who, action, volume, why);
    call.close(
        (who == null ? Status.UNAUTHENTICATED : Status.PERMISSION_DENIED).withDescription(why),
        new Metadata());
    return new ServerCall.Listener<>() {};
  }

  /** Refuses a call, after its first message (so the audit line names the volume). */
  private static final class DenyingListener<Q, R> extends ServerCall.Listener<Q> {
    private final ServerCall<Q, R> call;
    private final Identity who;
    private final String action;
    private final String why;
    private boolean done;

    DenyingListener(ServerCall<Q, R> call, Identity who, String action, String why) {
      this.call = call;
      this.who = who;
      this.action = action;
      this.why = why;
      call.request(1);
    }

    @Override
    public void onMessage(Q message) {
      String client = onBehalfOf(message);
      refuse(
          targetOf(message),
          client == null
              ? why
              : why + " (it claimed to forward for " + io.peerflash.util.Texts.quote(client) + ")");
    }

    @Override
    public void onHalfClose() {
      refuse(null, why);
    }

    private void refuse(String target, String reason) {
      if (!done) {
        done = true;
        deny(call, who, action, target, reason);
      }
    }
  }

  /** Checks every message: the volume against an io scope, a node's move being forwarded. */
  private static final class CheckedListener<Q, R> extends SimpleForwardingServerCallListener<Q> {
    private final ServerCall<Q, R> call;
    private final AuditedCall<Q, R> audited; // null: not an administrative action
    private final Identity who;
    private final String action;
    private final Access access;
    private boolean refused;

    CheckedListener(
        ServerCall.Listener<Q> delegate,
        ServerCall<Q, R> call,
        AuditedCall<Q, R> audited,
        Identity who,
        String action,
        Access access) {
      super(delegate);
      this.call = call;
      this.audited = audited;
      this.who = who;
      this.action = action;
      this.access = access;
    }

    @Override
    public void onMessage(Q message) {
      if (refused) {
        return;
      }
      if (audited != null) {
        audited.saw(message);
      }
      String volume = volumeOf(message);
      String why = null;
      if (who.kind() == Kind.NODE && access == Access.MOVE) {
        if (!(message instanceof MoveVolumeRequest m) || !m.getForwarded()) {
          why = who.describe() + " may only forward a client's move to the owner";
        }
      } else if (volume != null && who.role() == Role.IO && !who.volumeInScope(volume)) {
        why = who.describe() + " may not use volume " + io.peerflash.util.Texts.quote(volume);
      }
      if (why != null) {
        refused = true;
        Audit.refused(who, action, volume, why);
        call.close(Status.PERMISSION_DENIED.withDescription(why), new Metadata());
        return;
      }
      super.onMessage(message);
    }

    @Override
    public void onHalfClose() {
      if (!refused) {
        super.onHalfClose();
      }
    }
  }

  /**
   * Shows an io identity only the volumes in its scope in answers that list volumes (a request
   * naming a volume outside it is refused before it is served: {@link CheckedListener}).
   */
  private static final class FilteringCall<Q, R> extends SimpleForwardingServerCall<Q, R> {
    private final Identity who;

    FilteringCall(ServerCall<Q, R> delegate, Identity who) {
      super(delegate);
      this.who = who;
    }

    @Override
    @SuppressWarnings("unchecked")
    public void sendMessage(R message) {
      Object filtered = message;
      if (message instanceof ListVolumesResponse r) {
        ListVolumesResponse.Builder b = r.toBuilder().clearVolumes();
        r.getVolumesList().stream()
            .filter(v -> who.volumeInScope(v.getName()))
            .forEach(b::addVolumes);
        filtered = b.build();
      } else if (message instanceof NodeStatus s) {
        NodeStatus.Builder b = s.toBuilder().clearVolumes();
        s.getVolumesList().stream()
            .filter(v -> who.volumeInScope(v.getName()))
            .forEach(b::addVolumes);
        filtered = b.build();
      } else if (message instanceof ClusterStatus s) {
        ClusterStatus.Builder b = s.toBuilder().clearVolumes();
        s.getVolumesList().stream()
            .filter(v -> who.volumeInScope(v.getName()))
            .forEach(b::addVolumes);
        filtered = b.build();
      } else if (message instanceof io.peerflash.proto.v1.ListClusterEventsResponse r) {
        // Only its volumes' events: a member event's detail names the volumes the member owns
        // and replicates, so those are left out too.
        io.peerflash.proto.v1.ListClusterEventsResponse.Builder b = r.toBuilder().clearEvents();
        r.getEventsList().stream()
            .filter(e -> !e.getVolume().isEmpty() && who.volumeInScope(e.getVolume()))
            .forEach(b::addEvents);
        filtered = b.build();
      }
      super.sendMessage((R) filtered);
    }
  }

  /** One audit line per administrative action, with how it ended. */
  private static final class AuditedCall<Q, R> extends SimpleForwardingServerCall<Q, R> {
    private final Identity who;
    private final String action;
    private volatile String target;
    private volatile String onBehalfOf;

    AuditedCall(ServerCall<Q, R> delegate, Identity who, String action) {
      super(delegate);
      this.who = who;
      this.action = action;
    }

    void saw(Object request) {
      target = targetOf(request);
      if (request instanceof MoveVolumeRequest m && who.kind() == Kind.NODE) {
        onBehalfOf = m.getOnBehalfOf();
      }
    }

    @Override
    public void close(Status status, Metadata trailers) {
      Audit.action(who, onBehalfOf, action, target, status.getCode().name());
      super.close(status, trailers);
    }
  }
}
