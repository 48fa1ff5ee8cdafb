package io.peerflash.arch;

import static com.tngtech.archunit.base.DescribedPredicate.not;
import static com.tngtech.archunit.core.domain.JavaClass.Predicates.belongToAnyOf;
import static com.tngtech.archunit.core.domain.JavaClass.Predicates.resideInAPackage;
import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;

import com.tngtech.archunit.core.importer.ImportOption;
import com.tngtech.archunit.junit.AnalyzeClasses;
import com.tngtech.archunit.junit.ArchTest;
import com.tngtech.archunit.lang.ArchRule;
import io.peerflash.replication.data.BlockCopy;
import io.peerflash.replication.data.ReplicaException;
import io.peerflash.replication.data.ReplicaSink;
import io.peerflash.replication.data.Replicas;

/**
 * The layers the build keeps: the engine knows nothing of the network, the cluster or the node
 * process; the cluster side knows nothing of the RPC adapters; the client knows nothing of the
 * server.
 */
@AnalyzeClasses(packages = "io.peerflash", importOptions = ImportOption.DoNotIncludeTests.class)
class LayeringTest {
  private static final String[] ENGINE = {
    "io.peerflash.node.engine..",
    "io.peerflash.node.cache..",
    "io.peerflash.node.index..",
    "io.peerflash.node.storage.."
  };

  @ArchTest
  static final ArchRule engineKnowsNoNetworkClusterOrNode =
      noClasses()
          .that()
          .resideInAnyPackage(ENGINE)
          .should()
          .dependOnClassesThat()
          .resideInAnyPackage(
              "io.peerflash.node",
              "io.peerflash.node.rpc..",
              "io.peerflash.node.net..",
              "io.peerflash.node.wire..",
              "io.peerflash.node.cluster..",
              "io.peerflash.replication.control..",
              "io.peerflash.client..",
              "io.peerflash.cli..",
              "io.peerflash.proto..",
              "com.google.protobuf..",
              "org.apache.ratis..",
              "io.grpc..")
          .because(
              "the engine stores and destages blocks; placement, epochs and the wire are decided"
                  + " above it and passed down as values");

  @ArchTest
  static final ArchRule engineUsesOnlyTheDataPlanePorts =
      noClasses()
          .that()
          .resideInAnyPackage(ENGINE)
          .should()
          .dependOnClassesThat(
              resideInAPackage("io.peerflash.replication.data..")
                  .and(
                      not(
                          belongToAnyOf(
                              ReplicaSink.class,
                              BlockCopy.class,
                              ReplicaException.class,
                              Replicas.class))))
          .because(
              "of the replication module the engine implements the replica store's port and"
                  + " shares its block-copy type, never the replication transport");

  @ArchTest
  static final ArchRule clusterKnowsNoRpcAdapters =
      noClasses()
          .that()
          .resideInAPackage("io.peerflash.node.cluster..")
          .should()
          .dependOnClassesThat()
          .resideInAnyPackage("io.peerflash.node.rpc..", "io.peerflash.cli..")
          .because("the RPC adapters translate requests into calls on the cluster, not back");

  @ArchTest
  static final ArchRule rpcAdaptersAreNotCalledFromBelow =
      noClasses()
          .that()
          .resideInAnyPackage(
              "io.peerflash.node.engine..",
              "io.peerflash.node.net..",
              "io.peerflash.node.wire..",
              "io.peerflash.replication..")
          .should()
          .dependOnClassesThat()
          .resideInAnyPackage("io.peerflash.node.rpc..", "io.peerflash.cli..")
          .because("only the node process wires the adapters to what they adapt");

  @ArchTest
  static final ArchRule clientKnowsNothingOfTheServer =
      noClasses()
          .that()
          .resideInAnyPackage(
              "io.peerflash.client..", "io.peerflash.security..", "io.peerflash.util..")
          .should()
          .dependOnClassesThat()
          .resideInAnyPackage(
              "io.peerflash.node..",
              "io.peerflash.cli..",
              "io.peerflash.bench..",
              "io.peerflash.replication..",
              "org.rocksdb..",
              "org.apache.ratis..")
          .because(
              "the client library (node/client: the client, TLS identities, utilities) serves"
                  + " applications without the server's dependencies; its own test checks that"
                  + " none are on its classpath");
}
