package io.peerflash.node.cluster;

import static org.assertj.core.api.Assertions.assertThat;

import io.peerflash.client.PeerFlashClient;
import io.peerflash.proto.v1.CacheMode;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.openqa.selenium.By;
import org.openqa.selenium.JavascriptExecutor;
import org.openqa.selenium.WebDriver;
import org.openqa.selenium.chrome.ChromeDriver;
import org.openqa.selenium.chrome.ChromeDriverService;
import org.openqa.selenium.chrome.ChromeOptions;
import org.openqa.selenium.support.ui.WebDriverWait;

/**
 * The status page in a real headless browser (Debian's chromium and chromedriver), served by a node
 * of a real 3-node cluster: it shows the members and the volumes, and a volume leaves the healthy
 * state within 10 s of its owner being killed, without a reload, and the event history shows the
 * failover.
 */
class StatusPageBrowserTest {
  private static final Path CHROMIUM = Path.of("/usr/bin/chromium");
  private static final Path CHROMEDRIVER = Path.of("/usr/bin/chromedriver");

  @TempDir Path dir;
  private InProcessCluster cluster;
  private WebDriver browser;

  @AfterEach
  void tearDown() {
    if (browser != null) {
      browser.quit();
    }
    if (cluster != null) {
      cluster.close();
    }
  }

  private WebDriver browser() {
    assertThat(Files.isExecutable(CHROMIUM) && Files.isExecutable(CHROMEDRIVER))
        .as("install Debian's chromium and chromium-driver (.ci/run does)")
        .isTrue();
    ChromeOptions options = new ChromeOptions();
    options.setBinary(CHROMIUM.toFile());
    options.addArguments(
        "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu");
    ChromeDriverService service =
        new ChromeDriverService.Builder().usingDriverExecutable(CHROMEDRIVER.toFile()).build();
    return new ChromeDriver(service, options);
  }

  /** Read in one script: the page rebuilds its tables every second. */
  private String stateOf(String volume) {
    Object text =
        ((JavascriptExecutor) browser)
            .executeScript(
                "const c = document.querySelector(\"#volumes tr[data-volume='\" + arguments[0]"
                    + " + \"'] td.state\"); return c ? c.textContent : '';",
                volume);
    return text == null ? "" : text.toString();
  }

  private long memberRows() {
    Object n =
        ((JavascriptExecutor) browser)
            .executeScript("return document.querySelectorAll('#members tbody tr').length;");
    return n == null ? 0 : ((Number) n).longValue();
  }

  /** The event column of the events table, newest first. */
  private String eventKinds() {
    Object text =
        ((JavascriptExecutor) browser)
            .executeScript(
                "return Array.from(document.querySelectorAll('#events tbody tr'))"
                    + ".map(r => r.children[1].textContent + ' ' + r.children[2].textContent)"
                    + ".join('\\n');");
    return text == null ? "" : text.toString();
  }

  @Test
  void showsTheClusterAndAVolumeLeavingHealthyWhenItsOwnerIsKilled() throws Exception {
    cluster = new InProcessCluster(dir, 3, Map.of("http", "127.0.0.1:0"));
    try (PeerFlashClient client = cluster.client()) {
      // Two replicas on three nodes: once the owner dies no spare node can restore the count, so
      // the volume stays short of copies after the failover (a poll cannot miss it).
      client.createVolume("pagevol", 1 << 20, CacheMode.WRITE_BACK, 2);
      client.write("pagevol", 0, ByteBuffer.wrap(new byte[4096]));
    }
    String owner = cluster.volume("pagevol").getOwner();
    String watcher =
        cluster.nodes.keySet().stream().filter(id -> !id.equals(owner)).findFirst().orElseThrow();

    browser = browser();
    browser.get("http://127.0.0.1:" + cluster.node(watcher).httpPort() + "/");
    WebDriverWait wait = new WebDriverWait(browser, Duration.ofSeconds(15));
    wait.until(b -> memberRows() == 3);
    wait.until(b -> stateOf("pagevol").equals("HEALTHY"));
    wait.until(b -> eventKinds().contains("VOLUME_CREATED pagevol"));
    assertThat(browser.findElement(By.id("node")).getText()).isEqualTo(watcher);
    assertThat(browser.findElement(By.id("leader")).getText()).matches("n[123]");

    long killedAt = System.nanoTime();
    cluster.crash(owner);
    new WebDriverWait(browser, Duration.ofSeconds(10))
        .until(b -> !stateOf("pagevol").isEmpty() && !stateOf("pagevol").equals("HEALTHY"));
    long shownAfterMs = (System.nanoTime() - killedAt) / 1_000_000;
    System.out.printf(
        "status page: volume left HEALTHY %d ms after its owner was killed (now %s)%n",
        shownAfterMs, stateOf("pagevol"));
    assertThat(shownAfterMs).isLessThan(10_000);
    // The history shows why, newest first: the owner DOWN, then the failover.
    new WebDriverWait(browser, Duration.ofSeconds(30))
        .until(b -> eventKinds().startsWith("FAILOVER pagevol"));
    assertThat(eventKinds()).contains("MEMBER_DOWN " + owner);
  }
}
