package io.peerflash.cli;

import io.grpc.Server;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.peerflash.client.FakeVolumeService;
import java.net.InetSocketAddress;
import java.util.Arrays;
import java.util.List;

/**
 * Stands in for {@code peerflash node ...} in local-cluster tests: prints its arguments, then
 * serves a {@link FakeVolumeService} on {@code --listen} until SIGTERM; with {@code
 * -Dfakenode.exit=CODE} it exits at once with that code instead.
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
    Server server =
        NettyServerBuilder.forAddress(
                new InetSocketAddress(
                    listen.substring(0, colon), Integer.parseInt(listen.substring(colon + 1))))
            .addService(fake)
            .addService(fake.nodeService)
            .build()
            .start();
    Runtime.getRuntime().addShutdownHook(new Thread(server::shutdownNow, "fake-node-shutdown"));
    server.awaitTermination();
  }
}
