"""Several learner steps per call equal as many single steps.

`Learner.steps_from_iterator(iterator, N)` runs N steps in one `tf.function`
call (a `tf.while_loop`, one `strategy.run` per iteration). The same kernels
run on the same values in the same order as N calls of `step`, so float64
results must match to the last bit; the checks use assert_array_equal.
"""

import gymnasium
import numpy as np
import pytest
import tensorflow as tf

from tf_metagrad import agents
from tf_metagrad import types

T, B = 4, 3
TINY = dict(mlp_hidden_sizes=(8,), head_hidden_sizes=(8,), dtype="float64",
            learning_rate=0.05, meta_learning_rate=0.01)


def _batch(seed, nan_reward=False):
  rng = np.random.default_rng(seed)
  discount = np.ones((T, B))
  discount[T // 2, 0] = 0.0
  reward = rng.normal(scale=0.5, size=(T, B))
  if nan_reward:
    reward[1, 1] = np.nan
  return types.Trajectory(
      observation=tf.constant(rng.normal(size=(T + 1, B, 5))),
      action=tf.constant(rng.integers(0, 3, size=(T, B)), tf.int32),
      reward=tf.constant(reward),
      discount=tf.constant(discount),
      behaviour_log_prob=tf.constant(
          np.log(rng.uniform(0.2, 0.6, size=(T, B)))))


def _make(agent="stac", **overrides):
  return agents.make_learner(
      agent, tf.TensorSpec((5,), tf.float64), gymnasium.spaces.Discrete(3),
      **dict(TINY, **overrides))


def _iterator(batches):
  extras = [{"episode_return": tf.fill([T, B], float(i))}
            for i in range(len(batches))]
  return iter(tf.data.Dataset.from_tensor_slices(
      (tf.nest.map_structure(lambda *x: tf.stack(x), *batches),
       tf.nest.map_structure(lambda *x: tf.stack(x), *extras))))


def _state(learner):
  return [v.numpy() for v in (
      list(learner.network.variables) + tf.nest.flatten(learner.opt_state)
      + tf.nest.flatten(learner._meta_variables())  # pylint: disable=protected-access
      + tf.nest.flatten(learner.meta_opt_state)
      + [learner.learner_steps, learner.skipped_updates])]


def _pair(agent="stac", **overrides):
  single, multi = _make(agent, **overrides), _make(agent, **overrides)
  for a, b in zip(single.variables, multi.variables):
    b.assign(a)
  return single, multi


def _assert_same_state(a, b):
  for x, y in zip(_state(a), _state(b)):
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("agent,overrides", [
    ("stac", {}),
    # Decay reads the step counter inside the loop: each step must see its
    # own learning rate.
    ("impala", {"end_learning_rate": 0.01, "decay_steps": 4}),
])
def test_n_steps_in_one_call_equal_n_single_calls(agent, overrides):
  single, multi = _pair(agent, **overrides)
  batches = [_batch(seed) for seed in range(4)]
  for batch in batches:
    expected = single.step(batch)
  env_steps = tf.Variable(0, dtype=tf.int64)
  metrics, extras = multi.steps_from_iterator(
      _iterator(batches), 4, env_steps=env_steps, frames_per_step=T * B)
  _assert_same_state(single, multi)
  assert int(multi.learner_steps.numpy()) == 4
  assert int(env_steps.numpy()) == 4 * T * B
  # The metrics are the last step's.
  assert set(metrics) == set(expected)
  for k in expected:
    np.testing.assert_array_equal(metrics[k].numpy(), expected[k].numpy(),
                                  err_msg=k)
  np.testing.assert_array_equal(
      extras["episode_return"].numpy(),
      np.arange(4.0)[:, None, None] * np.ones([4, T, B]))


def test_calls_of_different_lengths_share_one_trace():
  single, multi = _pair("impala")
  batches = [_batch(seed) for seed in range(6)]
  for batch in batches:
    single.step(batch)
  iterator = _iterator(batches)
  first = 0
  for n in (3, 1, 2):
    _, extras = multi.steps_from_iterator(iterator, n, max_steps=3)
    # Rows past the call's n steps are zeros (the batches' rows are their
    # seeds, see _batch).
    expected = np.zeros([3, T, B])
    expected[:n] = np.arange(first, first + n)[:, None, None]
    np.testing.assert_array_equal(extras["episode_return"].numpy(), expected)
    first += n
  _assert_same_state(single, multi)
  # pylint: disable-next=protected-access
  assert multi._iterator_steps_fn.experimental_get_tracing_count() == 1
  with pytest.raises(ValueError, match="num_steps must be >= 1, got 0"):
    multi.steps_from_iterator(iterator, 0)
  with pytest.raises(ValueError, match="max_steps=1 is less than num_steps=2"):
    multi.steps_from_iterator(iterator, 2, max_steps=1)


def test_a_non_finite_batch_inside_a_call_is_skipped_as_alone():
  single, multi = _pair()
  batches = [_batch(0), _batch(1, nan_reward=True), _batch(2)]
  for batch in batches:
    single.step(batch)
  metrics, _ = multi.steps_from_iterator(_iterator(batches), 3)
  assert float(metrics["skipped_updates"]) == 1
  assert int(multi.skipped_updates.numpy()) == 1
  assert int(multi.learner_steps.numpy()) == 3
  _assert_same_state(single, multi)
  assert all(np.all(np.isfinite(v)) for v in _state(multi))


def test_an_iterator_failing_mid_call_keeps_the_steps_made_and_counted():
  single, multi = _pair()
  batches = [_batch(seed) for seed in range(3)]
  for batch in batches:
    single.step(batch)
  env_steps = tf.Variable(0, dtype=tf.int64)
  iterator = _iterator(batches)
  multi.steps_from_iterator(iterator, 2, env_steps=env_steps,
                            frames_per_step=T * B)
  with pytest.raises(tf.errors.OutOfRangeError):
    multi.steps_from_iterator(iterator, 4, env_steps=env_steps,
                              frames_per_step=T * B)
  # Step 3 was made before step 4's get_next failed; nothing after it.
  assert int(multi.learner_steps.numpy()) == 3
  assert int(env_steps.numpy()) == 3 * T * B
  _assert_same_state(single, multi)
  with pytest.raises(tf.errors.OutOfRangeError):
    multi.steps_from_iterator(iterator, 1, env_steps=env_steps,
                              frames_per_step=T * B)
  assert int(multi.learner_steps.numpy()) == 3
  assert int(env_steps.numpy()) == 3 * T * B
  _assert_same_state(single, multi)
