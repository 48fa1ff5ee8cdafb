package io.peerflash.node.index;

import io.peerflash.node.index.KeyValueStorage.Batch;
import io.peerflash.node.index.KeyValueStorage.Table;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/** Durable volume definitions of this node. Every change is synced: they are rare and precious. */
public final class VolumeCatalog {
  private static final byte[] NEXT_ID = "next-volume-id".getBytes(StandardCharsets.UTF_8);

  private final KeyValueStorage kv;
  private long nextId;

  public VolumeCatalog(KeyValueStorage kv) throws IOException {
    this.kv = kv;
    byte[] v = kv.get(Table.META, NEXT_ID);
    this.nextId = v == null ? 1 : Bytes.getLong(v, 0);
  }

  public List<VolumeInfo> loadAll() throws IOException {
    List<VolumeInfo> all = new ArrayList<>();
    kv.scan(
        Table.VOLUMES,
        new byte[0],
        (k, v) -> {
          all.add(VolumeInfo.decode(v));
          return true;
        });
    return all;
  }

  /** Allocates an id and stores the definition. */
  public synchronized VolumeInfo create(
      String name, long sizeBytes, VolumeInfo.CacheMode mode, int replicas) throws IOException {
    VolumeInfo info =
        new VolumeInfo(nextId, name, sizeBytes, mode, replicas, VolumeInfo.Role.OWNER);
    byte[] next = new byte[8];
    Bytes.putLong(next, 0, nextId + 1);
    kv.write(
        new Batch().put(Table.VOLUMES, key(name), info.encode()).put(Table.META, NEXT_ID, next),
        true);
    nextId++;
    return info;
  }

  /** Stores a definition whose id was assigned elsewhere (the cluster map). */
  public void put(VolumeInfo info) throws IOException {
    update(info);
  }

  public void update(VolumeInfo info) throws IOException {
    kv.write(new Batch().put(Table.VOLUMES, key(info.name()), info.encode()), true);
  }

  /** Removes the definition; block entries left behind are dropped at the next start. */
  public void delete(VolumeInfo info, Batch alsoApply) throws IOException {
    Batch b = new Batch().delete(Table.VOLUMES, key(info.name()));
    b.append(alsoApply);
    kv.write(b, true);
  }

  private static byte[] key(String name) {
    return name.getBytes(StandardCharsets.UTF_8);
  }
}
