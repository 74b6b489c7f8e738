"""FRODO's meta-network without LSTM bias (Qiu (2021) section 5.2's
`nn.LSTM(..., bias=False)`): no bias in eta, and the targets of a numpy LSTM
without any bias term."""

import numpy as np
import pytest
import tensorflow as tf

from tf_metagrad import agents
from tests.agents import helpers


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def _numpy_targets(weights, features):
  """Forward LSTM without gate or forget bias, then the linear layer."""
  kernel, recurrent, out_kernel, out_bias = weights
  units = recurrent.shape[0]
  hidden = np.zeros((features.shape[1], units))
  cell = np.zeros_like(hidden)
  outputs = []
  for x in features:
    gates = x @ kernel + hidden @ recurrent
    i, f, g, o = np.split(gates, 4, axis=-1)
    cell = _sigmoid(f) * cell + _sigmoid(i) * np.tanh(g)
    hidden = _sigmoid(o) * np.tanh(cell)
    outputs.append(hidden @ out_kernel + out_bias)
  return np.stack(outputs)[..., 0]


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_meta_network_without_bias_matches_a_bias_free_lstm(direction):
  spec, space = helpers.spaces()
  learner = agents.make_learner(
      "frodo", spec, space, dtype="float64", mlp_hidden_sizes=(6,),
      head_hidden_sizes=(6,), meta_units=4, num_inner_steps=1,
      meta_use_bias=False, use_observation=False, reward_clip=None,
      meta_direction=direction)
  meta = learner._meta_variables()
  assert sorted(meta) == ["cell/kernel", "cell/recurrent_kernel",
                          "linear/bias", "linear/kernel"], sorted(meta)
  rng = np.random.default_rng(0)
  # Non-zero output bias so a dropped one would show.
  meta["linear/bias"].assign(rng.normal(size=meta["linear/bias"].shape))
  batch = helpers.random_trajectory(rng, 4, 3)
  next_values = tf.constant(rng.normal(size=(4, 3)))
  target = learner.targets({k: tf.convert_to_tensor(v)
                            for k, v in meta.items()}, batch, next_values)
  features = np.stack([batch.reward.numpy(), batch.discount.numpy(),
                       next_values.numpy()], -1)
  # Backward: the same recursion over the steps from last to first.
  order = slice(None) if direction == "forward" else slice(None, None, -1)
  expected = _numpy_targets(
      [meta[k].numpy() for k in ("cell/kernel", "cell/recurrent_kernel",
                                 "linear/kernel", "linear/bias")],
      features[order])[order]
  # float64, recursions of 4 steps over sums of <= 7 terms of size <= ~3.
  np.testing.assert_allclose(target.numpy(), expected, rtol=0, atol=1e-12)
  learner.step(helpers.random_trajectory(rng, 8, 3))
  assert not np.any(learner.meta_network.lstm.cell.bias.numpy())


def test_meta_network_keeps_its_bias_by_default():
  spec, space = helpers.spaces()
  learner = agents.make_learner("frodo", spec, space, meta_units=4,
                                mlp_hidden_sizes=(6,), head_hidden_sizes=(6,))
  assert "cell/bias" in learner._meta_variables()
