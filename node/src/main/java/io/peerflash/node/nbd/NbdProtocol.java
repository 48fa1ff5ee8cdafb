package io.peerflash.node.nbd;

/**
 * The numbers of the NBD protocol (NetworkBlockDevice/nbd {@code doc/proto.md}) that this server
 * speaks: the fixed newstyle handshake, option haggling, and the transmission phase with simple and
 * structured replies. Every value is big-endian on the wire.
 */
final class NbdProtocol {
  private NbdProtocol() {}

  // Handshake
  static final long NBDMAGIC = 0x4e42444d41474943L; // "NBDMAGIC"
  static final long IHAVEOPT = 0x49484156454F5054L; // "IHAVEOPT"
  static final long OPTION_REPLY_MAGIC = 0x0003e889045565a9L;

  static final int FLAG_FIXED_NEWSTYLE = 1;
  static final int FLAG_NO_ZEROES = 1 << 1;
  static final int CLIENT_FLAG_FIXED_NEWSTYLE = 1;
  static final int CLIENT_FLAG_NO_ZEROES = 1 << 1;

  // Options
  static final int OPT_EXPORT_NAME = 1;
  static final int OPT_ABORT = 2;
  static final int OPT_LIST = 3;
  static final int OPT_STARTTLS = 5;
  static final int OPT_INFO = 6;
  static final int OPT_GO = 7;
  static final int OPT_STRUCTURED_REPLY = 8;
  static final int OPT_LIST_META_CONTEXT = 9;
  static final int OPT_SET_META_CONTEXT = 10;

  // Option replies
  static final int REP_ACK = 1;
  static final int REP_SERVER = 2;
  static final int REP_INFO = 3;
  static final int REP_META_CONTEXT = 4;
  static final int REP_ERR_UNSUP = 0x80000001;
  static final int REP_ERR_POLICY = 0x80000002;
  static final int REP_ERR_INVALID = 0x80000003;
  static final int REP_ERR_TLS_REQD = 0x80000005;
  static final int REP_ERR_UNKNOWN = 0x80000006;

  // NBD_OPT_INFO / GO information types
  static final int INFO_EXPORT = 0;
  static final int INFO_NAME = 1;
  static final int INFO_DESCRIPTION = 2;
  static final int INFO_BLOCK_SIZE = 3;

  // Transmission flags
  static final int TF_HAS_FLAGS = 1;
  static final int TF_READ_ONLY = 1 << 1;
  static final int TF_SEND_FLUSH = 1 << 2;
  static final int TF_SEND_FUA = 1 << 3;
  static final int TF_SEND_TRIM = 1 << 5;
  static final int TF_SEND_WRITE_ZEROES = 1 << 6;
  static final int TF_SEND_DF = 1 << 7;
  static final int TF_CAN_MULTI_CONN = 1 << 8;
  static final int TF_SEND_CACHE = 1 << 10;
  static final int TF_SEND_FAST_ZERO = 1 << 11;

  // Requests
  static final int REQUEST_MAGIC = 0x25609513;
  static final int REQUEST_HEADER_BYTES = 28;
  static final int CMD_FLAG_FUA = 1;
  static final int CMD_FLAG_NO_HOLE = 1 << 1;
  static final int CMD_FLAG_DF = 1 << 2;
  static final int CMD_FLAG_REQ_ONE = 1 << 3;
  static final int CMD_FLAG_FAST_ZERO = 1 << 4;

  static final int CMD_READ = 0;
  static final int CMD_WRITE = 1;
  static final int CMD_DISC = 2;
  static final int CMD_FLUSH = 3;
  static final int CMD_TRIM = 4;
  static final int CMD_CACHE = 5;
  static final int CMD_WRITE_ZEROES = 6;
  static final int CMD_BLOCK_STATUS = 7;

  // Replies
  static final int SIMPLE_REPLY_MAGIC = 0x67446698;
  static final int STRUCTURED_REPLY_MAGIC = 0x668e33ef;
  static final int REPLY_FLAG_DONE = 1;
  static final int REPLY_TYPE_NONE = 0;
  static final int REPLY_TYPE_OFFSET_DATA = 1;
  static final int REPLY_TYPE_OFFSET_HOLE = 2;
  static final int REPLY_TYPE_BLOCK_STATUS = 5;
  static final int REPLY_TYPE_ERROR = (1 << 15) + 1;

  // base:allocation
  static final String BASE_ALLOCATION = "base:allocation";
  static final int BASE_ALLOCATION_ID = 1;
  static final int STATE_HOLE = 1;
  static final int STATE_ZERO = 1 << 1;

  // Errors (the protocol's values, which are Linux errno values)
  static final int EPERM = 1;
  static final int EIO = 5;
  static final int ENOMEM = 12;
  static final int EINVAL = 22;
  static final int ENOSPC = 28;
  static final int EOVERFLOW = 75;
  static final int ENOTSUP = 95;
  static final int ESHUTDOWN = 108;

  // Sizes
  static final int MIN_BLOCK_BYTES = 512;
  static final int PREFERRED_BLOCK_BYTES = 4096;

  /**
   * The largest request payload: the 32 MiB a client may send without negotiating block sizes (what
   * libnbd and qemu assume), split into engine calls of at most 1 MiB.
   */
  static final int MAX_PAYLOAD_BYTES = 32 << 20;

  /** An option's data larger than this is refused and the connection closed. */
  static final int MAX_OPTION_BYTES = 64 << 10;

  static String commandName(int type) {
    return switch (type) {
      case CMD_READ -> "read";
      case CMD_WRITE -> "write";
      case CMD_DISC -> "disconnect";
      case CMD_FLUSH -> "flush";
      case CMD_TRIM -> "trim";
      case CMD_CACHE -> "cache";
      case CMD_WRITE_ZEROES -> "write-zeroes";
      case CMD_BLOCK_STATUS -> "block-status";
      default -> "command " + type;
    };
  }
}
