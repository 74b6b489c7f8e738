"""The export binaries, a client process where tf_metagrad is absent, and
the programs' import path (the working directory, as `python -m` has it)."""

import os
import re
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.serving import helpers
from tf_metagrad.agents import acting
from tf_metagrad.programs import scripts
from tf_metagrad.serving import export_policy
from tf_metagrad.serving import playback

_BIN = os.path.dirname(sys.executable)

# Runs in a fresh interpreter where tf_metagrad is hidden (see
# helpers.HIDE_TF_METAGRAD), then serves the policy with TensorFlow and a
# vendored copy of tf_metagrad/serving/saved_policy.py.
_CLIENT = helpers.HIDE_TF_METAGRAD + r"""
import numpy as np
import tensorflow as tf

path, obs_file, out_file = sys.argv[1:]
obs = np.load(obs_file)
loaded = tf.saved_model.load(path)
seed = tf.constant([5, 6], tf.int64)
sampled = loaded.action(obs, seed)
policy = saved_policy.load_policy(path)
try:
  policy.greedy_action(obs[:, :3])
except ValueError as error:
  message = str(error)
np.savez(out_file,
         greedy=loaded.greedy_action(obs).numpy(),
         serving=loaded.signatures["serving_default"](observation=obs)[
             "action"].numpy(),
         action=sampled["action"].numpy(),
         log_prob=sampled["log_prob"].numpy(),
         helper_greedy=policy.greedy_action(obs),
         env=policy.metadata["env"],
         message=message)
assert not [m for m in sys.modules if m.split(".")[0] == "tf_metagrad"]
"""


_run = helpers.run_clean



@pytest.fixture(scope="module")
def run(tmp_path_factory):
  logdir = tmp_path_factory.mktemp("run")
  spec, learner, _, _ = helpers.make_run(logdir, "stac", "catch")
  path = export_policy.export(learner, spec, 1234,
                              str(logdir / "saved_model"))
  return logdir, learner, path


def test_loads_where_tf_metagrad_is_not_importable(run, tmp_path):
  _, learner, path = run
  obs = helpers.observations((10, 5), batch=16)
  np.save(tmp_path / "obs.npy", obs)
  result = _run([sys.executable, "-c", _CLIENT, path,
                 str(tmp_path / "obs.npy"), str(tmp_path / "out.npz"),
                 helpers.serving_copy(tmp_path)],
                cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  out = np.load(tmp_path / "out.npz")
  policy = acting.Policy(learner.network)
  greedy = policy.greedy(obs).numpy()
  for key in ("greedy", "serving", "helper_greedy"):
    np.testing.assert_array_equal(out[key], greedy, err_msg=key)
  action, log_prob = policy.sample(obs, tf.constant([5, 6], tf.int64))
  np.testing.assert_array_equal(out["action"], action)
  np.testing.assert_allclose(out["log_prob"], log_prob, rtol=1e-6, atol=1e-6)
  assert str(out["env"]) == "catch"
  assert str(out["message"]).startswith(
      "observation must have shape [None, 10, 5] and dtype float32, got "
      "shape [16, 3, 5]")


def test_saved_model_cli_lists_the_signatures(run):
  path = run[2]
  result = _run([os.path.join(_BIN, "saved_model_cli"), "show", "--all",
                 "--dir", path], cwd=os.path.dirname(path))
  assert result.returncode == 0, result.stderr[-3000:]
  listed = set(re.findall(r"signature_def\['(\w+)'\]", result.stdout))
  assert {"serving_default", "greedy_action", "action", "get_metadata",
          "get_initial_state"} <= listed
  default = result.stdout.split("signature_def['serving_default']")[1]
  assert "inputs['observation']" in default
  assert "shape: (-1, 10, 5)" in default.split("signature_def")[0]
  assert "outputs['action']" in default.split("signature_def")[0]


def test_export_binary(run, tmp_path):
  logdir = run[0]
  output = tmp_path / "exported"
  result = _run([os.path.join(_BIN, "tf-metagrad-export"),
                 f"--logdir={logdir}", f"--output={output}"], cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"Exported the policy to {output}" in result.stdout
  assert tf.saved_model.contains_saved_model(str(output))


def test_export_binary_missing_logdir_is_one_clean_line(tmp_path):
  missing = tmp_path / "no_such_run"
  result = _run([os.path.join(_BIN, "tf-metagrad-export"),
                 f"--logdir={missing}"], cwd=tmp_path, tf_log_level=None)
  assert result.returncode == 1
  # Exactly one line: the console script filters TensorFlow's start-up
  # noise (tf_metagrad.system.native_logs).
  assert result.stderr.splitlines() == [
      f"error: Run directory {missing} does not exist."]


def test_evaluate_binary_prints_mean_and_std(run, tmp_path):
  path = run[2]
  result = _run([os.path.join(_BIN, "tf-metagrad-evaluate"),
                 f"--saved_model={path}", "--env=catch", "--episodes=6",
                 "--seed=3"], cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  match = re.fullmatch(r"mean_return=(\S+) std_return=(\S+) episodes=6\n",
                       result.stdout)
  assert match, result.stdout
  returns = playback.evaluate(path, "catch", episodes=6, seed=3)
  assert set(returns.tolist()) <= {-1.0, 1.0}  # Catch's only returns.
  assert float(match.group(1)) == pytest.approx(returns.mean(), abs=1e-6)
  assert float(match.group(2)) == pytest.approx(returns.std(), abs=1e-6)


def test_evaluate_binary_errors(run, tmp_path):
  result = _run([os.path.join(_BIN, "tf-metagrad-evaluate"),
                 f"--saved_model={run[2]}", "--env=random_walk",
                 "--episodes=1"], cwd=tmp_path)
  assert result.returncode == 1
  errors = [l for l in result.stderr.splitlines() if l.startswith("error: ")]
  assert len(errors) == 1 and "do not fit the policy, which expects one " \
      "observation of shape [10, 5] and dtype float32" in errors[0], \
      result.stderr[-2000:]


def test_programs_import_from_the_working_directory(tmp_path, monkeypatch):
  # A console script's path starts at its bin/ folder, not where it runs.
  monkeypatch.chdir(tmp_path)
  monkeypatch.setattr(sys, "path", ["/venv/bin", "/venv/site-packages"])
  scripts.working_directory_on_path()
  assert sys.path == [os.getcwd(), "/venv/bin", "/venv/site-packages"]
  scripts.working_directory_on_path()  # python -m put it there already.
  assert sys.path == [os.getcwd(), "/venv/bin", "/venv/site-packages"]
