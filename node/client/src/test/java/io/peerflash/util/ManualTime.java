package io.peerflash.util;

import java.util.PriorityQueue;
import java.util.concurrent.TimeUnit;

/**
 * A {@link Time} that tests drive: stopped, it moves only by {@link #advanceMs} and {@link
 * #sleepMs}, so a test decides exactly when a deadline, lease or backoff runs out instead of
 * sleeping past it. {@link #nowMs} and {@link #nanoTime} move together, and {@link #nowMs} starts
 * at the real date (certificates are judged against it).
 *
 * <p>{@link #followingSystem()} gives one that runs with the system clock until {@link #freeze}
 * (for code that must first get going in real time); {@link #resume} lets it run again from where
 * it stood. Thread-safe.
 *
 * <p>Scheduled tasks ({@link #schedule}) run when the clock reaches them, one at a time, in due
 * order. Stopped: on the thread that moves the clock, before {@link #advanceMs} or {@link #sleepMs}
 * returns, each with the clock stepped to its due time (a task that schedules itself every 10 ms
 * runs 50 times when the clock moves 500 ms), so a test sees a deadline's effect right after it
 * moved the clock past it. Running: on a timer thread of the clock's own. A task that throws does
 * not stop the others; the first failure is thrown to the thread that moved the clock once every
 * due task ran.
 */
public final class ManualTime implements Time {
  private final long startWallMs = System.currentTimeMillis();
  private final long startNanos = System.nanoTime();
  // Guarded by this. Running: nanoTime() is System.nanoTime() + offsetNanos; stopped: stoppedNanos.
  private boolean stopped;
  private long stoppedNanos;
  private long offsetNanos;
  // Guarded by this: scheduled tasks by due time, then in the order they were scheduled.
  private final PriorityQueue<Scheduled> timers = new PriorityQueue<>();
  private long scheduledCount;
  private Thread timerThread;
  // Held while tasks run (taken before this): one batch at a time, and freeze() waits for it.
  private final Object running = new Object();

  /** A clock stopped at the current date; it moves only when told. */
  public ManualTime() {
    stopped = true;
    stoppedNanos = startNanos;
  }

  private ManualTime(boolean stopped) {
    this.stopped = stopped;
    this.stoppedNanos = startNanos;
  }

  /** A clock that runs with the system clock until {@link #freeze}. */
  public static ManualTime followingSystem() {
    return new ManualTime(false);
  }

  @Override
  public synchronized long nanoTime() {
    return stopped ? stoppedNanos : System.nanoTime() + offsetNanos;
  }

  @Override
  public long nowMs() {
    return startWallMs + TimeUnit.NANOSECONDS.toMillis(nanoTime() - startNanos);
  }

  /** Stopped: advances the clock by {@code ms} and returns at once. Running: sleeps for real. */
  @Override
  public void sleepMs(long ms) throws InterruptedException {
    boolean stoppedNow;
    synchronized (this) {
      stoppedNow = stopped;
    }
    if (stoppedNow) {
      moveStoppedClock(TimeUnit.MILLISECONDS.toNanos(Math.max(0, ms)));
    } else {
      Time.SYSTEM.sleepMs(ms);
    }
  }

  /** Moves a stopped clock forward by {@code ms}, running the tasks that fall due on the way. */
  public void advanceMs(long ms) {
    synchronized (this) {
      if (!stopped) {
        throw new IllegalStateException("advance a stopped clock only (freeze it first)");
      }
      if (ms < 0) {
        throw new IllegalArgumentException("time does not go back: advanceMs(" + ms + ")");
      }
    }
    moveStoppedClock(TimeUnit.MILLISECONDS.toNanos(ms));
  }

  /**
   * Moves a stopped clock by {@code nanos}, stepping it to each due task's time and running the
   * task there.
   */
  private void moveStoppedClock(long nanos) {
    Throwable failure = null;
    synchronized (running) {
      long target;
      synchronized (this) {
        target = stoppedNanos + nanos;
      }
      while (true) {
        Runnable task;
        synchronized (this) {
          Scheduled next = timers.peek();
          if (next == null || next.dueNanos - target > 0) {
            stoppedNanos = target;
            break;
          }
          timers.poll();
          if (next.dueNanos - stoppedNanos > 0) {
            stoppedNanos = next.dueNanos;
          }
          task = next.task;
        }
        failure = run(task, failure);
      }
    }
    rethrow(failure);
  }

  /** Stops the clock where it stands (after tasks already running); then it moves when told. */
  public void freeze() {
    synchronized (running) {
      synchronized (this) {
        if (!stopped) {
          stoppedNanos = nanoTime();
          stopped = true;
          notifyAll();
        }
      }
    }
  }

  /** Lets the clock run with the system clock again, from where it stood. */
  public synchronized void resume() {
    if (stopped) {
      offsetNanos = stoppedNanos - System.nanoTime();
      stopped = false;
      startTimerThread();
      notifyAll();
    }
  }

  @Override
  public Timer schedule(long delayMs, Runnable task) {
    Scheduled s;
    synchronized (this) {
      s =
          new Scheduled(
              nanoTime() + TimeUnit.MILLISECONDS.toNanos(Math.max(0, delayMs)),
              scheduledCount++,
              task);
      timers.add(s);
      if (!stopped) {
        startTimerThread();
      }
      notifyAll();
    }
    return s;
  }

  /** How many scheduled tasks have not run yet (nor been cancelled). */
  public synchronized int pendingTimers() {
    return timers.size();
  }

  /** The timer thread's turn: runs, in order, every task due by the running clock now. */
  private void runDueTimers() {
    synchronized (running) {
      while (true) {
        Runnable task;
        synchronized (this) {
          if (stopped || timers.isEmpty() || timers.peek().dueNanos - nanoTime() > 0) {
            return; // stopped: tasks run on the thread that moves the clock
          }
          task = timers.poll().task;
        }
        Throwable failure = run(task, null);
        if (failure != null) {
          System.err.println("manual-time-timer: a scheduled task failed: " + failure);
          failure.printStackTrace();
        }
      }
    }
  }

  private static Throwable run(Runnable task, Throwable earlier) {
    try {
      task.run();
      return earlier;
    } catch (Throwable t) {
      if (earlier != null) {
        earlier.addSuppressed(t);
        return earlier;
      }
      return t;
    }
  }

  private static void rethrow(Throwable failure) {
    if (failure instanceof RuntimeException r) {
      throw r;
    }
    if (failure instanceof Error e) {
      throw e;
    }
    if (failure != null) {
      throw new IllegalStateException(failure);
    }
  }

  // Guarded by this.
  private void startTimerThread() {
    if (timerThread == null) {
      timerThread = new Thread(this::runTimers, "manual-time-timer");
      timerThread.setDaemon(true);
      timerThread.start();
    }
  }

  /** The timer thread: runs due tasks while the clock runs; idle while it is stopped. */
  private void runTimers() {
    while (true) {
      synchronized (this) {
        try {
          if (stopped || timers.isEmpty()) {
            wait();
            continue;
          }
          long waitNanos = timers.peek().dueNanos - nanoTime();
          if (waitNanos > 0) {
            TimeUnit.NANOSECONDS.timedWait(this, waitNanos);
            continue;
          }
        } catch (InterruptedException e) {
          return;
        }
      }
      runDueTimers();
    }
  }

  private final class Scheduled implements Comparable<Scheduled>, Timer {
    final long dueNanos;
    final long order;
    final Runnable task;

    Scheduled(long dueNanos, long order, Runnable task) {
      this.dueNanos = dueNanos;
      this.order = order;
      this.task = task;
    }

    @Override
    public int compareTo(Scheduled o) {
      int byDue = Long.compare(dueNanos - o.dueNanos, 0);
      return byDue != 0 ? byDue : Long.compare(order, o.order);
    }

    @Override
    public void cancel() {
      synchronized (ManualTime.this) {
        timers.remove(this);
      }
    }
  }
}
