"""The trainer binary without data: one line (kill -9 and SIGTERM with
resume: test_train_steps_per_call.py and test_external_actor.py; actor
processes: test_train_actor_processes.py)."""

from tests.trainers import procs


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
