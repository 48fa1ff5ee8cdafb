package io.peerflash.node.observe;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpHandler;
import com.sun.net.httpserver.HttpServer;
import com.sun.net.httpserver.HttpsConfigurator;
import com.sun.net.httpserver.HttpsParameters;
import com.sun.net.httpserver.HttpsServer;
import io.peerflash.security.TlsDirectory;
import io.peerflash.util.NamedThreadFactory;
import io.prometheus.metrics.exporter.httpserver.MetricsHandler;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.function.Supplier;
import javax.net.ssl.KeyManager;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.TrustManager;

/**
 * The node's read-only HTTP port: Prometheus metrics ({@code /metrics}), liveness ({@code
 * /healthz}), readiness ({@code /readyz}), the status page ({@code /}) and the JSON it shows
 * ({@code /api/status}). It carries no volume data and takes no action: only GET and HEAD are
 * answered, so it needs no authentication (see the security model in docs/design.md).
 */
public final class HttpEndpoint implements AutoCloseable {
  /** Why a node is not healthy or not ready; null when it is. */
  public interface Probe {
    String problem();
  }

  private final HttpServer server;
  private final ExecutorService threads;

  /**
   * @param metrics null: {@code /metrics} answers 404 (metrics turned off)
   * @param statusJson the body of {@code /api/status}
   */
  public HttpEndpoint(
      String host,
      int port,
      NodeMetrics metrics,
      Probe health,
      Probe readiness,
      Supplier<String> statusJson)
      throws IOException {
    this(
        HttpServer.create(new InetSocketAddress(host, port), 16),
        metrics,
        health,
        readiness,
        statusJson);
  }

  /**
   * HTTPS with {@code tls}'s certificate; with {@code requireClientCertificate}, only clients with
   * a certificate {@code tls} trusts get an answer.
   */
  public static HttpEndpoint https(
      String host,
      int port,
      TlsDirectory tls,
      boolean requireClientCertificate,
      NodeMetrics metrics,
      Probe health,
      Probe readiness,
      Supplier<String> statusJson)
      throws IOException {
    SSLContext context;
    try {
      context = SSLContext.getInstance("TLS");
      context.init(
          new KeyManager[] {tls.keyManager()}, new TrustManager[] {tls.clientVerifier()}, null);
    } catch (GeneralSecurityException e) {
      throw new IOException("cannot set up TLS for the HTTP port: " + e, e);
    }
    HttpsServer server = HttpsServer.create(new InetSocketAddress(host, port), 16);
    server.setHttpsConfigurator(
        new HttpsConfigurator(context) {
          @Override
          public void configure(HttpsParameters params) {
            SSLParameters p = context.getDefaultSSLParameters();
            p.setNeedClientAuth(requireClientCertificate);
            params.setSSLParameters(p);
          }
        });
    return new HttpEndpoint(server, metrics, health, readiness, statusJson);
  }

  private HttpEndpoint(
      HttpServer server,
      NodeMetrics metrics,
      Probe health,
      Probe readiness,
      Supplier<String> statusJson) {
    this.server = server;
    // Two threads: a scrape or a page refresh never waits behind a slow one for long, and the
    // port cannot take more of the node's CPU than that.
    threads = Executors.newFixedThreadPool(2, new NamedThreadFactory("peerflash-http", true));
    server.setExecutor(threads);
    if (metrics != null) {
      server.createContext("/metrics", readOnly(new MetricsHandler(metrics.registry())));
    }
    server.createContext("/healthz", readOnly(probe(health, "ok")));
    server.createContext("/readyz", readOnly(probe(readiness, "ready")));
    server.createContext(
        "/api/status",
        readOnly(ex -> send(ex, 200, "application/json; charset=utf-8", statusJson.get())));
    server.createContext("/", readOnly(this::page));
    server.start();
  }

  /** The bound port (the one asked for, or the one chosen for port 0). */
  public int port() {
    return server.getAddress().getPort();
  }

  private static HttpHandler probe(Probe probe, String okText) {
    return ex -> {
      String problem;
      try {
        problem = probe.problem();
      } catch (RuntimeException e) {
        problem = "cannot tell: " + e;
      }
      if (problem == null) {
        send(ex, 200, "text/plain; charset=utf-8", okText + "\n");
      } else {
        send(ex, 503, "text/plain; charset=utf-8", problem + "\n");
      }
    };
  }

  private void page(HttpExchange ex) throws IOException {
    String path = ex.getRequestURI().getPath();
    if (!path.equals("/") && !path.equals("/index.html")) {
      send(ex, 404, "text/plain; charset=utf-8", "not found: " + path + "\n");
      return;
    }
    try (InputStream in = HttpEndpoint.class.getResourceAsStream("status.html")) {
      if (in == null) {
        send(ex, 500, "text/plain; charset=utf-8", "status page missing from the build\n");
        return;
      }
      send(
          ex,
          200,
          "text/html; charset=utf-8",
          new String(in.readAllBytes(), StandardCharsets.UTF_8));
    }
  }

  /** Refuses every method but GET and HEAD: the port never takes an action. */
  private static HttpHandler readOnly(HttpHandler handler) {
    return ex -> {
      try (ex) {
        String method = ex.getRequestMethod();
        if (!method.equals("GET") && !method.equals("HEAD")) {
          ex.getResponseHeaders().set("Allow", "GET, HEAD");
          send(ex, 405, "text/plain; charset=utf-8", "read-only port: GET or HEAD only\n");
          return;
        }
        handler.handle(ex);
      } catch (IOException | RuntimeException e) {
        // The client went away, or a handler failed: nothing to answer, the port stays up.
      }
    };
  }

  private static void send(HttpExchange ex, int code, String type, String body) throws IOException {
    byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
    ex.getResponseHeaders().set("Content-Type", type);
    ex.getResponseHeaders().set("Cache-Control", "no-store");
    boolean head = ex.getRequestMethod().equals("HEAD");
    ex.sendResponseHeaders(code, head ? -1 : bytes.length);
    if (!head) {
      try (OutputStream out = ex.getResponseBody()) {
        out.write(bytes);
      }
    }
  }

  @Override
  public void close() {
    server.stop(0);
    threads.shutdownNow();
  }
}
