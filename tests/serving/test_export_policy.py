"""Exporting policies: functions, metadata, errors and atomic writes."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.serving import helpers
from tf_metagrad import runs
from tf_metagrad.agents import acting
from tf_metagrad.serving import export_policy
from tf_metagrad.serving import saved_policy


@pytest.fixture(scope="module")
def catch_run(tmp_path_factory):
  """A STAC run on catch, exported from its run directory."""
  logdir = tmp_path_factory.mktemp("catch_run")
  spec, learner, _, _ = helpers.make_run(logdir, "stac", "catch")
  path = export_policy.export_from_logdir(str(logdir))
  return logdir, spec, learner, path


def _outside(path):
  """Siblings the atomic write may leave behind: none are allowed."""
  parent, name = os.path.split(path.rstrip("/"))
  return sorted(f for f in os.listdir(parent)
                if f.startswith(name) and f != name)


def test_default_output_is_logdir_saved_model(catch_run):
  logdir, _, _, path = catch_run
  assert path == os.path.join(str(logdir), "saved_model")
  assert tf.saved_model.contains_saved_model(path)
  assert _outside(path) == []


def test_metadata_describes_the_run(catch_run):
  _, spec, learner, path = catch_run
  metadata = saved_policy.load_policy(path).metadata
  assert metadata["format_version"] == 1
  assert metadata["agent"] == "stac"
  assert metadata["env"] == "catch"
  assert runs.RunSpec.from_json(metadata["run_spec_json"]) == spec
  assert json.loads(metadata["config_json"])["mlp_hidden_sizes"] == [16]
  np.testing.assert_array_equal(metadata["observation_shape"], [10, 5])
  assert metadata["observation_dtype"] == "float32"
  assert metadata["action_space"] == "Discrete(3)"
  assert metadata["action_shape"].shape == (0,)
  assert metadata["action_dtype"] == "int32"
  assert metadata["env_steps"] == 1234
  assert metadata["learner_steps"] == 7
  assert metadata["recurrent"] is False
  names = ["alpha", "g_e", "g_p", "g_v", "gamma", "lambda_"]
  assert metadata["meta_parameter_names"] == names
  assert metadata["meta_parameter_count"] == 6


def test_metaparameter_values_equal_the_learners(catch_run):
  _, _, learner, path = catch_run
  exported = saved_policy.load_policy(path).meta_values
  expected = {k: v.numpy() for k, v in learner.meta_values().items()}
  assert sorted(exported) == sorted(expected) and len(expected) == 6
  for name, value in expected.items():
    np.testing.assert_array_equal(exported[name], value, err_msg=name)
  # The random logits moved every value away from its initial sigmoid(4.6).
  assert len({float(v) for v in expected.values()}) == 6


def test_greedy_and_sampled_actions_equal_the_in_process_policy(catch_run):
  _, _, learner, path = catch_run
  loaded = tf.saved_model.load(path)
  policy = acting.Policy(learner.network)
  obs = helpers.observations((10, 5), batch=32)
  greedy = loaded.greedy_action(obs).numpy()
  np.testing.assert_array_equal(greedy, policy.greedy(obs).numpy())
  assert len(set(greedy.tolist())) > 1  # The check is not vacuous.
  np.testing.assert_array_equal(
      loaded.signatures["serving_default"](observation=obs)["action"],
      greedy)
  for seed in ([0, 1], [7, 123456789]):
    seed = tf.constant(seed, tf.int64)
    expected_action, expected_log_prob = policy.sample(obs, seed)
    got = loaded.action(obs, seed)
    np.testing.assert_array_equal(got["action"], expected_action)
    np.testing.assert_allclose(got["log_prob"], expected_log_prob,
                               rtol=1e-6, atol=1e-6)
    by_signature = loaded.signatures["action"](observation=obs, seed=seed)
    np.testing.assert_array_equal(by_signature["action"], expected_action)
  first = loaded.action(obs, tf.constant([0, 1], tf.int64))["action"]
  other = loaded.action(obs, tf.constant([0, 2], tf.int64))["action"]
  assert not np.array_equal(first, other)


def test_initial_state_of_a_feed_forward_policy_is_empty(catch_run):
  path = catch_run[3]
  loaded = tf.saved_model.load(path)
  assert loaded.get_initial_state(tf.constant(4, tf.int64)) == {}
  assert saved_policy.load_policy(path).get_initial_state(4) == {}


def test_wrong_observation_names_the_expected_spec(catch_run):
  policy = saved_policy.load_policy(catch_run[3])
  obs = helpers.observations((10, 5), batch=2)
  with pytest.raises(ValueError) as error:
    policy.greedy_action(obs[0])
  assert str(error.value) == (
      "observation must have shape [None, 10, 5] and dtype float32, got "
      "shape [10, 5] and dtype float32 (a single observation needs a "
      "leading batch dimension).")
  with pytest.raises(ValueError, match=r"shape \[None, 10, 5\] and dtype "
                     r"float32, got shape \[2, 10, 5\] and dtype float64"):
    policy.action(obs.astype(np.float64), [0, 1])
  with pytest.raises(ValueError, match=r"got shape \[2, 50\]"):
    policy.greedy_action(obs.reshape(2, 50))
  with pytest.raises(ValueError, match=r"seed must be two integers"):
    policy.action(obs, [0.5, 1.0])


def test_graph_clients_get_the_spec_in_the_error(catch_run):
  """What TF Serving or the C++ API see (no Python-side shape check)."""
  path = catch_run[3]
  obs = helpers.observations((10, 5), batch=2)
  with tf.Graph().as_default() as graph, tf.compat.v1.Session() as session:
    meta_graph = tf.compat.v1.saved_model.loader.load(
        session, ["serve"], path)
    signature = meta_graph.signature_def["serving_default"]
    feed = graph.get_tensor_by_name(signature.inputs["observation"].name)
    fetch = graph.get_tensor_by_name(signature.outputs["action"].name)
    # Session.run checks feeds against the signature in Python; _do_run
    # feeds the raw graph, as a non-Python client does.
    run = lambda x: session._do_run(  # pylint: disable=protected-access
        None, [], [fetch], {feed.ref(): x}, None, None)[0]
    assert run(obs).shape == (2,)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"observation must have shape \[None, 10, 5\] "
                       r"and dtype float32, got shape\] \[2 50\]"):
      run(obs.reshape(2, 50))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="Expects arg.0. to be float but double"):
      run(obs.astype(np.float64))


def test_load_policy_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="No SavedModel at"):
    saved_policy.load_policy(str(tmp_path / "nothing"))
  module = tf.Module()
  module.f = tf.function(lambda: tf.constant(1.0), input_signature=[],
                         autograph=False)
  tf.saved_model.save(module, str(tmp_path / "other"))
  with pytest.raises(ValueError, match="not a policy exported by"):
    saved_policy.load_policy(str(tmp_path / "other"))


def test_continuous_policy_with_vector_metaparameters(tmp_path):
  _, learner, _, _ = helpers.make_run(tmp_path, "drmg", "gym:Pendulum-v1",
                                      env_steps=99)
  path = export_policy.export_from_logdir(str(tmp_path),
                                          output=str(tmp_path / "policy"))
  policy = saved_policy.load_policy(path)
  metadata = policy.metadata
  assert metadata["action_space"] == "Box(-1.0, 1.0, (1,), float32)"
  np.testing.assert_array_equal(metadata["action_shape"], [1])
  assert metadata["action_dtype"] == "float32"
  np.testing.assert_array_equal(metadata["observation_shape"], [3])
  assert metadata["env_steps"] == 99
  expected = learner.meta_values()
  assert expected["gamma"].shape == (16,)  # DrMG: one gamma per quantile.
  assert sorted(policy.meta_values) == sorted(expected)
  for name, value in expected.items():
    np.testing.assert_array_equal(policy.meta_values[name], value.numpy())

  reference = acting.Policy(learner.network)
  obs = helpers.observations((3,), batch=16)
  # The exported graph runs fused oneDNN kernels, the reference unfused
  # eager ones, so the float32 MLP of the mean sums in another order. A
  # K-term dot product moves by up to K u sum|w x| (u = 2^-24); its layers
  # here (K = 3, 16, 16, sum|w x| <= 1.8, 3.7, 4.0) give 7.7e-6 in the worst
  # case, and tanh does not amplify. 1-2 ulp were seen; a wrong action is
  # off by far more than 1e-5.
  action_atol = 1e-5
  greedy = policy.greedy_action(obs)
  assert greedy.shape == (16, 1) and greedy.dtype == np.float32
  np.testing.assert_allclose(greedy, reference.greedy(obs), rtol=0,
                             atol=action_atol)
  sampled = policy.action(obs, [3, 4])
  action, log_prob = reference.sample(obs, tf.constant([3, 4], tf.int64))
  # mean + std * noise: the std head's error enters |noise| (< 3) times.
  np.testing.assert_allclose(sampled["action"], action, rtol=0,
                             atol=4 * action_atol)
  np.testing.assert_allclose(sampled["log_prob"], log_prob, rtol=1e-5,
                             atol=1e-5)
  assert np.all(np.abs(sampled["action"]) <= 1.0)
  assert not np.allclose(sampled["action"], greedy)


def test_frodo_exports_metaparameter_names_only(tmp_path):
  _, learner, _, _ = helpers.make_run(tmp_path, "frodo", "catch")
  metadata = saved_policy.load_policy(
      export_policy.export_from_logdir(str(tmp_path))).metadata
  assert not [k for k in metadata if k.startswith("meta/")]
  raw = learner.meta_params()
  assert raw and metadata["meta_parameter_names"] == sorted(raw)
  assert metadata["meta_parameter_count"] == sum(
      int(np.size(v)) for v in raw.values())


def test_explicit_checkpoint_is_exported(tmp_path):
  _, learner, manager, env_steps = helpers.make_run(tmp_path, "impala",
                                                    "catch", env_steps=10)
  first = manager.latest_checkpoint
  obs = helpers.observations((10, 5), batch=8)
  seed = tf.constant([1, 2], tf.int64)
  first_log_prob = acting.Policy(learner.network).sample(obs, seed)[1]
  for v in learner.network.trainable_variables:
    v.assign(v + 1.0)
  env_steps.assign(20)
  manager.save()

  def exported(checkpoint):
    return saved_policy.load_policy(export_policy.export_from_logdir(
        str(tmp_path), checkpoint=checkpoint, output=str(tmp_path / "out")))

  latest = exported(None)
  assert latest.metadata["env_steps"] == 20
  assert latest.metadata["meta_parameter_names"] == []  # IMPALA.
  in_directory = exported(os.path.join(str(tmp_path), "checkpoints"))
  assert in_directory.metadata["env_steps"] == 20
  chosen = exported(first)
  assert chosen.metadata["env_steps"] == 10
  np.testing.assert_allclose(chosen.action(obs, seed)["log_prob"],
                             first_log_prob, rtol=1e-6, atol=1e-6)
  assert not np.allclose(latest.action(obs, seed)["log_prob"],
                         first_log_prob)


def test_run_errors(tmp_path):
  with pytest.raises(runs.RunError, match="does not exist"):
    export_policy.export_from_logdir(str(tmp_path / "missing"))
  with pytest.raises(runs.RunError, match="run_spec.json does not exist"):
    export_policy.export_from_logdir(str(tmp_path))
  runs.save_spec(str(tmp_path), runs.RunSpec(agent="impala", env="catch"))
  with pytest.raises(runs.RunError, match="No checkpoint in .*checkpoints; "
                     "train first or pass --checkpoint"):
    export_policy.export_from_logdir(str(tmp_path))
  with pytest.raises(runs.RunError, match="ckpt-9 does not exist"):
    export_policy.export_from_logdir(
        str(tmp_path), checkpoint=str(tmp_path / "ckpt-9"))
  with pytest.raises(TypeError, match="spec must be a tf_metagrad.runs"):
    export_policy.export(None, {"agent": "impala"}, 0, str(tmp_path / "x"))


_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
_NO_PATH_HINT = ("; to make it importable, run from the folder that holds "
                 "my_envs/ or my_envs.py, or add that folder to PYTHONPATH")


def _run_of_an_absent_module(logdir, env):
  """A run directory whose env module is not importable here: its spec and
  a checkpoint index naming a checkpoint (never read: the learner cannot be
  rebuilt first)."""
  runs.save_spec(str(logdir), runs.RunSpec(agent="impala", env=env))
  checkpoints = logdir / runs.CHECKPOINT_DIR
  checkpoints.mkdir()
  (checkpoints / "checkpoint").write_text('model_checkpoint_path: "ckpt-1"\n')
  (checkpoints / "ckpt-1.index").write_bytes(b"")


def test_unimportable_env_module_says_how_to_make_it_importable(tmp_path):
  _run_of_an_absent_module(tmp_path / "gym", "gym:my_envs:MyCorridor-v0")
  with pytest.raises(runs.RunError) as error:
    export_policy.export_from_logdir(str(tmp_path / "gym"))
  assert str(error.value) == (
      f"Cannot rebuild the learner of the run in {tmp_path / 'gym'} (agent "
      "impala, env gym:my_envs:MyCorridor-v0): Cannot import module "
      "'my_envs' for Gymnasium id 'MyCorridor-v0' (ModuleNotFoundError: No "
      f"module named 'my_envs'){_NO_PATH_HINT}.")
  # A package that is found but lacks the module: no path advice.
  _run_of_an_absent_module(tmp_path / "dm", "dm_env:tests.no_such:make")
  with pytest.raises(runs.RunError, match=r"No module named "
                     r"'tests.no_such'\)\.$"):
    export_policy.export_from_logdir(str(tmp_path / "dm"))


@pytest.mark.parametrize("launcher", ["console_script", "python_m"])
def test_unimportable_env_module_is_one_line_on_stderr(tmp_path, launcher):
  logdir = tmp_path / "run"
  _run_of_an_absent_module(logdir, "gym:my_envs:MyCorridor-v0")
  if launcher == "console_script":
    argv = [os.path.join(os.path.dirname(sys.executable),
                         "tf-metagrad-export"), f"--logdir={logdir}"]
    cwd = tmp_path
  else:
    argv = [sys.executable, "-m", "export.export_policy",
            f"--logdir={logdir}"]
    cwd = _ROOT
  # TensorFlow's own log lines are left on: the program filters them.
  result = helpers.run_clean(argv, cwd=cwd, tf_log_level=None)
  assert result.returncode == 1
  assert result.stderr.splitlines() == [
      f"error: Cannot rebuild the learner of the run in {logdir} (agent "
      "impala, env gym:my_envs:MyCorridor-v0): Cannot import module "
      "'my_envs' for Gymnasium id 'MyCorridor-v0' (ModuleNotFoundError: No "
      f"module named 'my_envs'){_NO_PATH_HINT}."], result.stderr[-3000:]
  assert not (logdir / "saved_model").exists()


def test_reexport_replaces_the_previous_one(tmp_path):
  spec, learner, _, _ = helpers.make_run(tmp_path, "impala", "catch")
  output = str(tmp_path / "policy")
  export_policy.export(learner, spec, 5, output)
  export_policy.export(learner, spec, tf.Variable(6, dtype=tf.int64), output)
  assert saved_policy.load_policy(output).metadata["env_steps"] == 6
  assert _outside(output) == []


def test_failed_write_leaves_the_previous_export_intact(tmp_path,
                                                         monkeypatch):
  spec, learner, _, _ = helpers.make_run(tmp_path, "impala", "catch")
  output = str(tmp_path / "policy")
  export_policy.export(learner, spec, 5, output)

  def crash_mid_write(module, export_dir, signatures=None):
    del module, signatures
    tf.io.gfile.makedirs(os.path.join(export_dir, "variables"))
    with open(os.path.join(export_dir, "saved_model.pb"), "wb") as f:
      f.write(b"partial")
    raise OSError("No space left on device")

  with monkeypatch.context() as patch:
    patch.setattr(tf.saved_model, "save", crash_mid_write)
    with pytest.raises(OSError, match="No space left"):
      export_policy.export(learner, spec, 6, output)
  assert saved_policy.load_policy(output).metadata["env_steps"] == 5
  assert _outside(output) == []

  real_rename = tf.io.gfile.rename

  def refuse_new(src, dst, overwrite=False):
    if ".tmp-" in src:
      raise tf.errors.PermissionDeniedError(None, None, "denied")
    return real_rename(src, dst, overwrite)

  with monkeypatch.context() as patch:
    patch.setattr(tf.io.gfile, "rename", refuse_new)
    with pytest.raises(tf.errors.PermissionDeniedError):
      export_policy.export(learner, spec, 7, output)
  assert saved_policy.load_policy(output).metadata["env_steps"] == 5
  assert _outside(output) == []


def test_partial_export_of_a_dead_process_is_deleted(tmp_path):
  spec, learner, _, _ = helpers.make_run(tmp_path, "impala", "catch")
  output = str(tmp_path / "policy")
  # A pid that has exited: a child we started and reaped.
  child = subprocess.Popen([sys.executable, "-c", "pass"])
  child.wait()
  dead = f"{output}.tmp-{child.pid}"
  alive = f"{output}.tmp-{os.getppid()}"  # e.g. a concurrent export.
  for partial in (dead, alive):
    os.makedirs(os.path.join(partial, "variables"))
  export_policy.export(learner, spec, 5, output)
  assert saved_policy.load_policy(output).metadata["env_steps"] == 5
  assert _outside(output) == [os.path.basename(alive)]
