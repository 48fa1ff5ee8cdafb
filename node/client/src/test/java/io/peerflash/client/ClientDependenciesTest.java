package io.peerflash.client;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The client library's test classpath is its dependency tree: none of the server's dependencies may
 * be on it, so an application embedding the client gets gRPC and protobuf, not RocksDB or Ratis.
 */
class ClientDependenciesTest {
  @ParameterizedTest
  @ValueSource(
      strings = {
        "org.rocksdb.RocksDB", // the node's index
        "org.apache.ratis.server.RaftServer", // the cluster map
        "picocli.CommandLine", // the CLI
        "ch.qos.logback.classic.Logger", // a logging backend is the application's choice
        "io.peerflash.replication.data.PeerReplicator",
        "io.peerflash.node.PeerFlashNode"
      })
  void serverClassesAreNotOnTheClasspath(String className) {
    assertThatThrownBy(() -> Class.forName(className, false, getClass().getClassLoader()))
        .isInstanceOf(ClassNotFoundException.class);
  }

  @ParameterizedTest
  @ValueSource(
      strings = {
        "io.peerflash.client.PeerFlashClient",
        "io.peerflash.proto.v1.VolumeServiceGrpc",
        "io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder",
        "org.bouncycastle.openssl.PEMParser"
      })
  void whatTheClientNeedsIsOnTheClasspath(String className) throws ClassNotFoundException {
    assertThat(Class.forName(className, false, getClass().getClassLoader())).isNotNull();
  }
}
