"""The trainer with several learner steps per call: with XLA per replica,
and under MirroredStrategy on two logical CPUs (smoke, tiny settings).

The XLA run is killed with kill -9 once it has saved two checkpoints (no
chance to clean up: every checkpoint the index names must still restore),
the Mirrored run is stopped by SIGTERM after its first progress line; both
are resumed to a fixed length, and their exported policies are played.
"""

import os
import re
import signal

import numpy as np
import pytest
import tensorflow as tf

from tf_metagrad import runs as runs_lib
from tf_metagrad.serving import playback
from tests.training import procs

FRAMES = 4 * 4  # unroll_length x batch_size of procs.TINY_FLAGS.
STEPS_PER_CALL = 4


def _counters(pattern, output):
  match = re.search(pattern + r"env_steps=(\d+) learner_steps=(\d+)", output)
  assert match, output[-3000:]
  return int(match.group(1)), int(match.group(2))


CONFIGS = {
    "xla": ["--config=jit_compile=true"],
    # The thread-pool flags ride along: they must be applied before the
    # logical devices and the strategy start the runtime.
    "mirrored": ["--strategy=mirrored", "--logical_cpus=2",
                 "--inter_op_threads=2", "--intra_op_threads=1"],
}
# How each first session ends, and the flags it runs with until then.
KILL_9 = {"xla": True, "mirrored": False}
FIRST_FLAGS = {"xla": ["--checkpoint_every_secs=0", "--native_logs=all"],
               "mirrored": []}


def _stop_when(name, saved):
  """The line after which the first session of `name` is stopped."""
  if KILL_9[name]:
    return lambda l: (l.startswith("saved checkpoint") and
                      saved.append(l) is None and len(saved) >= 2)
  return lambda l: l.startswith("env_steps=")


def _common(logdir, flags):
  return [f"--logdir={logdir}", "--agent=stac", "--env=catch",
          f"--steps_per_call={STEPS_PER_CALL}", *flags, *procs.TINY_FLAGS]


@pytest.fixture(name="runs", scope="module")
def runs_fixture(tmp_path_factory):
  """name -> (logdir, output of the stopped session, of the resumed one,
  checkpoint lines the first session printed).

  The two configurations run side by side: each session spends most of its
  time tracing and compiling on one core.
  """
  logdirs = {name: str(tmp_path_factory.mktemp(name) / "run")
             for name in CONFIGS}
  first = {name: procs.start("trainers.train", _common(
      logdirs[name], flags) + FIRST_FLAGS[name] + [
          "--total_env_steps=100000000"])
           for name, flags in CONFIGS.items()}
  stopped, outputs, second = {}, {}, {}
  saved = {name: [] for name in CONFIGS}
  try:
    for name, proc in first.items():
      lines = []
      procs.read_until(proc, _stop_when(name, saved[name]), lines)
      if KILL_9[name]:
        proc.kill()  # SIGKILL: no chance to checkpoint or clean up.
      else:
        proc.send_signal(signal.SIGTERM)
      outputs[name] = lines
    for name, proc in first.items():
      outputs[name] = procs.finish(proc, outputs[name], timeout=300)
      if KILL_9[name]:
        assert proc.returncode == -signal.SIGKILL
        stopped[name] = runs_lib.checkpoint_env_steps(
            runs_lib.latest_checkpoint(logdirs[name]))
      else:
        assert proc.returncode == 143, outputs[name][-3000:]
        stopped[name] = _counters("training stopped by SIGTERM: ",
                                  outputs[name])[0]
    # Six more steps: a call of 4, then one cut to 2 at the run's length.
    for name, flags in CONFIGS.items():
      second[name] = procs.start("trainers.train", _common(
          logdirs[name], flags) + [
              f"--total_env_steps={stopped[name] + 6 * FRAMES}"])
    results = {}
    for name, proc in second.items():
      output = procs.finish(proc, [], timeout=300)
      assert proc.returncode == 0, output[-3000:]
      results[name] = (logdirs[name], outputs[name], output, saved[name])
  finally:
    for proc in list(first.values()) + list(second.values()):
      if proc.poll() is None:
        proc.kill()
        proc.communicate()
  return results


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_stops_resumes_and_exports_a_policy_that_plays(runs, name):
  logdir, output, resumed, saved = runs[name]
  progress = [tuple(int(x) for x in re.match(
      r"env_steps=(\d+) .* learner_steps=(\d+)", l).groups())
              for l in output.splitlines() if l.startswith("env_steps=")]
  # Every call made 4 steps, and the host's counters are the graph's.
  assert progress and all(s % STEPS_PER_CALL == 0 and e == s * FRAMES
                          for e, s in progress), progress
  if KILL_9[name]:
    stopped = _counters(r"resumed from \S+: ", resumed)
    # At least the last checkpoint announced before the kill.
    assert stopped[0] >= _counters("saved checkpoint.*", saved[-1])[0] > 0
  else:
    assert "training stopped by SIGTERM" in output
    stopped = _counters("training stopped by SIGTERM: ", output)
    assert _counters(r"resumed from \S+: ", resumed) == stopped
  assert stopped[0] > 0 and stopped[0] == stopped[1] * FRAMES, stopped
  assert _counters("training completed: ", resumed) == (
      stopped[0] + 6 * FRAMES, stopped[1] + 6)
  assert "final_eval_mean_return=" in resumed
  replicas = 2 if name == "mirrored" else 1
  assert re.search(rf"reverb server on port \d+ .* replicas={replicas}\n",
                   resumed)
  path = os.path.join(logdir, "saved_model")
  assert f"exported policy to {path}" in resumed
  returns = playback.evaluate(path, episodes=2, seed=5)
  # Catch pays +1 or -1 once per episode.
  assert returns.shape == (2,) and np.all(np.abs(returns) == 1.0), returns


def test_kill_9_leaves_every_indexed_checkpoint_restorable(runs):
  logdir, output, resumed, _ = runs["xla"]
  # --native_logs=all shows Reverb's start-up lines; the default drops them
  # (see test_native_logs.py).
  assert "Started replay server on port" in output, output[-3000:]
  assert "[reverb/cc/" not in resumed, resumed[-3000:]
  state = tf.train.get_checkpoint_state(os.path.join(logdir, "checkpoints"))
  assert state and len(state.all_model_checkpoint_paths) >= 2
  spec = runs_lib.load_spec(logdir)
  for path in state.all_model_checkpoint_paths:
    counter = tf.Variable(-1, dtype=tf.int64)
    runs_lib.restore(runs_lib.make_checkpoint(
        runs_lib.build_learner(spec), env_steps=counter), path)
    assert int(counter.numpy()) > 0


@pytest.mark.parametrize("flags,message", [
    (["--strategy=mirrored", "--logical_cpus=2",
      "--config=jit_compile=true"],
     "--config=jit_compile=true with --strategy=mirrored: jit_compile=True "
     "compiles the per-replica learner step, which MirroredStrategy cannot "
     "run under XLA"),
    (["--steps_per_call=0"], "--steps_per_call"),
])
def test_unsupported_settings_are_one_line_errors(tmp_path, flags, message):
  lines = []
  proc = procs.start("trainers.train", [
      f"--logdir={tmp_path / 'run'}", "--agent=impala", "--env=catch",
      *flags, *procs.TINY_FLAGS])
  output = procs.finish(proc, lines, timeout=120)
  assert proc.returncode == 1, output[-3000:]
  errors = [l for l in output.splitlines() if l.startswith("error: ")]
  assert len(errors) == 1 and message in errors[0], output[-3000:]
  assert "Traceback" not in output
  assert not os.path.exists(tmp_path / "run" / "checkpoints")
