package io.peerflash.replication.data;

import java.nio.ByteBuffer;

/**
 * One version of one block of a volume, as an owner sends it to its replicas: the one type for a
 * block copy from the write path to a replica's store; converted to a wire message only at the RPC
 * edge.
 *
 * @param block the block's number in its volume (4 KiB blocks)
 * @param seq the version: the owner's sequence number, which orders the volume's writes
 * @param data exactly 4 KiB, or null for a zero (trimmed) block
 */
public record BlockCopy(long block, long seq, ByteBuffer data) {}
