"""Runs trainer binaries as subprocesses and reads their output line by line
(tests react to what the process prints instead of sleeping)."""

import contextlib
import os
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

TINY_FLAGS = [
    "--unroll_length=4", "--batch_size=4", "--envs_per_actor=4",
    "--config=mlp_hidden_sizes=16", "--config=head_hidden_sizes=16",
    "--eval_episodes=2", "--log_every_secs=0.5", "--summary_every_secs=0.5",
    "--data_timeout_secs=2",
]


def environment():
  """The environment of a subprocess that imports this checkout."""
  return dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3",
              PYTHONUNBUFFERED="1")


def start(module, flags, **environ):
  """`python -m module *flags` in the checkout, its output (stdout and
  stderr) read with `read_until` / `finish`; `environ` adds environment
  variables (e.g. TF_CONFIG)."""
  return subprocess.Popen(
      [sys.executable, "-m", module, *flags], cwd=ROOT,
      env=dict(environment(), **environ), stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True)


@contextlib.contextmanager
def killed_on_exit(*processes):
  """Yields `processes` and kills those still running on the way out, so
  that a failed check leaves no process behind (holding its ports and
  CPU) and no test waits for one."""
  try:
    yield processes
  finally:
    for proc in processes:
      if proc.poll() is None:
        proc.kill()
        proc.wait()


def kill_9(proc):
  """Kills `proc` outright (SIGKILL: no chance to checkpoint or say
  goodbye) and waits for it; returns `time.monotonic()` after it is gone."""
  proc.kill()
  proc.wait()
  return time.monotonic()


def read_until(proc, predicate, lines, timeout=300):
  """Reads lines (appending to `lines`) until predicate(line) or EOF.

  A process that prints nothing more is killed after `timeout` seconds, so
  a hung trainer ends the read (at EOF) instead of blocking CI forever.
  """
  watchdog = threading.Timer(timeout, proc.kill)
  watchdog.start()
  try:
    for line in proc.stdout:
      lines.append(line)
      if predicate(line):
        return line
  finally:
    watchdog.cancel()
  killed = f" (killed after {timeout}s)" if proc.poll() == -9 else ""
  raise AssertionError(f"process ended before the expected line{killed}; "
                       "output:\n" + "".join(lines[-60:]))


def finish(proc, lines, timeout=600):
  out, _ = proc.communicate(timeout=timeout)
  lines.extend(out.splitlines(keepends=True))
  return "".join(lines)
