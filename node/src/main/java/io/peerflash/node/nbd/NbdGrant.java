package io.peerflash.node.nbd;

import io.peerflash.node.rpc.Authorization;
import io.peerflash.node.rpc.Authorization.Access;
import io.peerflash.security.Identity;
import io.peerflash.util.Texts;

/**
 * What a client may do with a volume over NBD, decided as the gRPC API decides it ({@link
 * Authorization}): reading needs the {@code io} or {@code admin} role and the volume in the
 * certificate's scope; writing also needs a grant that is not read-only for data. A connection
 * without an identity (the Unix socket, guarded by its file permissions, or a node run with {@code
 * insecure=true}) may do everything.
 */
final class NbdGrant {
  private NbdGrant() {}

  /** Why {@code who} may not use {@code volume} at all, or null when it may. */
  static String refusal(Identity who, String volume) {
    if (who == null) {
      return null;
    }
    String why = Authorization.methodRefusal(who, Access.DATA_READ);
    if (why != null) {
      return why;
    }
    if (who.role() == Identity.Role.IO && !who.volumeInScope(volume)) {
      return who.describe() + " may not use volume " + Texts.quote(volume);
    }
    return null;
  }

  /** Whether {@code who} may only read (the export is then offered read-only). */
  static boolean readOnly(Identity who) {
    return who != null && Authorization.methodRefusal(who, Access.DATA_WRITE) != null;
  }
}
