"""The trainer binary with a Mirrored learner on two logical CPUs.

A file of its own: this run takes up to a minute on a loaded 2-core machine,
and `--dist loadfile` hands out the files with the fewest tests last, where
one long file would leave the other worker idle.
"""

import re

from tests.trainers import procs


def test_mirrored_strategy_on_two_logical_cpus_trains(tmp_path):
  lines = []
  proc = procs.start("trainers.train", [
      f"--logdir={tmp_path / 'run'}", "--agent=stac", "--env=catch",
      "--strategy=mirrored", "--logical_cpus=2", "--total_env_steps=64",
      *procs.TINY_FLAGS])
  output = procs.finish(proc, lines)
  assert proc.returncode == 0, output[-3000:]
  assert re.search(r"training completed: env_steps=64 learner_steps=4",
                   output), output[-2000:]
  assert re.search(r"reverb server on port \d+ .* replicas=2\n", output)
  assert "final_eval_mean_return=" in output
