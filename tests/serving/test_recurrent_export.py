"""Exporting and serving a policy with an LSTM core (STAC supplement Table 2).

The exported functions must reproduce `acting.Policy.greedy_step` /
`sample_step` step by step, carrying the state, with the same weights.
"""

import os
import re
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.serving import helpers
from tf_metagrad.agents import acting
from tf_metagrad.serving import export_policy
from tf_metagrad.serving import playback
from tf_metagrad.serving import saved_policy

_STEPS = 6
_BATCH = 8
_NAMES = ["core_state_0", "core_state_1"]

# Steps the policy in a process where tf_metagrad is hidden; saves every
# step's greedy and sampled outputs.
_CLIENT = helpers.HIDE_TF_METAGRAD + r"""
import numpy as np
import tensorflow as tf

path, obs_file, out_file = sys.argv[1:]
obs = np.load(obs_file)
loaded = tf.saved_model.load(path)
policy = saved_policy.load_policy(path)
state = loaded.get_initial_state(tf.constant(obs.shape[1], tf.int64))
flat_state = dict(state)
helper_state = policy.get_initial_state(obs.shape[1])
out = {}
for t, batch in enumerate(obs):
  greedy = loaded.greedy_action(batch, state)
  state = greedy["next_state"]
  sampled = loaded.signatures["action"](
      observation=batch, seed=tf.constant([3, t], tf.int64), **flat_state)
  flat = loaded.signatures["serving_default"](observation=batch,
                                              **flat_state)
  flat_state = {k[len("next_"):]: v for k, v in flat.items()
                if k.startswith("next_")}
  helper_action, helper_state = policy.greedy_step(batch, helper_state)
  out[f"greedy_{t}"] = greedy["action"].numpy()
  out[f"serving_{t}"] = flat["action"].numpy()
  out[f"helper_{t}"] = helper_action
  out[f"sampled_{t}"] = sampled["action"].numpy()
  out[f"log_prob_{t}"] = sampled["log_prob"].numpy()
  for name, value in state.items():
    out[f"{name}_{t}"] = value.numpy()
    np.testing.assert_array_equal(flat_state[name].numpy(), value.numpy())
    np.testing.assert_array_equal(helper_state[name], value.numpy())
np.savez(out_file, recurrent=policy.recurrent, **out)
assert not [m for m in sys.modules if m.split(".")[0] == "tf_metagrad"]
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  logdir = tmp_path_factory.mktemp("recurrent")
  spec, learner, _, _ = helpers.make_run(
      logdir, "stac", "catch", core_units=4,
      env_kwargs=dict(rows=6, columns=4))
  path = export_policy.export_from_logdir(str(logdir))
  return learner, path


def _observations():
  rng = np.random.default_rng(0)
  return rng.uniform(-1.0, 1.0, (_STEPS, _BATCH, 6, 4)).astype(np.float32)


def _reference_steps(learner, obs):
  """Greedy actions, states and sampled outputs of the in-process policy."""
  policy = acting.Policy(learner.network)
  greedy_state = sample_state = policy.initial_state(obs.shape[1])
  steps = []
  for t, batch in enumerate(obs):
    action, greedy_state = policy.greedy_step(batch, greedy_state)
    sampled, log_prob, sample_state = policy.sample_step(
        batch, sample_state, tf.constant([3, t], tf.int64))
    steps.append(dict(greedy=action.numpy(),
                      state=[s.numpy() for s in greedy_state],
                      sampled=sampled.numpy(), log_prob=log_prob.numpy()))
  return steps


def test_metadata_gives_the_state_spec(run):
  metadata = saved_policy.load_policy(run[1]).metadata
  assert metadata["recurrent"] is True
  assert metadata["state_names"] == _NAMES
  for name in _NAMES:
    np.testing.assert_array_equal(metadata["state_shape/" + name], [4])
    assert metadata["state_dtype/" + name] == "float32"
  policy = saved_policy.load_policy(run[1])
  assert policy.recurrent
  assert policy.state_spec == {n: ((4,), tf.float32) for n in _NAMES}


def test_initial_state_is_zero(run):
  loaded = tf.saved_model.load(run[1])
  state = loaded.get_initial_state(tf.constant(5, tf.int64))
  assert sorted(state) == _NAMES
  for value in state.values():
    assert value.dtype == tf.float32
    np.testing.assert_array_equal(value.numpy(), np.zeros((5, 4)))
  by_signature = loaded.signatures["get_initial_state"](
      batch_size=tf.constant(2, tf.int64))
  assert {k: v.shape for k, v in by_signature.items()} == {
      n: (2, 4) for n in _NAMES}


def test_steps_equal_the_in_process_policy(run):
  learner, path = run
  obs = _observations()
  expected = _reference_steps(learner, obs)
  loaded = tf.saved_model.load(path)
  state = loaded.get_initial_state(tf.constant(_BATCH, tf.int64))
  sample_state = dict(state)
  for t, batch in enumerate(obs):
    greedy = loaded.greedy_action(batch, state)
    state = greedy["next_state"]
    np.testing.assert_array_equal(greedy["action"], expected[t]["greedy"])
    for name, value in zip(_NAMES, expected[t]["state"]):
      np.testing.assert_array_equal(state[name], value, err_msg=name)
    sampled = loaded.action(batch, tf.constant([3, t], tf.int64),
                            sample_state)
    sample_state = sampled["next_state"]
    np.testing.assert_array_equal(sampled["action"], expected[t]["sampled"])
    np.testing.assert_allclose(sampled["log_prob"], expected[t]["log_prob"],
                               rtol=1e-6, atol=1e-6)
  # Not vacuous: actions differ, and the carried state changes the action
  # probabilities (a step from the zero state gives other log-probs).
  assert len({a for s in expected for a in s["greedy"].tolist()}) > 1
  fresh = loaded.action(obs[-1], tf.constant([3, _STEPS - 1], tf.int64),
                        loaded.get_initial_state(tf.constant(_BATCH,
                                                             tf.int64)))
  assert np.abs(fresh["log_prob"] - expected[-1]["log_prob"]).max() > 1e-4


def test_loads_where_tf_metagrad_is_not_importable(run, tmp_path):
  learner, path = run
  obs = _observations()
  np.save(tmp_path / "obs.npy", obs)
  result = helpers.run_clean(
      [sys.executable, "-c", _CLIENT, path, str(tmp_path / "obs.npy"),
       str(tmp_path / "out.npz"), helpers.serving_copy(tmp_path)],
      cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  out = np.load(tmp_path / "out.npz")
  assert bool(out["recurrent"])
  for t, step in enumerate(_reference_steps(learner, obs)):
    for key in ("greedy", "serving", "helper"):
      np.testing.assert_array_equal(out[f"{key}_{t}"], step["greedy"],
                                    err_msg=f"{key}_{t}")
    for name, value in zip(_NAMES, step["state"]):
      np.testing.assert_array_equal(out[f"{name}_{t}"], value)
    np.testing.assert_array_equal(out[f"sampled_{t}"], step["sampled"])
    np.testing.assert_allclose(out[f"log_prob_{t}"], step["log_prob"],
                               rtol=1e-6, atol=1e-6)


def test_bad_state_names_the_expected_spec(run):
  path = run[1]
  policy = saved_policy.load_policy(path)
  obs = _observations()[0, :3]
  state = policy.get_initial_state(3)
  with pytest.raises(ValueError, match="greedy_action needs a feed-forward "
                     "policy; this one is recurrent: use greedy_step"):
    policy.greedy_action(obs)
  with pytest.raises(ValueError, match="use sample_step"):
    policy.action(obs, [0, 1])
  with pytest.raises(ValueError, match=r"state must have the tensors "
                     r"\['core_state_0', 'core_state_1'\].*got \[\]"):
    policy.greedy_step(obs, {})
  with pytest.raises(ValueError, match=re.escape(
      "state core_state_1 must have shape [3, 4] (batch of the observation) "
      "and dtype float32, got shape [2, 4] and dtype float32.")):
    policy.greedy_step(obs, dict(state, core_state_1=state["core_state_1"][:2]))
  with pytest.raises(ValueError, match="got shape .3, 4. and dtype float64"):
    policy.sample_step(obs, [0, 1], dict(
        state, core_state_0=state["core_state_0"].astype(np.float64)))
  # A batch-1 state would broadcast in the graph; the assertion stops it.
  loaded = tf.saved_model.load(path)
  one = loaded.get_initial_state(tf.constant(1, tf.int64))
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r"state core_state_0 must have shape \[B, 4\]"):
    loaded.greedy_action(obs, one)


@pytest.mark.parametrize("sample", [False, True])
def test_evaluate_carries_and_resets_the_state(run, sample):
  learner, path = run
  returns = playback.evaluate(path, episodes=6, sample=sample, seed=5)
  np.testing.assert_array_equal(
      returns, helpers.reference_returns(learner, 5, 6, sample))


def test_evaluate_binary_prints_mean_and_std(run, tmp_path):
  path = run[1]
  result = helpers.run_clean(
      [os.path.join(os.path.dirname(sys.executable), "tf-metagrad-evaluate"),
       f"--saved_model={path}", "--episodes=5", "--seed=2"], cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  match = re.fullmatch(r"mean_return=(\S+) std_return=(\S+) episodes=5\n",
                       result.stdout)
  assert match, result.stdout
  returns = playback.evaluate(path, episodes=5, seed=2)
  assert float(match.group(1)) == pytest.approx(returns.mean(), abs=1e-6)
  assert float(match.group(2)) == pytest.approx(returns.std(), abs=1e-6)
