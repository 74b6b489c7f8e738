"""The trainer binary restarts an actor process that died and keeps training.

A file of its own: this run takes up to a minute on a loaded 2-core machine,
and `--dist loadfile` hands out the files with the fewest tests last, where
one long file would leave the other worker idle.
"""

import os
import re
import signal

from tests.training import procs


def _env_steps(line):
  return int(re.search(r"env_steps=(\d+)", line).group(1))


def _thread_nice_values(pid):
  """The nice values of the threads of process `pid` (/proc, Linux)."""
  values = set()
  for tid in os.listdir(f"/proc/{pid}/task"):
    try:
      with open(f"/proc/{pid}/task/{tid}/stat") as f:
        stat = f.read()
    except FileNotFoundError:  # The thread ended after the listing.
      continue
    # Field 19 of stat(5); the fields after the command start at field 3.
    values.add(int(stat[stat.rindex(")") + 2:].split()[16]))
  return values


def _environment(pid):
  """The environment process `pid` started with (/proc, Linux)."""
  with open(f"/proc/{pid}/environ", "rb") as f:
    pairs = [entry.split(b"=", 1) for entry in f.read().split(b"\0") if entry]
  return {k.decode(): v.decode() for k, v in pairs}


def test_actor_processes_feed_the_learner_and_are_replaced(tmp_path):
  logdir = str(tmp_path / "run")
  lines = []
  proc = procs.start("trainers.train", [
      f"--logdir={logdir}", "--agent=stac", "--env=catch",
      "--num_actors=0", "--num_actor_processes=1", "--actor_nice=7",
      "--total_env_steps=100000000", *procs.TINY_FLAGS])
  started = procs.read_until(proc, lambda l: "started actor process 0" in l,
                             lines)
  pid = int(re.search(r"pid=(\d+)", started).group(1))
  first = procs.read_until(proc, lambda l: l.startswith("env_steps="), lines)
  # The actor has fed the learner, so its Reverb and TF threads run: all of
  # them at the lower priority.
  assert _thread_nice_values(pid) == {7}
  # No GPU for it: on a GPU host its TensorFlow would reserve memory on
  # every GPU beside the learner's.
  assert _environment(pid)["CUDA_VISIBLE_DEVICES"] == "-1"
  os.kill(pid, signal.SIGKILL)
  procs.read_until(proc, lambda l: f"(pid {pid}) exited" in l, lines)
  procs.read_until(proc, lambda l: "started actor process 0" in l, lines)
  later = procs.read_until(
      proc, lambda l: l.startswith("env_steps=") and
      _env_steps(l) > _env_steps(first) + 64, lines)
  proc.send_signal(signal.SIGTERM)
  output = procs.finish(proc, lines, timeout=120)
  assert proc.returncode == 143, output[-3000:]
  assert _env_steps(later) > _env_steps(first)
