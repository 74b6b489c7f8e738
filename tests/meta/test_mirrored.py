"""MirroredStrategy over 2 logical CPUs equals one device on the same batch."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def test_two_replicas_match_one_device():
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
  proc = subprocess.run(
      [sys.executable, "-m", "tests.meta.mirrored_check"], cwd=ROOT, env=env,
      capture_output=True, text=True, timeout=600, check=False)
  assert proc.returncode == 0, proc.stderr[-4000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert result["replicas"] == 2
  assert result["meta_grad_norm"] > 1e-6
  assert result["meta_grad_max_abs_diff"] < 1e-10, result
  assert result["variables_max_abs_diff_after_step"] < 1e-10, result
  assert result["learner_steps"] == 1
  assert abs(result["outer_loss_single"]
             - result["outer_loss_mirrored_sum"]) < 1e-6, result
