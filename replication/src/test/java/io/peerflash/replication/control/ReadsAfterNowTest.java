package io.peerflash.replication.control;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import org.junit.jupiter.api.Test;

class ReadsAfterNowTest {
  final List<CompletableFuture<Integer>> started = new ArrayList<>();
  final ReadsAfterNow<Integer> reads =
      new ReadsAfterNow<>(
          () -> {
            CompletableFuture<Integer> f = new CompletableFuture<>();
            started.add(f);
            return f;
          });

  @Test
  void aCallerArrivingWhileAReadRunsGetsTheNextReadNotTheRunningOne() {
    CompletableFuture<Integer> first = reads.next();
    CompletableFuture<Integer> second = reads.next();
    assertThat(started).hasSize(1);
    started.get(0).complete(1);
    assertThat(first).isCompletedWithValue(1);
    // The first read may have begun before the second caller asked: it waits for one of its own.
    assertThat(second).isNotDone();
    assertThat(started).hasSize(2);
    started.get(1).complete(2);
    assertThat(second).isCompletedWithValue(2);
  }

  @Test
  void callersWaitingForTheNextReadShareIt() {
    reads.next();
    CompletableFuture<Integer> a = reads.next();
    CompletableFuture<Integer> b = reads.next();
    CompletableFuture<Integer> c = reads.next();
    assertThat(b).isSameAs(a);
    assertThat(c).isSameAs(a);
    started.get(0).complete(1);
    assertThat(started).as("one read running, however many wait").hasSize(2);
    started.get(1).complete(2);
    assertThat(a).isCompletedWithValue(2);
    assertThat(started).hasSize(2);
  }

  @Test
  void aFailedReadFailsItsCallersAndTheNextOneStillRuns() {
    CompletableFuture<Integer> first = reads.next();
    CompletableFuture<Integer> second = reads.next();
    started.get(0).completeExceptionally(new IllegalStateException("no leader"));
    assertThat(first).isCompletedExceptionally();
    started.get(1).complete(7);
    assertThat(second).isCompletedWithValue(7);
    // Idle again: the next caller starts a read at once.
    CompletableFuture<Integer> third = reads.next();
    assertThat(started).hasSize(3);
    started.get(2).complete(8);
    assertThat(third.join()).isEqualTo(8);
  }

  @Test
  void aReadThatThrowsInsteadOfFailingItsFutureDoesNotWedgeTheReader() {
    ReadsAfterNow<Integer> throwing =
        new ReadsAfterNow<>(
            () -> {
              throw new IllegalStateException("closed");
            });
    assertThat(throwing.next()).isCompletedExceptionally();
    CompletableFuture<Integer> again = throwing.next();
    assertThat(again).isCompletedExceptionally();
    assertThat(again.handle((v, e) -> e).join())
        .isInstanceOfAny(IllegalStateException.class, CompletionException.class);
  }
}
