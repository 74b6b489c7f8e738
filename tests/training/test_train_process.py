"""The trainer binary's exits: without data (one line, and a first session
leaves its run directory as it found it), after SIGINT/SIGTERM (130/143,
checkpointed, resumed by the same command). kill -9 with resume:
test_train_steps_per_call.py; actor processes:
test_train_actor_processes.py."""

import os
import signal

from tests.training import procs
from tf_metagrad.training import actor_pool

_NO_DATA = ["--agent=impala", "--env=catch", "--num_actors=0",
            "--max_data_wait_secs=1", *procs.TINY_FLAGS,
            "--data_timeout_secs=0.5"]


def _files(root):
  """Every file under `root`, relative to it."""
  return {os.path.relpath(os.path.join(d, f), root)
          for d, _, names in os.walk(root) for f in names}


def _assert_no_data_error(proc, output):
  assert proc.returncode == 1, output[-3000:]
  errors = [l for l in output.splitlines() if l.startswith("error: ")]
  assert len(errors) == 1 and "No trajectories for" in errors[0], output
  assert "Traceback" not in output


def test_no_data_leaves_a_first_run_directory_as_found(tmp_path):
  # A new directory (and the parent created for it), and one of the
  # user's own that already holds a file.
  new = tmp_path / "new" / "run"
  mine = tmp_path / "mine"
  mine.mkdir()
  (mine / "notes.txt").write_text("mine")
  started = [procs.start("trainers.train", [f"--logdir={logdir}", *_NO_DATA])
             for logdir in (new, mine)]
  for proc in started:
    _assert_no_data_error(proc, procs.finish(proc, [], timeout=120))
  assert not (tmp_path / "new").exists()
  assert _files(mine) == {"notes.txt"}


def test_signals_exit_130_and_143_after_the_checkpoint(tmp_path):
  logdir = tmp_path / "run"
  common = [f"--logdir={logdir}", "--agent=impala", "--env=catch",
            "--total_env_steps=100000000", *procs.TINY_FLAGS]
  # SIGINT while a first session waits for data it never gets: no learner
  # step, so nothing of it stays.
  waiting = tmp_path / "waiting"
  idle = procs.start("trainers.train", [
      f"--logdir={waiting}", "--agent=impala", "--env=catch",
      "--num_actors=0", *procs.TINY_FLAGS])
  lines = []
  proc = procs.start("trainers.train", common)
  try:
    procs.read_until(proc, lambda l: l.startswith("env_steps="), lines)
    proc.send_signal(signal.SIGTERM)
    output = procs.finish(proc, lines, timeout=120)
    idle_lines = []
    procs.read_until(idle, lambda l: l.startswith("reverb server on port"),
                     idle_lines)
    idle.send_signal(signal.SIGINT)
    idle_output = procs.finish(idle, idle_lines, timeout=120)
  finally:
    for started in (proc, idle):
      if started.poll() is None:
        started.kill()
        started.communicate()
  assert proc.returncode == 128 + signal.SIGTERM == 143, output[-3000:]
  assert "training stopped by SIGTERM" in output
  saved = [l for l in output.splitlines() if l.startswith("saved checkpoint")]
  assert saved and "learner_steps=0" not in saved[-1], output[-3000:]
  assert idle.returncode == 128 + signal.SIGINT == 130, idle_output[-3000:]
  assert "training stopped by SIGINT" in idle_output
  assert not waiting.exists()

  # The same command resumes; a resumed session that gets no data stops
  # with its error and leaves every file of the run where it was.
  before = _files(logdir)
  checkpoints = sorted(os.listdir(logdir / "checkpoints"))
  proc = procs.start("trainers.train", common + [
      "--num_actors=0", "--max_data_wait_secs=1", "--data_timeout_secs=0.5"])
  output = procs.finish(proc, [], timeout=120)
  _assert_no_data_error(proc, output)
  assert "resumed from" in output
  assert before <= _files(logdir)
  assert sorted(os.listdir(logdir / "checkpoints")) == checkpoints


def test_actor_processes_import_from_the_trainers_directory(tmp_path,
                                                            monkeypatch):
  # Where the trainer found the user's environment module (tf_metagrad.
  # scripts puts it on the trainer's own path).
  monkeypatch.chdir(tmp_path)
  env = actor_pool.process_environment({"PYTHONPATH": "/elsewhere"})
  assert env["PYTHONPATH"].split(os.pathsep) == [procs.ROOT, os.getcwd(),
                                                 "/elsewhere"]
