package io.peerflash.arch;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * No hand-written source file under any module's {@code src/main} grows past {@link #MAX_LINES}
 * lines: a class that large has more than one concern (docs/design.md, "Pieces"), and the build
 * says so when a change makes one instead of a reviewer finding it later.
 */
class ClassSizeTest {
  static final int MAX_LINES = 800;

  /** The modules' source roots, relative to the repository (tests run in {@code node/}). */
  static final List<String> MAIN_SOURCES =
      List.of(
          "node/src/main/java",
          "node/client/src/main/java",
          "replication/src/main/java",
          "it-tests/src/main/java");

  @Test
  void noHandWrittenMainSourceFileIsOverTheLimit() throws IOException {
    Path repository = Path.of("").toAbsolutePath().getParent();
    List<String> tooLong = new ArrayList<>();
    int files = 0;
    for (String root : MAIN_SOURCES) {
      Path dir = repository.resolve(root);
      assertThat(dir).as("a module's main sources").isDirectory();
      try (Stream<Path> all = Files.walk(dir)) {
        for (Path p : (Iterable<Path>) all.filter(f -> f.toString().endsWith(".java"))::iterator) {
          files++;
          long lines;
          try (Stream<String> s = Files.lines(p)) {
            lines = s.count();
          }
          if (lines > MAX_LINES) {
            tooLong.add(repository.relativize(p) + " (" + lines + " lines)");
          }
        }
      }
    }
    assertThat(files).as("source files found").isGreaterThan(100);
    assertThat(tooLong).as("files over " + MAX_LINES + " lines: split them by concern").isEmpty();
  }
}
