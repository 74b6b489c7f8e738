"""A bad trajectory is refused where it enters a learner, with one line.

Each case breaks one field of an otherwise valid batch and expects the
error of `tf_metagrad.agents.trajectory_checks` from `Learner.step` (and
from `metagradient` / `outer_loss_after_inner_update`, which take the same
trajectories).
"""

import gymnasium
import numpy as np
import pytest
import tensorflow as tf

from tf_metagrad import agents
from tf_metagrad import types

T, B, OBS, ACTIONS, UNITS, ACTION_DIM = 4, 3, 5, 3, 4, 2
TINY = dict(mlp_hidden_sizes=(8,), head_hidden_sizes=(8,), dtype="float32")


def _learner(kind):
  spec = tf.TensorSpec((OBS,), tf.float32)
  if kind == "continuous":
    space = gymnasium.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
  else:
    space = gymnasium.spaces.Discrete(ACTIONS)
  overrides = dict(TINY, core_units=UNITS) if kind == "recurrent" else TINY
  return agents.make_learner("stac", spec, space, **overrides)


@pytest.fixture(scope="module")
def learners():
  return {kind: _learner(kind)
          for kind in ("discrete", "recurrent", "continuous")}


def _batch(kind="discrete", seed=0):
  rng = np.random.default_rng(seed)
  discount = np.ones((T, B), np.float32)
  discount[1, 0] = 0.0
  if kind == "continuous":
    action = tf.constant(np.tanh(rng.normal(size=(T, B, ACTION_DIM))),
                         tf.float32)
  else:
    action = tf.constant(rng.integers(0, ACTIONS, size=(T, B)), tf.int32)
  core_state = ()
  if kind == "recurrent":
    core_state = (tf.zeros([B, UNITS]), tf.zeros([B, UNITS]))
  return types.Trajectory(
      observation=tf.constant(rng.normal(size=(T + 1, B, OBS)), tf.float32),
      action=action,
      reward=tf.constant(rng.normal(size=(T, B)), tf.float32),
      discount=tf.constant(discount),
      behaviour_log_prob=tf.constant(
          np.log(rng.uniform(0.2, 0.6, size=(T, B))), tf.float32),
      core_state=core_state)


def _with(kind="discrete", **fields):
  return _batch(kind)._replace(**fields)


# (learner kind, bad batch, error, message matched from the start)
CASES = {
    "bool_discount": (
        "discrete", lambda: _with(discount=tf.ones([T, B], tf.bool)),
        TypeError,
        r"batch\.discount must be a floating tensor \[T, B\] with values in "
        r"\[0, 1\], got dtype bool\.$"),
    "discount_above_one": (
        "discrete", lambda: _with(discount=tf.fill([T, B], 2.0)), ValueError,
        r"batch\.discount must have values in \[0, 1\], got min 2, max 2\.$"),
    "negative_discount": (
        "discrete",
        lambda: _with(discount=tf.constant([[1.0, -0.5, 1.0]] * T)),
        ValueError,
        r"batch\.discount must have values in \[0, 1\], got min -0\.5, "
        r"max 1\.$"),
    "int_reward": (
        "discrete", lambda: _with(reward=tf.ones([T, B], tf.int32)),
        TypeError,
        r"batch\.reward must be a floating tensor \[T, B\], got dtype "
        r"int32\.$"),
    "reward_wrong_rank": (
        "discrete", lambda: _with(reward=tf.ones([T * B])), ValueError,
        r"batch\.reward must be a floating tensor \[T, B\], got shape "
        r"\[12\]\.$"),
    "discount_wrong_rank": (
        "discrete", lambda: _with(discount=tf.ones([T, B, 1])), ValueError,
        r"batch\.discount must be a floating tensor \[T, B\] with values in "
        r"\[0, 1\], got shape \[4, 3, 1\] where \[T, B\] = \[4, 3\] \(T, B "
        r"read off batch\.reward\)\.$"),
    "batch_size_mismatch": (
        "discrete", lambda: _with(behaviour_log_prob=tf.zeros([T, B + 1])),
        ValueError,
        r"batch\.behaviour_log_prob must be a floating tensor \[T, B\] of "
        r"log mu\(a_t \| x_t\) \(<= 0 for discrete actions\), got shape "
        r"\[4, 4\] where \[T, B\] = \[4, 3\]"),
    "observation_T_not_T_plus_1": (
        "discrete", lambda: _with(observation=tf.zeros([T, B, OBS])),
        ValueError,
        r"batch\.observation must be a numeric tensor \[T\+1, B, 5\], got "
        r"shape \[4, 3, 5\] where \[T\+1, B, 5\] = \[5, 3, 5\] \(T, B read "
        r"off batch\.reward\)\.$"),
    "observation_wrong_features": (
        "discrete", lambda: _with(observation=tf.zeros([T + 1, B, OBS + 1])),
        ValueError,
        r"batch\.observation must be a numeric tensor \[T\+1, B, 5\], got "
        r"shape \[5, 3, 6\]"),
    "bool_observation": (
        "discrete", lambda: _with(observation=tf.zeros([T + 1, B, OBS],
                                                       tf.bool)),
        TypeError,
        r"batch\.observation must be a numeric tensor \[T\+1, B, 5\], got "
        r"dtype bool\.$"),
    "action_out_of_range": (
        "discrete", lambda: _with(action=tf.fill([T, B], ACTIONS)),
        ValueError,
        r"batch\.action must have values in \[0, 3\) for Discrete\(3\), got "
        r"min 3, max 3\.$"),
    "negative_action": (
        "discrete", lambda: _with(action=tf.fill([T, B], -1)), ValueError,
        r"batch\.action must have values in \[0, 3\) for Discrete\(3\)"),
    "float_discrete_action": (
        "discrete", lambda: _with(action=tf.zeros([T, B])), TypeError,
        r"batch\.action must be an integer tensor \[T, B\] with values in "
        r"\[0, 3\), got dtype float32\.$"),
    "positive_log_prob": (
        "discrete", lambda: _with(behaviour_log_prob=tf.fill([T, B], 0.5)),
        ValueError,
        r"batch\.behaviour_log_prob must be <= 0 \(log-probabilities of "
        r"discrete actions\), got min 0\.5, max 0\.5\.$"),
    "core_state_missing": (
        "recurrent", lambda: _with("recurrent", core_state=()), ValueError,
        r"batch\.core_state must be the \(hidden, cell\) LSTM state before "
        r"observation 0, two floating tensors \[B, 4\] \(e\.g\. "
        r"network\.initial_state\(B\) at episode starts\), got 0 tensors\.$"),
    "core_state_wrong_units": (
        "recurrent",
        lambda: _with("recurrent", core_state=(tf.zeros([B, UNITS + 1]),) * 2),
        ValueError,
        r"batch\.core_state must be the \(hidden, cell\) .* got shape "
        r"\[3, 5\] where \[B, units\] = \[3, 4\]"),
    "core_state_for_feed_forward": (
        "discrete", lambda: _with(core_state=(tf.zeros([B, 4]),) * 2),
        ValueError,
        r"batch\.core_state must be \(\) for a feed-forward network "
        r"\(core_units=0\), got 2 tensors\.$"),
    "continuous_action_outside_box": (
        "continuous",
        lambda: _with("continuous", action=tf.fill([T, B, ACTION_DIM], 1.5)),
        ValueError,
        r"batch\.action must have values in \[-1, 1\] \(squashed Box "
        r"actions\), got min 1\.5, max 1\.5\.$"),
    "continuous_action_wrong_dim": (
        "continuous",
        lambda: _with("continuous", action=tf.zeros([T, B, ACTION_DIM + 1])),
        ValueError,
        r"batch\.action must be a floating tensor \[T, B, 2\] with values in "
        r"\[-1, 1\], got shape \[4, 3, 3\] where \[T, B, A\] = \[4, 3, 2\]"),
    "not_a_trajectory": (
        "discrete", lambda: _batch()._asdict(), TypeError,
        r"batch must be a tf_metagrad\.types\.Trajectory, got dict\.$"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_step_refuses_bad_batch_with_one_line(learners, case):
  kind, make, error, message = CASES[case]
  learner = learners[kind]
  with pytest.raises(error, match="^" + message) as raised:
    learner.step(make())
  assert "\n" not in str(raised.value)
  # Refused before anything ran: no update, no trace.
  assert int(learner.learner_steps.numpy()) == 0


@pytest.mark.parametrize("kind", ["discrete", "recurrent", "continuous"])
def test_valid_batches_pass(kind):
  # A learner of its own: the shared ones must stay at step 0.
  learner = _learner(kind)
  metrics = learner.step(_batch(kind))
  assert np.isfinite(float(metrics["inner_loss"]))
  assert int(learner.learner_steps.numpy()) == 1


def test_metagradient_names_the_argument_and_list_index(learners):
  learner = learners["discrete"]
  good, bad = _batch(), _with(discount=tf.ones([T, B], tf.bool))
  with pytest.raises(TypeError, match=r"^outer_batch\.discount must be a "):
    learner.metagradient(good, bad)
  with pytest.raises(TypeError, match=r"^inner_batch\[1\]\.discount must "):
    learner.metagradient([good, bad], good)
  with pytest.raises(TypeError, match=r"^inner_batch\.discount must be a "):
    learner.outer_loss_after_inner_update(bad, good)


def test_ranges_are_checked_eagerly_dtypes_also_when_traced(learners):
  learner = learners["discrete"]
  out_of_range = _with(discount=tf.fill([T, B], 2.0))
  with pytest.raises(ValueError, match=r"discount must have values in"):
    learner.outer_loss_after_inner_update(out_of_range, out_of_range)
  # Traced, a range check would be a graph assert run every call: skipped.
  traced = tf.function(learner.outer_loss_after_inner_update,
                       autograph=False)
  assert np.isfinite(float(traced(out_of_range, out_of_range)))
  bad_dtype = _with(discount=tf.ones([T, B], tf.bool))
  with pytest.raises(TypeError, match=r"discount must be a floating tensor"):
    traced(bad_dtype, bad_dtype)


def test_numpy_trajectories_are_checked_too(learners):
  batch = types.Trajectory(*[
      x.numpy() if tf.is_tensor(x) else x for x in _batch()])
  with pytest.raises(ValueError, match=r"^batch\.action must have values"):
    learners["discrete"].step(batch._replace(
        action=np.full((T, B), 7, np.int32)))


def test_unchecked_step_skips_only_the_host_checks():
  """`step(check=False)` makes the same update, and an out-of-range batch
  that `step` refuses goes through unchecked (as in the training loop)."""
  checked, unchecked = _learner("discrete"), _learner("discrete")
  unchecked.network.set_weights(checked.network.get_weights())
  a = checked.step(_batch("discrete"))
  b = unchecked.step(_batch("discrete"), check=False)
  np.testing.assert_array_equal(a["inner_loss"].numpy(),
                                b["inner_loss"].numpy())
  for x, y in zip(checked.network.get_weights(),
                  unchecked.network.get_weights()):
    np.testing.assert_array_equal(x, y)
  out_of_range = _with(discount=tf.fill([T, B], 2.0))
  with pytest.raises(ValueError, match=r"discount must have values in"):
    checked.step(out_of_range)
  unchecked.step(out_of_range, check=False)
  assert int(unchecked.learner_steps.numpy()) == 2
