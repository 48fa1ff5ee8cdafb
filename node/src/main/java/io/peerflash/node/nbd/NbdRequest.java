package io.peerflash.node.nbd;

import io.grpc.netty.shaded.io.netty.buffer.ByteBuf;

/**
 * One decoded transmission-phase request.
 *
 * @param payload a write's data (released by whoever handles the request), else null
 * @param refusal non-null for a request refused while decoding (e.g. a write larger than {@link
 *     NbdProtocol#MAX_PAYLOAD_BYTES}, whose data was skipped): it is answered with this error
 */
record NbdRequest(
    int flags, int type, long handle, long offset, long length, ByteBuf payload, String refusal) {}
