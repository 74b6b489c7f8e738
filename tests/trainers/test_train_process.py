"""The trainer binary: kill -9 + resume, the no-data error (SIGTERM: the
runs of test_train_steps_per_call.py and test_external_actor.py; actor
processes: test_train_actor_processes.py)."""

import os
import re

import tensorflow as tf

from tests.trainers import procs
from tf_metagrad import runs


def _env_steps(line):
  return int(re.search(r"env_steps=(\d+)", line).group(1))


def test_kill_9_then_resume_continues_the_counters(tmp_path):
  logdir = str(tmp_path / "run")
  flags = [f"--logdir={logdir}", "--agent=stac", "--env=catch",
           "--total_env_steps=100000000", "--checkpoint_every_secs=0",
           *procs.TINY_FLAGS]
  lines = []
  proc = procs.start("trainers.train", flags + ["--native_logs=all"])
  saved = []
  procs.read_until(proc, lambda l: l.startswith("saved checkpoint") and
                   saved.append(l) is None and len(saved) >= 2, lines)
  proc.kill()  # SIGKILL: no chance to checkpoint or clean up.
  proc.wait()
  # --native_logs=all shows Reverb's start-up lines.
  assert any("Started replay server on port" in l for l in lines), lines
  checkpointed = _env_steps(saved[-1])
  assert checkpointed > 0
  # Every checkpoint the index names is complete and restorable.
  state = tf.train.get_checkpoint_state(os.path.join(logdir, "checkpoints"))
  assert state and state.all_model_checkpoint_paths
  spec = runs.load_spec(logdir)
  for path in state.all_model_checkpoint_paths:
    counter = tf.Variable(-1, dtype=tf.int64)
    runs.restore(runs.make_checkpoint(runs.build_learner(spec),
                                      env_steps=counter), path)
    assert int(counter.numpy()) > 0

  total = checkpointed + 4 * 4 * 3
  lines = []
  proc = procs.start("trainers.train", [
      f"--logdir={logdir}", "--agent=stac", "--env=catch",
      f"--total_env_steps={total}", *procs.TINY_FLAGS])
  output = procs.finish(proc, lines)
  assert proc.returncode == 0, output[-3000:]
  resumed = re.search(r"resumed from \S+: env_steps=(\d+) learner_steps=(\d+)",
                      output)
  assert resumed, output[-3000:]
  assert int(resumed.group(1)) >= checkpointed
  done = re.search(r"training completed: env_steps=(\d+) learner_steps=(\d+)",
                   output)
  assert int(done.group(1)) >= total
  assert int(done.group(2)) == int(done.group(1)) // 16
  assert "final_eval_mean_return=" in output
  # The default --native_logs=quiet drops them (see test_native_logs.py).
  assert "[reverb/cc/" not in output, output[-3000:]


def test_no_data_is_a_one_line_error(tmp_path):
  lines = []
  proc = procs.start("trainers.train", [
      f"--logdir={tmp_path / 'run'}", "--agent=impala", "--env=catch",
      "--num_actors=0", "--max_data_wait_secs=1", *procs.TINY_FLAGS,
      "--data_timeout_secs=0.5"])
  output = procs.finish(proc, lines, timeout=120)
  assert proc.returncode == 1, output[-3000:]
  errors = [l for l in output.splitlines() if l.startswith("error: ")]
  assert len(errors) == 1 and "No trajectories for" in errors[0], output
  assert "Traceback" not in output
