"""Tests for tf_metagrad.ops.distributional."""

import numpy as np
import pytest
import tensorflow as tf

from tf_metagrad.ops import distributional
from tests import finite_differences as fd

B, N, M = 3, 4, 5


def reference_loss(predictions, targets, taus, kappa):
  """Brute-force loops over batch, predicted quantile i and target j."""
  losses = np.zeros(predictions.shape[0])
  for b in range(predictions.shape[0]):
    for i in range(predictions.shape[1]):
      total = 0.0
      for j in range(targets.shape[1]):
        u = targets[b, j] - predictions[b, i]
        if kappa == 0:
          huber = abs(u)
        elif abs(u) <= kappa:
          huber = 0.5 * u * u
        else:
          huber = kappa * (abs(u) - 0.5 * kappa)
        tau = taus[i] if taus.ndim == 1 else taus[b, i]
        total += abs(tau - (1.0 if u < 0 else 0.0)) * huber
      losses[b] += total / targets.shape[1]
  return losses


def make_inputs(seed, lead=(B,)):
  rng = np.random.default_rng(seed)
  return (rng.normal(size=lead + (N,)) * 1.5,
          rng.normal(size=lead + (M,)) * 1.5,
          np.sort(rng.uniform(0, 1, N)))


def test_quantile_midpoints():
  np.testing.assert_allclose(
      distributional.quantile_midpoints(4).numpy(),
      [0.125, 0.375, 0.625, 0.875])
  taus = distributional.quantile_midpoints(1, tf.float64)
  assert taus.dtype == tf.float64
  np.testing.assert_array_equal(taus.numpy(), [0.5])
  with pytest.raises(ValueError, match=r'`num_quantiles` must be a Python '
                     r'int >= 1, got 0'):
    distributional.quantile_midpoints(0)


@pytest.mark.parametrize('kappa', [0.0, 0.5, 1.0, 2.0])
@pytest.mark.parametrize('dtype,rtol', [(tf.float32, 1e-5),
                                        (tf.float64, 1e-12)])
def test_loss_matches_brute_force(kappa, dtype, rtol):
  predictions, targets, taus = make_inputs(seed=1)
  errors = np.abs(targets[:, None, :] - predictions[:, :, None])
  if kappa:  # both Huber regimes are exercised
    assert np.any(errors > kappa) and np.any(errors < kappa)
  actual = distributional.quantile_huber_loss(
      tf.constant(predictions, dtype), tf.constant(targets, dtype),
      tf.constant(taus, dtype), kappa=kappa)
  assert actual.dtype == dtype and actual.shape == (B,)
  np.testing.assert_allclose(
      actual.numpy(), reference_loss(predictions, targets, taus, kappa),
      rtol=rtol)


def test_hand_computed_case():
  # One quantile at tau = 0.25, targets 3 and -0.5, prediction 0, kappa 1:
  # u = 3 -> 0.25 * 1 * (3 - 0.5); u = -0.5 -> 0.75 * 0.5 * 0.25.
  loss = distributional.quantile_huber_loss([[0.0]], [[3.0, -0.5]], [0.25])
  np.testing.assert_allclose(loss.numpy(), [(0.625 + 0.09375) / 2])
  pure = distributional.quantile_huber_loss([[0.0]], [[3.0, -0.5]], [0.25],
                                            kappa=0)
  np.testing.assert_allclose(pure.numpy(), [(0.75 + 0.375) / 2])


def test_unreduced_loss_per_predicted_quantile():
  predictions, targets, taus = make_inputs(seed=7)
  args = [tf.constant(x) for x in (predictions, targets, taus)]
  per_quantile = distributional.quantile_huber_loss(*args,
                                                    reduce_quantiles=False)
  assert per_quantile.shape == (B, N)
  for i in range(N):
    # Loss of quantile i alone: a one-quantile problem at tau_i.
    np.testing.assert_allclose(
        per_quantile[:, i].numpy(),
        reference_loss(predictions[:, i:i + 1], targets, taus[i:i + 1], 1.0),
        rtol=1e-12)
  np.testing.assert_allclose(
      tf.reduce_sum(per_quantile, -1).numpy(),
      distributional.quantile_huber_loss(*args).numpy(), rtol=1e-12)


def test_extra_leading_dimensions_and_per_example_taus():
  rng = np.random.default_rng(2)
  predictions = rng.normal(size=(2, B, N))
  targets = rng.normal(size=(2, B, M))
  taus = rng.uniform(0, 1, (2, B, N))
  actual = distributional.quantile_huber_loss(
      tf.constant(predictions), tf.constant(targets), tf.constant(taus))
  assert actual.shape == (2, B)
  for t in range(2):
    np.testing.assert_allclose(
        actual[t].numpy(),
        reference_loss(predictions[t], targets[t], taus[t], 1.0), rtol=1e-12)


@pytest.mark.parametrize('kappa', [0.0, 1.0])
def test_gradients_match_finite_differences(check_gradients, kappa, fd_seed):
  seed = fd.shaken(3, fd_seed)
  predictions, targets, taus = make_inputs(seed=seed)
  weights = tf.constant(np.random.default_rng(seed).normal(size=B))

  def objective(predictions, targets, taus):
    return tf.reduce_sum(weights * distributional.quantile_huber_loss(
        predictions, targets, taus, kappa=kappa))

  check_gradients(objective,
                  dict(predictions=predictions, targets=targets, taus=taus),
                  ['predictions', 'targets', 'taus'], seed=seed)


def test_second_order_matches_finite_differences(check_second_order,
                                                 fd_seed):
  seed = fd.shaken(4, fd_seed)
  predictions, targets, taus = make_inputs(seed=seed)

  def objective(predictions, targets, taus):
    return tf.reduce_sum(distributional.quantile_huber_loss(
        predictions, targets, taus, kappa=2.0))

  inputs = dict(predictions=predictions, targets=targets, taus=taus)
  check_second_order(objective, inputs, inner='predictions', outer='targets',
                     seed=seed)
  check_second_order(objective, inputs, inner='predictions', outer='taus',
                     seed=seed)


@pytest.mark.parametrize('dtype,rtol,atol', [(tf.float32, 1e-5, 1e-6),
                                             (tf.float64, 1e-12, 1e-12)])
def test_jit_matches_eager(dtype, rtol, atol):
  predictions, targets, _ = make_inputs(seed=5, lead=(2, B))

  def loss_and_grad(predictions, targets):
    with tf.GradientTape() as tape:
      tape.watch(predictions)
      loss = distributional.quantile_huber_loss(
          predictions, targets,
          distributional.quantile_midpoints(N, predictions.dtype))
    return loss, tape.gradient(loss, predictions)

  args = (tf.constant(predictions, dtype), tf.constant(targets, dtype))
  eager = loss_and_grad(*args)
  jitted = tf.function(loss_and_grad, jit_compile=True, autograph=False)(*args)
  for e, j in zip(eager, jitted):
    assert j.dtype == dtype
    np.testing.assert_allclose(j.numpy(), e.numpy(), rtol=rtol, atol=atol)


def test_bad_arguments_raise():
  predictions, targets, taus = (tf.constant(x) for x in make_inputs(seed=6))
  loss = distributional.quantile_huber_loss
  with pytest.raises(ValueError, match=r'`targets` must have shape \[\.\.\., '
                     r'M\] with the leading dimensions \[3\] of `predictions`, '
                     r'got \[2, 5\]'):
    loss(predictions, targets[:2], taus)
  with pytest.raises(ValueError, match=r'`taus` must have shape \[N\] = \[4\] '
                     r'or the shape of `predictions` \[3, 4\], got \[3\]'):
    loss(predictions, targets, taus[:3])
  with pytest.raises(ValueError, match=r'`kappa` must be >= 0, got -1'):
    loss(predictions, targets, taus, kappa=-1.0)
  with pytest.raises(TypeError, match=r'`kappa` must be a Python number'):
    loss(predictions, targets, taus, kappa=tf.constant(1.0))
  with pytest.raises(TypeError, match=r'`targets` must have dtype float64, '
                     r'got float32'):
    loss(predictions, tf.cast(targets, tf.float32), taus)
  with pytest.raises(ValueError, match=r'`predictions` must have shape '
                     r'\[\.\.\., N\], got a scalar'):
    loss(predictions[0, 0], targets, taus)
