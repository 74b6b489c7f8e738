"""Two trainer processes on localhost as one MultiWorkerMirroredStrategy
learner (TF_CONFIG): a worker killed with kill -9 stops the other with one
line in bounded time; restarting both resumes from the chief's checkpoint
and trains to the budget with equal variables; only the chief writes the
run directory."""

import json
import os
import re
import time

import portpicker

from tests.training import procs
from tf_metagrad import runs
from tf_metagrad.training import outputs as outputs_lib

# IMPALA: what is tested here is the processes (the cross-replica
# meta-gradient of STAC and FRODO is tests/meta/test_mirrored.py's).
_FLAGS = ["--strategy=multi_worker", "--agent=impala", "--env=catch",
          "--num_actors=1", "--checkpoint_every_secs=2", *procs.TINY_FLAGS]


def _workers(logdir, total, extra=lambda index: ()):
  """(ports, [two trainer processes]): the workers of one cluster on
  localhost, worker `index` with the flags `extra(index)` added."""
  ports = [portpicker.pick_unused_port() for _ in range(2)]

  def worker(index):
    return procs.start(
        "trainers.train", [f"--logdir={logdir}", f"--total_env_steps={total}",
                           *_FLAGS, *extra(index)],
        TF_CONFIG=json.dumps({
            "cluster": {"worker": [f"localhost:{p}" for p in ports]},
            "task": {"type": "worker", "index": index}}))

  return ports, [worker(index) for index in range(2)]


def _errors(output):
  return [l for l in output.splitlines() if l.startswith("error: ")]


def _assert_one_lost_line(proc, output, ports, lost, survivor):
  """`proc` (worker `survivor`) exited 1 with one error line, naming worker
  `lost` as gone while it trained."""
  assert proc.returncode == 1, output[-3000:]
  errors = _errors(output)
  assert len(errors) == 1, output[-3000:]
  assert re.match(
      rf"error: lost worker {lost} \(localhost:{ports[lost]}\) while worker "
      rf"{survivor} \(localhost:{ports[survivor]}\) was training "
      r"\((heartbeat timeout|connection lost)\)", errors[0]), errors[0]


def _env_steps(line):
  return int(re.search(r"env_steps=(\d+)", line).group(1))


def test_kill_9_stops_the_other_worker_and_a_restart_resumes(tmp_path):
  logdir = tmp_path / "run"
  ports, workers = _workers(logdir, 10**9)
  lines, saved = [], []
  with procs.killed_on_exit(*workers) as (chief, other):
    procs.read_until(chief, lambda l: l.startswith("saved checkpoint") and
                     saved.append(l) is None, lines)
    killed_at = procs.kill_9(other)
    output = procs.finish(chief, lines, timeout=120)
    took = time.monotonic() - killed_at
  print(f"kill -9 -> the chief's exit {took:.1f} s")
  _assert_one_lost_line(chief, output, ports, lost=1, survivor=0)
  # The heartbeat timeout (10 s) plus leaving: pool, server, exit.
  assert took < 40, took
  checkpointed = runs.checkpoint_env_steps(runs.latest_checkpoint(
      str(logdir)))
  assert checkpointed >= _env_steps(saved[0])

  total = checkpointed + 16 * 8
  _, workers = _workers(logdir, total)
  with procs.killed_on_exit(*workers):
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
  # One writer: metrics rows come from the chief alone, in order.
  steps = [int(float(r["env_steps"]))
           for r in outputs_lib.read_metrics(str(logdir))[1]]
  assert steps and steps == sorted(steps)


def test_a_worker_without_data_stops_every_worker_with_the_same_line(
    tmp_path):
  # Worker 1 has no actors: the vote keeps both out of the step (whose
  # all-reduces would wait for worker 1 forever) until max_data_wait_secs,
  # then both leave with the same line.
  max_wait = 8
  ports, workers = _workers(
      tmp_path / "run", 10**9,
      lambda i: [f"--max_data_wait_secs={max_wait}", f"--num_actors={1 - i}"])
  lines = [[], []]
  with procs.killed_on_exit(*workers):
    for worker, seen in zip(workers, lines):
      procs.read_until(worker, lambda l: l.startswith("reverb server"), seen)
    started = time.monotonic()
    output = [procs.finish(w, seen, timeout=120)
              for w, seen in zip(workers, lines)]
    took = time.monotonic() - started
  print(f"both workers exited {took:.1f} s after the later one started")
  expected = (f"error: no trajectories on worker 1 (localhost:{ports[1]}) "
              f"for longer than max_data_wait_s={max_wait:.1f}; every "
              f"worker stops")
  for worker, text in zip(workers, output):
    assert worker.returncode == 1, text[-3000:]
    assert _errors(text) == [expected], text[-3000:]
  assert f"waiting for trajectories on worker 1 (localhost:{ports[1]})" in (
      output[0])
  # The wait, one data timeout (2 s) to notice it, one vote, the final
  # checkpoint and leaving (docs/SCALING.md).
  assert took < max_wait + 30, took


def test_kill_9_of_the_chief_stops_the_other_worker_with_one_line(tmp_path):
  ports, workers = _workers(tmp_path / "run", 10**9)
  lines = []
  with procs.killed_on_exit(*workers) as (chief, other):
    procs.read_until(other, lambda l: l.startswith("env_steps="), lines)
    killed_at = procs.kill_9(chief)
    output = procs.finish(other, lines, timeout=120)
    took = time.monotonic() - killed_at
  print(f"kill -9 of the chief -> the other worker's exit {took:.1f} s")
  _assert_one_lost_line(other, output, ports, lost=0, survivor=1)
  assert took < 40, took
