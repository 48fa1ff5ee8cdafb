package io.peerflash.faults;

import com.github.dockerjava.api.DockerClient;
import com.github.dockerjava.api.exception.NotFoundException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.UUID;
import org.testcontainers.DockerClientFactory;
import org.testcontainers.images.builder.ImageFromDockerfile;

/**
 * The node image the container tests run: built once per test JVM by Testcontainers from {@code
 * deploy/Dockerfile} and the project's jar ({@code node/target/peerflash.jar}), on the base image
 * named by {@code peerflash.base.image}, and removed when the JVM exits.
 *
 * <p>System properties (failsafe sets them): {@code peerflash.jar}, {@code peerflash.deploy.dir},
 * {@code peerflash.base.image}.
 */
public final class NodeImage {
  private static String name;

  private NodeImage() {}

  /** The image name, building the image on first use. */
  public static synchronized String get() {
    if (name != null) {
      return name;
    }
    Path jar = Path.of(System.getProperty("peerflash.jar", "../node/target/peerflash.jar"));
    Path deploy = Path.of(System.getProperty("peerflash.deploy.dir", "../deploy"));
    String base = System.getProperty("peerflash.base.image", "peerflash-base:bookworm-jre17");
    if (!Files.isRegularFile(jar)) {
      throw new IllegalStateException(
          "node jar not built: " + jar.toAbsolutePath() + " (mvn -B -ntp install -DskipTests)");
    }
    DockerClient docker = DockerClientFactory.instance().client();
    try {
      docker.inspectImageCmd(base).exec();
    } catch (NotFoundException e) {
      throw new IllegalStateException(
          "base image "
              + base
              + " is missing: build it with deploy/build-base-image.sh "
              + base
              + " (or pass any Java 17 runtime image as -Dpeerflash.base.image=...)",
          e);
    }
    String image = "peerflash-it-node:" + UUID.randomUUID().toString().substring(0, 8);
    String built =
        new ImageFromDockerfile(image, false)
            .withFileFromPath("Dockerfile", deploy.resolve("Dockerfile"))
            .withFileFromPath("docker-entrypoint.sh", deploy.resolve("docker-entrypoint.sh"))
            .withFileFromPath(
                "peerflash-healthcheck.sh", deploy.resolve("peerflash-healthcheck.sh"))
            .withFileFromPath("peerflash.jar", jar)
            .withBuildArg("BASE_IMAGE", base)
            .get();
    Runtime.getRuntime()
        .addShutdownHook(
            new Thread(
                () -> {
                  try {
                    docker.removeImageCmd(built).withForce(true).exec();
                  } catch (RuntimeException ignored) {
                    // already gone
                  }
                },
                "peerflash-it-image-cleanup"));
    name = built;
    return name;
  }
}
