"""Two trainer processes on localhost as one MultiWorkerMirroredStrategy
learner (TF_CONFIG): a worker killed with kill -9 stops the other with one
line in bounded time; restarting both resumes from the chief's checkpoint
and trains to the budget with equal variables; only the chief writes the
run directory."""

import json
import os
import re
import subprocess
import sys
import time

import portpicker

from tests.trainers import procs
from tf_metagrad import runs

# IMPALA: what is tested here is the processes (the cross-replica
# meta-gradient of STAC and FRODO is tests/meta/test_mirrored.py's).
_FLAGS = ["--strategy=multi_worker", "--agent=impala", "--env=catch",
          "--num_actors=1", "--checkpoint_every_secs=2", *procs.TINY_FLAGS]


def _start(index, ports, logdir, total):
  env = dict(procs.environment(), TF_CONFIG=json.dumps({
      "cluster": {"worker": [f"localhost:{p}" for p in ports]},
      "task": {"type": "worker", "index": index}}))
  return subprocess.Popen(
      [sys.executable, "-m", "trainers.train", f"--logdir={logdir}",
       f"--total_env_steps={total}", *_FLAGS],
      cwd=procs.ROOT, env=env, stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True)


def _env_steps(line):
  return int(re.search(r"env_steps=(\d+)", line).group(1))


def test_kill_9_stops_the_other_worker_and_a_restart_resumes(tmp_path):
  logdir = tmp_path / "run"
  ports = [portpicker.pick_unused_port() for _ in range(2)]
  chief, other = (_start(i, ports, logdir, 10**9) for i in range(2))
  lines, saved = [], []
  try:
    procs.read_until(chief, lambda l: l.startswith("saved checkpoint") and
                     saved.append(l) is None, lines)
    other.kill()
    other.wait()
    killed_at = time.monotonic()
    procs.read_until(chief, lambda l: l.startswith("error: "), lines,
                     timeout=120)
    said = time.monotonic() - killed_at
    output = procs.finish(chief, lines, timeout=120)
    took = time.monotonic() - killed_at
    print(f"kill -9 -> the chief's error line {said:.1f} s, its exit "
          f"{took:.1f} s")
  finally:
    for proc in (chief, other):
      if proc.poll() is None:
        proc.kill()
  assert chief.returncode == 1, output[-3000:]
  errors = [l for l in output.splitlines() if l.startswith("error: ")]
  assert len(errors) == 1, output[-3000:]
  assert re.match(rf"error: lost worker 1 \(localhost:{ports[1]}\) while "
                  rf"worker 0 \(localhost:{ports[0]}\) was training "
                  r"\((heartbeat timeout|connection lost)\)", errors[0]), (
                      errors[0])
  # The heartbeat timeout (10 s) plus leaving: pool, server, exit.
  assert took < 40, took
  checkpointed = runs.checkpoint_env_steps(runs.latest_checkpoint(
      str(logdir)))
  assert checkpointed >= _env_steps(saved[0])

  total = checkpointed + 16 * 8
  ports = [portpicker.pick_unused_port() for _ in range(2)]
  workers = [_start(i, ports, logdir, total) for i in range(2)]
  outputs = [procs.finish(w, [], timeout=240) for w in workers]
  for worker, output in zip(workers, outputs):
    assert worker.returncode == 0, output[-3000:]
    resumed = re.search(r"resumed from \S+: env_steps=(\d+)", output)
    assert resumed and int(resumed.group(1)) == checkpointed, output[-3000:]
    done = re.search(r"training completed: env_steps=(\d+)", output)
    assert done and int(done.group(1)) >= total, output[-3000:]
  digests = [re.search(r"variables fingerprint (\w+)", o).group(1)
             for o in outputs]
  assert digests[0] == digests[1]
  # The chief exports and evaluates; the other worker only trains.
  assert "final_eval_mean_return=" in outputs[0]
  assert "final_eval_mean_return=" not in outputs[1]
  assert os.path.exists(logdir / "saved_model" / "saved_model.pb")
  scratch = re.search(r"scratch directory (\S+)", outputs[1]).group(1)
  assert not os.path.exists(scratch)  # Removed after a good run.
  # One writer: metrics.csv rows come from the chief alone, in order.
  with open(logdir / "metrics.csv") as f:
    steps = [int(float(row.split(",")[0])) for row in f.read().splitlines()[1:]
             if row and row[0].isdigit()]
  assert steps == sorted(steps)
