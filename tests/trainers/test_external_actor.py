"""An external actor process (`trainers.actor`) never outlives the trainer
it feeds, and stops cleanly on SIGTERM (exit 0) while the trainer runs."""

import re
import signal
import subprocess

from tests.trainers import procs

_ACTOR_FLAGS = ["--agent=stac", "--env=catch", "--num_envs=4",
                "--unroll_length=4", "--config=mlp_hidden_sizes=16",
                "--config=head_hidden_sizes=16"]


def _trainer_and_actor(tmp_path, total_env_steps, actor_flags=()):
  lines = []
  trainer = procs.start("trainers.train", [
      f"--logdir={tmp_path / 'run'}", "--agent=stac", "--env=catch",
      "--num_actors=0", f"--total_env_steps={total_env_steps}",
      *procs.TINY_FLAGS])
  started = procs.read_until(trainer, lambda l: "reverb server on port" in l,
                             lines)
  port = int(re.search(r"port (\d+)", started).group(1))
  actor = procs.start("trainers.actor", [
      f"--reverb_address=127.0.0.1:{port}", *_ACTOR_FLAGS, *actor_flags])
  return trainer, actor, lines


def _wait_exit(proc, timeout_s):
  """The output of `proc` once it exited; fails the test after `timeout_s`."""
  try:
    out, _ = proc.communicate(timeout=timeout_s)
  except subprocess.TimeoutExpired:
    proc.kill()
    out, _ = proc.communicate()
    raise AssertionError(f"no exit within {timeout_s}s; output:\n"
                         + out[-3000:]) from None
  return out


def test_external_actor_exits_after_the_trainer_finished(tmp_path):
  trainer, actor, lines = _trainer_and_actor(
      tmp_path, 64, ["--server_timeout_secs=3"])
  try:
    output = procs.finish(trainer, lines, timeout=300)
    assert trainer.returncode == 0, output[-3000:]
    assert "training completed: env_steps=64" in output
    actor_output = _wait_exit(actor, 60)
  finally:
    if actor.poll() is None:
      actor.kill()
  assert actor.returncode == 1, actor_output[-3000:]
  message = [l for l in actor_output.splitlines()
             if l.startswith("actor error:")]
  assert len(message) == 1, actor_output[-3000:]
  assert "has not answered" in message[0]
  assert "Traceback" not in actor_output
  unrolls = int(re.search(r"actor done: unrolls=(\d+)",
                          actor_output).group(1))
  # The 4 learner steps of 4 items each: 4 unrolls of its 4 environments.
  assert unrolls >= 4


def test_sigterm_stops_a_running_external_actor(tmp_path):
  trainer, actor, lines = _trainer_and_actor(tmp_path, 100_000_000)
  try:
    procs.read_until(trainer, lambda l: l.startswith("env_steps="), lines)
    actor.send_signal(signal.SIGTERM)
    # The trainer still answers, so only the signal can stop the actor. The
    # bound is against a hang only: a stop takes a few seconds, more on a
    # loaded 2-core machine, and speed is not what this test is about.
    actor_output = _wait_exit(actor, 120)
    assert actor.returncode == 0, actor_output[-3000:]
    assert re.search(r"actor done: unrolls=[1-9]", actor_output)
  finally:
    if actor.poll() is None:
      actor.kill()
    trainer.send_signal(signal.SIGTERM)
    procs.finish(trainer, lines, timeout=120)
