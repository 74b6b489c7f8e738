"""FRODO's meta-gradient (meta-network weights) against finite differences."""

import numpy as np
import pytest
import tensorflow as tf

from tf_metagrad import agents
from tests import finite_differences as fd
from tests.agents import helpers

TINY = dict(dtype="float64", mlp_hidden_sizes=(6,), head_hidden_sizes=(6,),
            learning_rate=0.05, max_grad_norm=None, meta_units=4)


@pytest.mark.parametrize("num_inner_steps,overrides", [
    (1, {}),
    (3, {}),
    (3, {"pseudo_label_weight": 0.5, "pseudo_label_normalize": "value",
         "padding": True}),
    # The former defaults: no observation input, the LSTM run backwards.
    (2, {"distributional": True, "num_quantiles": 3,
         "use_observation": False, "meta_direction": "backward"}),
])
def test_frodo_metagradient_matches_finite_differences(num_inner_steps,
                                                      overrides, fd_seed):
  # "padding": every batch holds a time-limit padding step (issue #17).
  overrides = dict(overrides)
  padding = overrides.pop("padding", False)
  rng = np.random.default_rng(fd.shaken(num_inner_steps, fd_seed))
  spec, space = helpers.spaces()
  learner = agents.make_learner("frodo", spec, space,
                                num_inner_steps=num_inner_steps, **TINY,
                                **overrides)
  inner = [helpers.random_trajectory(rng, 4, 3, padding=padding)
           for _ in range(num_inner_steps)]
  outer = helpers.random_trajectory(rng, 4, 3, padding=padding)
  # Random directions cover every weight at once; two entries of each tensor
  # (LSTM kernels and bias, linear kernel and bias) make sure none is mixed
  # up with another.
  report = helpers.fd_check(
      learner, inner if num_inner_steps > 1 else inner[0], outer, rng,
      entries=2, directions=2)
  sizes = [int(np.prod(v.shape)) for v in learner.meta_params().values()]
  assert len(sizes) == 5
  assert len(report.labels) == sum(min(2, n) for n in sizes) + 2


def test_frodo_metagradient_every_meta_weight_matches_finite_differences(
    fd_seed):
  """Central differences in every entry of every meta-network tensor, M = 1,
  the meta-network of Qiu (2021) (observation input, forward LSTM; a
  2-dimensional observation keeps the input kernel small)."""
  rng = np.random.default_rng(fd.shaken(5, fd_seed))
  spec, space = helpers.spaces(obs_shape=(2,))
  learner = agents.make_learner("frodo", spec, space, num_inner_steps=1,
                                meta_direction="forward", **TINY)
  assert learner.config.use_observation
  assert not learner.meta_network.reverse
  inner, outer = (helpers.random_trajectory(rng, 4, 3, obs_shape=(2,))
                  for _ in range(2))
  # LSTM kernels [3 + 2, 16], [4, 16] and bias [16]; linear [4, 1] and [1].
  report = helpers.fd_check(learner, inner, outer, rng)
  assert len(report.labels) == 165


def test_frodo_step_splits_unroll_into_consecutive_trajectories():
  rng = np.random.default_rng(0)
  spec, space = helpers.spaces(dtype=tf.float32)
  learner = agents.make_learner("frodo", spec, space, num_inner_steps=2,
                                mlp_hidden_sizes=(6,), head_hidden_sizes=(6,))
  batch = helpers.random_trajectory(rng, 12, 2, dtype=np.float32)
  inner, outer = learner._split(batch)
  assert len(inner) == 2
  np.testing.assert_array_equal(inner[1].observation.numpy(),
                                batch.observation[4:9].numpy())
  np.testing.assert_array_equal(outer.reward.numpy(), batch.reward[8:].numpy())
  before = learner.meta_params()
  metrics = learner.step(batch)
  assert np.isfinite(metrics["outer_loss"])
  after = learner.meta_params()
  assert any(not np.allclose(before[k], after[k]) for k in before)
  with pytest.raises(ValueError, match="divisible by 3"):
    learner._split(helpers.random_trajectory(rng, 10, 2, dtype=np.float32))
