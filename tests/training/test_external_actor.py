"""An external actor process (`trainers.actor`) given only the trainer's
address feeds it, survives the trainer being killed and restarted on the
same port, and stops cleanly on SIGTERM (exit 0) while the trainer runs.

Its other rules (flags held to the learner's, giving up after
--server_timeout_secs, signals while waiting) are tested against a bare
server in test_remote_actor.py, which needs no trainer.
"""

import re
import signal
import socket
import subprocess

from tests.training import procs


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


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _env_steps(line):
  return int(re.search(r"env_steps=(\d+)", line).group(1))


def test_external_actor_survives_a_learner_restart(tmp_path):
  port = _free_port()
  trainer_flags = [f"--logdir={tmp_path / 'run'}", "--agent=stac",
                   "--env=catch", "--num_actors=0", f"--reverb_port={port}",
                   "--noexport", *procs.TINY_FLAGS]
  trainer_lines, actor_lines = [], []
  trainer = procs.start("trainers.train", trainer_flags + [
      "--total_env_steps=100000000", "--checkpoint_every_secs=0"])
  actor = None
  try:
    procs.read_until(trainer, lambda l: "reverb server on port" in l,
                     trainer_lines)
    actor = procs.start("trainers.actor",
                        [f"--reverb_address=127.0.0.1:{port}"])
    # Checkpoints with the actor's data in them (the only actor).
    saved = procs.read_until(
        trainer, lambda l: l.startswith("saved checkpoint") and
        _env_steps(l) > 0, trainer_lines)
    trainer.kill()  # SIGKILL: the server vanishes without a goodbye.
    trainer.wait()
    procs.read_until(actor, lambda l: "stopped answering" in l, actor_lines)
    assert actor.poll() is None

    # The same run, resumed on the same port, which only the surviving
    # actor can feed.
    trainer_lines = []
    trainer = procs.start("trainers.train", trainer_flags + [
        "--total_env_steps=100000000", "--max_data_wait_secs=300"])
    resumed = procs.read_until(
        trainer, lambda l: l.startswith("resumed from"), trainer_lines)
    procs.read_until(
        trainer, lambda l: l.startswith("env_steps=") and
        _env_steps(l) >= _env_steps(resumed) + 10 * 4 * 4, trainer_lines)
    assert _env_steps(resumed) >= _env_steps(saved), resumed
    back = procs.read_until(actor, lambda l: "reconnected" in l, actor_lines)
    assert "a restarted learner" in back
    # SIGTERM while it acts (the learner still answers) ends it with 0.
    actor.send_signal(signal.SIGTERM)
    actor_output = "".join(actor_lines) + _wait_exit(actor, 120)
    trainer.send_signal(signal.SIGTERM)
    output = procs.finish(trainer, trainer_lines, timeout=120)
    assert trainer.returncode == 143, output[-3000:]
    assert "stopped by SIGTERM" in output, output[-3000:]
  finally:
    for proc in (trainer, actor):
      if proc is not None and proc.poll() is None:
        proc.kill()
  assert actor.returncode == 0, actor_output[-3000:]
  assert actor_output.count("actor: feeding run") == 1, actor_output
  assert actor_output.count("reconnected") == 1, actor_output
  assert "Traceback" not in actor_output
  assert re.search(r"actor done: unrolls=[1-9]", actor_output)
