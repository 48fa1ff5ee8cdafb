package io.peerflash.cli;

import io.peerflash.bench.BenchResult;
import io.peerflash.bench.Report;
import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/** {@code peerflash bench report}: results files into a Markdown report with plots. */
@Command(
    name = "report",
    sortOptions = false,
    description = {
      "Combine results files (from --json, and from the peer's load client) into a Markdown"
          + " report with every ratio and the targets, and PNG plots."
    })
final class BenchReportCommand implements Callable<Integer> {
  @Option(
      names = "--in",
      required = true,
      paramLabel = "DIR",
      description = "Directory of *.json results files.")
  Path in;

  @Option(
      names = "--out",
      paramLabel = "DIR",
      description = "Where report.md and the plots go (default: --in).")
  Path outDir;

  @Option(
      names = "--context",
      paramLabel = "TEXT",
      description = "A line under the title (machine, settings); repeatable.")
  List<String> context;

  @Spec CommandSpec spec;

  @Override
  public Integer call() throws IOException {
    PeerFlashCli cli = (PeerFlashCli) spec.root().userObject();
    if (!Files.isDirectory(in)) {
      throw new ParameterException(spec.commandLine(), "--in " + in + " is not a directory");
    }
    List<BenchResult> all = new ArrayList<>();
    List<Path> files = new ArrayList<>();
    try (DirectoryStream<Path> ds = Files.newDirectoryStream(in, "*.json")) {
      ds.forEach(files::add);
    }
    files.sort(null);
    for (Path f : files) {
      try {
        all.addAll(BenchResult.readFile(f));
      } catch (IOException e) {
        cli.err().println("skipping " + f + ": " + e.getMessage());
      }
    }
    if (all.isEmpty()) {
      cli.err().println("error: no results in " + in);
      return PeerFlashCli.EXIT_FAILURE;
    }
    Report report = new Report(all);
    Path md = report.write(outDir != null ? outDir : in, context == null ? List.of() : context);
    for (Report.Verdict v : report.verdicts()) {
      cli.out()
          .println(
              String.format(
                  Locale.ROOT,
                  "%-8s %s: %s (%s, limit %s)",
                  v.met() == null ? "not run" : v.met() ? "met" : "MISSED",
                  v.target(),
                  v.measured(),
                  v.ratio(),
                  v.limit()));
    }
    cli.out().println("report: " + md);
    return PeerFlashCli.EXIT_OK;
  }
}
