"""Heads and MultiHead: formulas, shapes, dtypes, serialisation."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tests.networks import helpers
from tf_metagrad import networks


def np_mlp(mlp, x):
  for i, linear in enumerate(mlp.linears):
    x = x @ linear.kernel.numpy() + linear.bias.numpy()
    if i < len(mlp.linears) - 1:
      x = np.maximum(x, 0.0)
  return x


def _features(shape=(3, 5), seed=0):
  return np.random.default_rng(seed).normal(size=shape)


def test_policy_value_head_is_two_separate_mlps():
  head = networks.PolicyValueHead(4, hidden_sizes=(6, 5), dtype='float64')
  head.build([None, 5])
  helpers.randomize(head)
  x = _features()
  logits, value = head(x)
  np.testing.assert_allclose(logits.numpy(), np_mlp(head.policy, x),
                             rtol=1e-12)
  np.testing.assert_allclose(value.numpy(), np_mlp(head.value, x)[:, 0],
                             rtol=1e-12)
  assert head.policy.linears[0].kernel.shape == (5, 6)
  assert head.policy.linears[1].kernel.shape == (6, 5)
  assert head.policy.linears[2].kernel.shape == (5, 4)
  assert head.value.linears[2].kernel.shape == (5, 1)
  default = networks.PolicyValueHead(3)
  default.build([None, 256])
  assert [l.units for l in default.policy.linears] == [256, 256, 3]


def test_empty_hidden_sizes_make_linear_heads():
  """IMPALA's heads: one linear layer each on the torso's features."""
  head = networks.PolicyValueHead(4, hidden_sizes=(), dtype='float64')
  head.build([None, 5])
  helpers.randomize(head)
  x = _features()
  logits, value = head(x)
  policy, = head.policy.linears
  critic, = head.value.linears
  np.testing.assert_allclose(
      logits.numpy(), x @ policy.kernel.numpy() + policy.bias.numpy(),
      rtol=1e-12)
  np.testing.assert_allclose(
      value.numpy(), (x @ critic.kernel.numpy() + critic.bias.numpy())[:, 0],
      rtol=1e-12)


def test_squashed_gaussian_head_follows_stac_formula():
  head = networks.SquashedGaussianPolicyHead(2, hidden_sizes=(4,),
                                             sigma_min=-3.0, sigma_max=0.5,
                                             dtype='float64')
  head.build([None, 5])
  helpers.randomize(head, scale=2.0)
  x = _features()
  raw = np_mlp(head.policy, x)
  mean, std = head(x)
  np.testing.assert_allclose(mean.numpy(), np.tanh(raw[:, :2]), rtol=1e-12)
  expected_std = np.exp(-3.0 + 0.5 * 3.5 * (np.tanh(raw[:, 2:]) + 1.0))
  np.testing.assert_allclose(std.numpy(), expected_std, rtol=1e-12)
  big = head(1e3 * x)[1].numpy()
  assert np.all(big >= np.exp(-3.0)) and np.all(big <= np.exp(0.5))
  with pytest.raises(ValueError, match='sigma_min must be < sigma_max'):
    networks.SquashedGaussianPolicyHead(2, sigma_min=1.0, sigma_max=1.0)


def test_gaussian_policy_value_head():
  head = networks.GaussianPolicyValueHead(3, hidden_sizes=(4,),
                                          dtype='float64')
  head.build([None, 5])
  helpers.randomize(head)
  x = _features((2, 3, 5))
  mean, std, value = head(x)
  assert mean.shape == std.shape == (2, 3, 3) and value.shape == (2, 3)
  m, s = head.policy(x)
  np.testing.assert_array_equal(mean.numpy(), m.numpy())
  np.testing.assert_array_equal(std.numpy(), s.numpy())
  np.testing.assert_allclose(value.numpy(), np_mlp(head.value, x)[..., 0],
                             rtol=1e-12)


def test_quantile_heads():
  head = networks.QuantileValueHead(7, hidden_sizes=(4,), dtype='float64')
  head.build([None, 5])
  helpers.randomize(head)
  x = _features()
  np.testing.assert_allclose(head(x).numpy(), np_mlp(head.value, x),
                             rtol=1e-12)
  both = networks.PolicyQuantileHead(3, 7, hidden_sizes=(4,))
  logits, quantiles = both(x.astype(np.float32))
  assert logits.shape == (3, 3) and quantiles.shape == (3, 7)


def test_multi_head_stacks_independent_heads():
  multi = networks.MultiHead(networks.PolicyValueHead(4, (6,)), num_heads=3,
                             dtype='float64')
  multi.build([None, 5])
  x = _features((2, 3, 5))
  logits, value = multi(x)
  assert logits.shape == (3, 2, 3, 4) and value.shape == (3, 2, 3)
  for i, head in enumerate(multi.heads):
    assert head.compute_dtype == 'float64'
    l, v = head(x)
    np.testing.assert_array_equal(logits[i].numpy(), l.numpy())
    np.testing.assert_array_equal(value[i].numpy(), v.numpy())
  assert not np.allclose(logits[0].numpy(), logits[1].numpy())
  assert len(multi.trainable_variables) == 3 * 8
  gaussian = networks.MultiHead(networks.GaussianPolicyValueHead(2, (4,)))
  mean, std, value = gaussian(x.astype(np.float32))
  assert mean.shape == std.shape == (3, 2, 3, 2) and value.shape == (3, 2, 3)


_HEADS = [
    ('pv', lambda d: networks.PolicyValueHead(4, (6,), dtype=d)),
    ('sq', lambda d: networks.SquashedGaussianPolicyHead(2, (6,), dtype=d)),
    ('gpv', lambda d: networks.GaussianPolicyValueHead(2, (6,), -5.0, 2.0,
                                                       dtype=d)),
    ('qv', lambda d: networks.QuantileValueHead(5, (6,), dtype=d)),
    ('pq', lambda d: networks.PolicyQuantileHead(4, 5, (6,), dtype=d)),
    ('multi', lambda d: networks.MultiHead(
        networks.PolicyQuantileHead(4, 5, (6,)), num_heads=2, dtype=d)),
]


def test_stacked_gaussian_heads_trace_as_they_run_eagerly():
  """Graph and eager agree where grappler once broke them: two stacked
  squashed-Gaussian heads, one head's mean and log(std) read together (the
  shape of STACX's continuous loss; see SquashedGaussianPolicyHead.call)."""
  heads = networks.MultiHead(networks.GaussianPolicyValueHead(2, (8,)), 2,
                             dtype='float64')
  heads.build([None, 5])
  helpers.randomize(heads, seed=1)
  x = tf.constant(np.random.default_rng(2).normal(size=(4, 3, 5)))

  def mean_and_log_std():
    mean, std, _ = heads(x)
    return mean[1][:-1], tf.math.log(std[1][:-1])

  for eager, traced in zip(mean_and_log_std(),
                           tf.function(mean_and_log_std, autograph=False)()):
    # Elementwise ops on one matmul of 8 terms: a few roundings apart.
    np.testing.assert_allclose(traced.numpy(), eager.numpy(), rtol=1e-14,
                               atol=1e-14)


@pytest.mark.parametrize('name,make', _HEADS)
@pytest.mark.parametrize('dtype', ['float32', 'float64'])
def test_head_dtype_config_and_explicit_build(name, make, dtype):
  del name
  head = make(dtype)
  head.build([None, 5])
  assert head.built
  assert all(v.dtype == dtype for v in head.trainable_variables)
  assert all(o.dtype == dtype
             for o in tf.nest.flatten(head(_features().astype(dtype))))
  clone = type(head).from_config(head.get_config())
  assert clone.get_config() == head.get_config()
  clone.build([None, 5])
  assert ([v.shape for v in clone.trainable_variables]
          == [v.shape for v in head.trainable_variables])


@pytest.mark.parametrize('name,make', _HEADS)
def test_head_round_trips_load_model(tmp_path, name, make):
  inputs = tf.keras.Input(shape=(5,))
  model = tf.keras.Model(inputs, make('float32')(inputs))
  helpers.randomize(model, seed=2)
  x = _features().astype(np.float32)
  expected = tf.nest.flatten(model(x))
  path = os.path.join(tmp_path, f'{name}.keras')
  model.save(path)
  loaded = tf.keras.models.load_model(path)
  for e, g in zip(expected, tf.nest.flatten(loaded(x))):
    np.testing.assert_array_equal(g.numpy(), e.numpy())
