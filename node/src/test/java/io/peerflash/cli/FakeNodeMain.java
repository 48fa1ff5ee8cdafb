package io.peerflash.cli;

import io.grpc.Server;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.peerflash.client.FakeVolumeService;
import io.peerflash.security.GrpcTls;
import io.peerflash.security.Identities;
import io.peerflash.security.TlsDirectory;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

/**
 * Stands in for {@code peerflash node ...} in local-cluster tests: prints its arguments, then
 * serves a {@link FakeVolumeService} on {@code --listen} until SIGTERM, with mutual TLS as the node
 * identity of {@code --certs DIR} (only callers with a certificate of its CA get through), or in
 * plaintext with {@code --insecure}; with {@code -Dfakenode.exit=CODE} it exits at once with that
 * code instead; with {@code -Dfakenode.fencedStatusCalls=N} its first N status answers say it is
 * fenced, as a node's do before it holds a lease.
 */
public final class FakeNodeMain {
  private FakeNodeMain() {}

  public static void main(String[] args) throws Exception {
    System.out.println("fake node args: " + String.join(" ", args));
    System.out.flush();
    String exit = System.getProperty("fakenode.exit");
    if (exit != null) {
      System.exit(Integer.parseInt(exit));
    }
    List<String> list = Arrays.asList(args);
    String listen = list.get(list.indexOf("--listen") + 1);
    int colon = listen.lastIndexOf(':');
    FakeVolumeService fake = new FakeVolumeService();
    fake.fencedStatusCalls = Integer.getInteger("fakenode.fencedStatusCalls", 0);
    NettyServerBuilder builder =
        NettyServerBuilder.forAddress(
                new InetSocketAddress(
                    listen.substring(0, colon), Integer.parseInt(listen.substring(colon + 1))))
            .addService(fake)
            .addService(fake.nodeService);
    if (list.contains("--certs")) {
      TlsDirectory tls = TlsDirectory.open(Path.of(list.get(list.indexOf("--certs") + 1)));
      builder.sslContext(GrpcTls.serverContext(tls)).intercept(Identities.interceptor(tls));
    } else if (!list.contains("--insecure")) {
      throw new IllegalArgumentException("a node needs --certs DIR or --insecure");
    }
    Server server = builder.build().start();
    Runtime.getRuntime().addShutdownHook(new Thread(server::shutdownNow, "fake-node-shutdown"));
    server.awaitTermination();
  }
}
