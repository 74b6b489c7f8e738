"""MirroredStrategy over 2 logical CPUs equals one device on the same batch.

STAC (one inner step) and FRODO (M = 3 inner steps, each on its own slice of
the unroll) each run in their own subprocess, see `mirrored_check`; the two
are started together because tracing the learner steps takes most of the time.
"""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
AGENTS = ("stac", "frodo")

# The step moves some network weight by ~0.3 (learning rate 0.05) and some
# metaparameter by ~1e-3 (Adam's first step, meta learning rate 1e-3); a step
# that was skipped or assigned nothing moves none.
MIN_MOVE = 1e-4


@pytest.fixture(name="results", scope="module")
def results_fixture():
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
  procs = {}
  for agent in AGENTS:
    procs[agent] = subprocess.Popen(
        [sys.executable, "-m", "tests.meta.mirrored_check", agent], cwd=ROOT,
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  results = {}
  try:
    for agent, proc in procs.items():
      stdout, stderr = proc.communicate(timeout=600)
      assert proc.returncode == 0, (agent, stderr[-4000:])
      results[agent] = json.loads(stdout.strip().splitlines()[-1])
  finally:
    for proc in procs.values():
      if proc.poll() is None:
        proc.kill()
        proc.communicate()
  return results


@pytest.mark.parametrize("agent", AGENTS)
def test_two_replicas_match_one_device(results, agent):
  result = results[agent]
  assert result["replicas"] == 2
  assert result["meta_grad_norm"] > 1e-6
  assert result["meta_grad_max_abs_diff"] < 1e-10, result
  assert result["variables_max_abs_diff_after_step"] < 1e-10, result
  assert result["learner_steps"] == 1
  assert result["skipped_updates_single"] == 0, result
  assert result["skipped_updates_mirrored"] == 0, result
  for key in ("params_moved_single", "params_moved_mirrored",
              "meta_moved_single", "meta_moved_mirrored"):
    assert result[key] > MIN_MOVE, (key, result)
  assert abs(result["outer_loss_single"]
             - result["outer_loss_mirrored_sum"]) < 1e-6, result
